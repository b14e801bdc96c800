"""Prompt rendering and response parsing (pure functions, no model imports).

Configs come from `conf/prompts/*.yaml` (group `prompts`) and `conf/task/*.yaml` (group `task`,
one spec per task under `task.specs.<name>`). Both arrive as omegaconf DictConfig or plain dicts;
every accessor here takes either.

- `render_prompt`   the writing assistant's user message (instruction template, paper Table 8)
- `format_response` the assistant's target text: suggestion and rationale joined per `position`
- `parse_response`  the inverse, for model outputs; it never raises, it reports (`ok`, `reason`)
- `render_rm`       the reward model's input (paper Table 7): it scores the suggestion only
- `render_teacher`  the rationale teacher's prompt (paper Fig. 3): source, gold target, edits

Instruction choice: the spec's `instructions` (asking for a revision followed by an explanation)
or `plain_instructions` (no explanation; the no-rationale baseline) are authoritative, so the
with/without-rationale switch always changes the instruction. When a list has several entries the
choice is a stable hash of the record id, so reruns and other processes pick the same one.
`record.instruction` is used only when the spec has no instruction for that mode.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from string import Formatter
from typing import Any

POSITIONS = ("after", "before", "none")

_DEFAULT_RESPONSE = {
    "rationale_marker": "Explanation:",
    "suggestion_marker": "Revised text:",
    "separator": "\n",
}

SPEC_FIELDS = ("metric", "column", "instructions", "plain_instructions", "teacher_instruction", "rm_instruction")
TEMPLATE_FIELDS = {
    "instruction_template": ("instruction", "source"),
    "rm_template": ("instruction", "source", "response"),
    "teacher_template": ("instruction", "source", "target", "edits"),
}


class PromptConfigError(ValueError):
    """A prompts/task config is missing a field or has a bad template; the message names it."""


# ----------------------------------------------------------------------------- config access


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """`cfg.key` or `cfg[key]`, for DictConfig, dicts and plain objects; `default` if absent."""
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    try:  # DictConfig supports .get; attribute access on a missing key may raise in struct mode
        return cfg.get(key, default)  # type: ignore[union-attr]
    except AttributeError:
        return getattr(cfg, key, default)


def _require(cfg: Any, key: str, where: str) -> Any:
    value = cfg_get(cfg, key)
    if value is None:
        raise PromptConfigError(f"{where}: missing field '{key}'")
    return value


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def get_spec(task_cfg: Any, name: str) -> Any:
    """`task_cfg.specs[name]`, with an error naming the known tasks."""
    specs = cfg_get(task_cfg, "specs") or {}
    spec = cfg_get(specs, name)
    if spec is None:
        raise PromptConfigError(f"task.specs: no spec for task '{name}' (known: {sorted(specs)})")
    return spec


def task_columns(spec: Any) -> list[str]:
    """Table 1 column name(s) of a task spec; `column` may be one name or a list."""
    return [str(c) for c in _as_list(cfg_get(spec, "column"))]


def validate_spec(spec: Any, name: str = "<spec>") -> None:
    """Raise PromptConfigError naming the first missing or empty field of a task spec."""
    where = f"task.specs.{name}"
    for key in SPEC_FIELDS:
        value = cfg_get(spec, key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PromptConfigError(f"{where}: missing field '{key}'")
        if key in ("instructions", "plain_instructions"):
            items = _as_list(value)
            if not items or not all(isinstance(s, str) and s.strip() for s in items):
                raise PromptConfigError(f"{where}.{key}: needs a non-empty list of non-empty strings")


def template_fields(template: str) -> set[str]:
    """Names of the `{placeholders}` in a str.format template."""
    return {f for _, f, _, _ in Formatter().parse(template) if f}


def validate_prompts(prompts_cfg: Any) -> None:
    """Every template exists and uses exactly its documented placeholders."""
    for key, expected in TEMPLATE_FIELDS.items():
        template = _require(prompts_cfg, key, "prompts")
        fields = template_fields(template)
        if fields != set(expected):
            raise PromptConfigError(
                f"prompts.{key}: placeholders {sorted(fields)} != expected {sorted(expected)}"
            )
    _response_cfg(prompts_cfg)


def _fill(template: str, where: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise PromptConfigError(f"{where}: cannot fill template ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------------------- instructions


def stable_index(key: str, n: int) -> int:
    """Deterministic index in [0, n) from a string (independent of PYTHONHASHSEED)."""
    if n <= 0:
        raise ValueError("stable_index: n must be positive")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def choose_instruction(
    spec: Any,
    record_id: str,
    with_rationale: bool = True,
    instruction_index: int | None = None,
    fallback: str | None = None,
) -> str:
    """The instruction for one record: `instructions` (with rationale) or `plain_instructions`.

    `instruction_index` picks explicitly (modulo the list length); otherwise the record id's hash
    does. `fallback` (e.g. record.instruction) is used only when the list is empty.
    """
    key = "instructions" if with_rationale else "plain_instructions"
    options = [s for s in _as_list(cfg_get(spec, key)) if isinstance(s, str) and s.strip()]
    if not options:
        if fallback and fallback.strip():
            return fallback
        raise PromptConfigError(f"task spec: no '{key}' and the record has no instruction")
    if instruction_index is not None:
        return options[instruction_index % len(options)]
    return options[stable_index(str(record_id), len(options))]


# ----------------------------------------------------------------------------- prompts


def render_prompt(
    prompts_cfg: Any,
    spec: Any,
    record: Any,
    with_rationale: bool = True,
    instruction_index: int | None = None,
) -> str:
    """The user message for one record (chat templates are applied by the engine, not here).

    `record` is a `Record` or a dict with at least `id` and `source` (and optionally `instruction`).
    """
    template = _require(prompts_cfg, "instruction_template", "prompts")
    record_id = cfg_get(record, "id")
    source = cfg_get(record, "source")
    if record_id is None or source is None:
        raise PromptConfigError("render_prompt: the record needs 'id' and 'source'")
    instruction = choose_instruction(
        spec, str(record_id), with_rationale, instruction_index, fallback=cfg_get(record, "instruction")
    )
    return _fill(template, "prompts.instruction_template", instruction=instruction, source=source)


def render_rm(prompts_cfg: Any, spec: Any, source: str, suggestion: str) -> str:
    """Reward-model input: the task's rm_instruction, the source and the suggestion only."""
    template = _require(prompts_cfg, "rm_template", "prompts")
    instruction = _require(spec, "rm_instruction", "task spec")
    return _fill(template, "prompts.rm_template", instruction=instruction, source=source, response=suggestion)


def _edit_fields(edit: Any) -> tuple[str, str, str]:
    if isinstance(edit, Mapping):
        o = edit.get("o_str", edit.get("original", edit.get("source", "")))
        c = edit.get("c_str", edit.get("corrected", edit.get("target", "")))
        return str(o or ""), str(c or ""), str(edit.get("type", "") or "")
    if hasattr(edit, "o_str") and hasattr(edit, "c_str"):
        return str(edit.o_str), str(edit.c_str), str(getattr(edit, "type", "") or "")
    if isinstance(edit, (tuple, list)) and len(edit) in (2, 3):
        return str(edit[0]), str(edit[1]), str(edit[2]) if len(edit) == 3 else ""
    raise PromptConfigError(f"render_teacher: cannot read an edit from {edit!r}")


def format_edit_list(edits: str | Iterable[Any] | None, with_types: bool = False) -> str:
    """Edits as text for the teacher prompt.

    Accepts a pre-formatted string, or a sequence of `rationalign.edits.Edit`, objects with
    `o_str`/`c_str`, dicts (`o_str`/`c_str` or `original`/`corrected`), or (orig, corr[, type])
    tuples. The list layout is `rationalign.edits.format_edits`.
    """
    if isinstance(edits, str):
        return edits
    from rationalign.edits import (  # pure module; errant loads lazily there
        Edit,
        format_edits,
    )

    items = [Edit(0, 0, *_edit_fields(e)) for e in (edits or [])]
    return format_edits(items, with_types=with_types)


def render_teacher(
    prompts_cfg: Any,
    spec: Any,
    source: str,
    target: str,
    edits: str | Iterable[Any] | None,
    with_types: bool = False,
) -> str:
    """Rationale-teacher prompt: task teacher_instruction, source, gold revision and its edits."""
    template = _require(prompts_cfg, "teacher_template", "prompts")
    instruction = _require(spec, "teacher_instruction", "task spec")
    return _fill(
        template,
        "prompts.teacher_template",
        instruction=instruction,
        source=source,
        target=target,
        edits=format_edit_list(edits, with_types=with_types),
    )


# ----------------------------------------------------------------------------- responses


def _response_cfg(prompts_cfg: Any) -> dict[str, str]:
    resp = cfg_get(prompts_cfg, "response")
    out = dict(_DEFAULT_RESPONSE)
    if resp is not None:
        for key in _DEFAULT_RESPONSE:
            value = cfg_get(resp, key)
            if value is not None:
                out[key] = str(value)
    for key in ("rationale_marker", "suggestion_marker"):
        if not out[key].strip():
            raise PromptConfigError(f"prompts.response.{key}: must not be empty")
    return out


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
    r = _response_cfg(prompts_cfg)
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
            r = _response_cfg(prompts_cfg)
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


def parse_responses(texts: Sequence[Any], position: str = "after", prompts_cfg: Any = None) -> list[ParsedResponse]:
    """`parse_response` over a batch."""
    return [parse_response(t, position, prompts_cfg) for t in texts]


__all__ = [
    "POSITIONS",
    "ParsedResponse",
    "PromptConfigError",
    "cfg_get",
    "choose_instruction",
    "format_edit_list",
    "format_response",
    "get_spec",
    "parse_response",
    "parse_responses",
    "render_prompt",
    "render_rm",
    "render_teacher",
    "stable_index",
    "task_columns",
    "template_fields",
    "validate_prompts",
    "validate_spec",
]
