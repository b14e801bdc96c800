"""The writing assistant's answer: suggestion and rationale joined (`format_response`, the target of
SFT) and split apart again (`parse_response`, for model outputs; it never raises, it reports).

The markers come from `prompts.response` (conf/prompts/paper.yaml says why they are our choice: the
paper does not print how [Output Text] joins the two); the order is the caller's `position`, which
every stage takes from `rationale.position` (after | before | none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rationalign.prompt_config import PromptConfigError, response_format

POSITIONS = ("after", "before", "none")

def _check_position(position: str) -> None:
    if position not in POSITIONS:
        raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")


def format_response(
    suggestion: str,
    rationale: str | None,
    position: str = "after",
    prompts_cfg: Any = None,
) -> str:
    """The assistant's response text.

    after : "<suggestion><sep><rationale_marker> <rationale>"
    before: "<rationale_marker> <rationale><sep><suggestion_marker> <suggestion>"
    none  : "<suggestion>"
    Raises ValueError on an empty suggestion, or an empty rationale where one is placed.
    """
    _check_position(position)
    r = response_format(prompts_cfg)
    suggestion = (suggestion or "").strip()
    if not suggestion:
        raise ValueError("format_response: empty suggestion")
    if position == "none":
        return suggestion
    rationale = (rationale or "").strip()
    if not rationale:
        raise ValueError(f"format_response: position '{position}' needs a non-empty rationale")
    sep = r["separator"]
    if position == "after":
        return f"{suggestion}{sep}{r['rationale_marker']} {rationale}"
    return f"{r['rationale_marker']} {rationale}{sep}{r['suggestion_marker']} {suggestion}"


@dataclass(frozen=True)
class ParsedResponse:
    suggestion: str
    rationale: str
    ok: bool
    reason: str = ""  # "" when clean; otherwise what was wrong (ok=False) or repaired (ok=True)


def _marker_regex(marker: str) -> re.Pattern:
    """Case-insensitive marker, tolerant of markdown emphasis and spaces before the colon."""
    core = marker.strip()
    colon = core.endswith(":")
    core = core[:-1].strip() if colon else core
    words = r"\s+".join(re.escape(w) for w in core.split())
    pattern = r"(?:[*_#>]+\s*)?" + words + (r"\s*[*_]*\s*:[*_]*" if colon else r"[*_]*")
    return re.compile(pattern, re.IGNORECASE)


_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", text).strip()


def _strip_leading(rx: re.Pattern, text: str) -> tuple[str, int]:
    """Remove any number of leading occurrences of a marker; return (text, how many)."""
    n = 0
    while True:
        m = rx.match(text)
        if not m:
            return text, n
        text = text[m.end():].lstrip()
        n += 1


def _find(rx: re.Pattern, text: str, last: bool = False) -> re.Match | None:
    """First (or last) marker occurrence, preferring occurrences at the start of a line."""
    hits = list(rx.finditer(text))
    if not hits:
        return None
    at_line_start = [m for m in hits if m.start() == 0 or text[: m.start()].rstrip(" \t").endswith("\n")]
    pool = at_line_start or hits
    return pool[-1] if last else pool[0]


def parse_response(text: Any, position: str = "after", prompts_cfg: Any = None) -> ParsedResponse:
    """Split a model output into suggestion and rationale. Never raises; reports.

    `ok` is True when a non-empty suggestion was found in the expected place (and, unless
    position == 'none', a non-empty rationale). Repairs that keep the output usable (repeated
    markers, a stray suggestion marker, a rationale in a 'none' output) leave ok=True and say so
    in `reason`. On failure the best-effort fields are still filled where possible.
    """
    try:
        if position not in POSITIONS:
            return ParsedResponse("", "", False, f"unknown position {position!r}")
        try:
            r = response_format(prompts_cfg)
        except PromptConfigError as e:
            return ParsedResponse("", "", False, f"bad response config: {e}")
        if text is None:
            return ParsedResponse("", "", False, "empty output")
        if not isinstance(text, str):
            text = str(text)
        text = _clean(text)
        if not text:
            return ParsedResponse("", "", False, "empty output")
        rat_rx = _marker_regex(r["rationale_marker"])
        sug_rx = _marker_regex(r["suggestion_marker"])
        if position == "none":
            return _parse_none(text, rat_rx, sug_rx)
        if position == "after":
            return _parse_after(text, rat_rx, sug_rx)
        return _parse_before(text, rat_rx, sug_rx)
    except Exception as e:  # noqa: BLE001  # pragma: no cover - the contract is "never raises"
        return ParsedResponse("", "", False, f"parser error: {type(e).__name__}: {e}")


def _parse_none(text: str, rat_rx: re.Pattern, sug_rx: re.Pattern) -> ParsedResponse:
    notes = []
    body, n_sug = _strip_leading(sug_rx, text)
    if n_sug:
        notes.append("removed a leading suggestion marker")
    rationale = ""
    m = _find(rat_rx, body)
    if m is not None:
        rationale, _ = _strip_leading(rat_rx, body[m.start():])
        body = body[: m.start()]
        notes.append("removed an unexpected rationale")
    suggestion = body.strip()
    if not suggestion:
        return ParsedResponse("", rationale.strip(), False, "empty suggestion")
    return ParsedResponse(suggestion, rationale.strip(), True, "; ".join(notes))


def _parse_after(text: str, rat_rx: re.Pattern, sug_rx: re.Pattern) -> ParsedResponse:
    notes = []
    m = _find(rat_rx, text)
    if m is None:
        suggestion, n_sug = _strip_leading(sug_rx, text)
        return ParsedResponse(suggestion.strip(), "", False, "missing rationale marker")
    head, tail = text[: m.start()], text[m.start():]
    rationale, n_rat = _strip_leading(rat_rx, tail)
    if n_rat > 1:
        notes.append("collapsed a repeated rationale marker")
    again = _find(rat_rx, rationale)
    if again is not None and (again.start() == 0 or rationale[: again.start()].rstrip(" \t").endswith("\n")):
        rationale = rationale[: again.start()]
        notes.append("dropped a second rationale block")
    suggestion, n_sug = _strip_leading(sug_rx, head.strip())
    if n_sug:
        notes.append("removed a leading suggestion marker")
    suggestion, rationale = suggestion.strip(), rationale.strip()
    if not suggestion:
        return ParsedResponse("", rationale, False, "empty suggestion (output has only a rationale)")
    if not rationale:
        return ParsedResponse(suggestion, "", False, "empty rationale")
    return ParsedResponse(suggestion, rationale, True, "; ".join(notes))


def _parse_before(text: str, rat_rx: re.Pattern, sug_rx: re.Pattern) -> ParsedResponse:
    notes = []
    m = _find(sug_rx, text, last=True)
    if m is None:
        rationale, _ = _strip_leading(rat_rx, text)
        return ParsedResponse("", rationale.strip(), False, "missing suggestion marker")
    head, tail = text[: m.start()], text[m.start():]
    suggestion, n_sug = _strip_leading(sug_rx, tail)
    if n_sug > 1:
        notes.append("collapsed a repeated suggestion marker")
    rationale, n_rat = _strip_leading(rat_rx, head.strip())
    if n_rat == 0 and rationale.strip():
        notes.append("rationale had no marker")
    elif n_rat > 1:
        notes.append("collapsed a repeated rationale marker")
    suggestion, rationale = suggestion.strip(), rationale.strip()
    if not suggestion:
        return ParsedResponse("", rationale, False, "empty suggestion")
    if not rationale:
        return ParsedResponse(suggestion, "", False, "empty rationale (output has only a suggestion)")
    return ParsedResponse(suggestion, rationale, True, "; ".join(notes))


def parse_stopped_response(text: Any, prompts_cfg: Any = None) -> ParsedResponse:
    """An "after" answer whose generation was stopped at the rationale marker (evaluate.stop_at_rationale).

    Well formed is "<suggestion><sep><rationale_marker>": the marker is kept in the text (HF and vLLM
    both keep stop strings) and the rationale was never generated, so it is empty by design, not
    missing. An output that never reached the marker is malformed as in `parse_response`.
    """
    try:
        r = response_format(prompts_cfg)
    except PromptConfigError as e:
        return ParsedResponse("", "", False, f"bad response config: {e}")
    text = _clean("" if text is None else str(text))
    if not text:
        return ParsedResponse("", "", False, "empty output")
    m = _find(_marker_regex(r["rationale_marker"]), text)
    head = text if m is None else text[: m.start()]
    suggestion, n_sug = _strip_leading(_marker_regex(r["suggestion_marker"]), head.strip())
    suggestion = suggestion.strip()
    if m is None:
        return ParsedResponse(suggestion, "", False, "missing rationale marker")
    if not suggestion:
        return ParsedResponse("", "", False, "empty suggestion")
    return ParsedResponse(suggestion, "", True, "removed a leading suggestion marker" if n_sug else "")
