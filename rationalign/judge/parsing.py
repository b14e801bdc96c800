"""Parsers for judge answers. Each returns the parsed value or None -- never a guess. An answer
that names two different verdicts, or misses a rubric aspect, is unparseable."""

from __future__ import annotations

import re
from collections.abc import Sequence

_WINNER = re.compile(r"winner\s*[:=]\s*[\*\[\"']*\s*(1|2|tie)\b", re.IGNORECASE)
_ACCURATE = re.compile(r"accurate\s*[:=]\s*[\*\[\"']*\s*(yes|no)\b", re.IGNORECASE)


def _single(matches: list[str]) -> str | None:
    found = {m.lower() for m in matches}
    return found.pop() if len(found) == 1 else None


def parse_pairwise(text: str) -> str | None:
    """'1', '2' or 'tie' from a line like 'Winner: 2'."""
    return _single(_WINNER.findall(text))


def parse_accuracy(text: str) -> bool | None:
    """True/False from 'Accurate: yes|no'."""
    v = _single(_ACCURATE.findall(text))
    return None if v is None else v == "yes"


def parse_rubric(text: str, aspects: Sequence[str]) -> dict[str, int] | None:
    """{aspect: 1..5} from lines like 'fluency: 4'; every aspect is required, exactly once in value."""
    out: dict[str, int] = {}
    for a in aspects:
        pat = re.compile(rf"{re.escape(a)}\s*[:=]\s*[\*]*\s*(\d+)(?:\s*/\s*5)?\b", re.IGNORECASE)
        vals = {int(v) for v in pat.findall(text)}
        if len(vals) != 1:
            return None
        v = vals.pop()
        if not 1 <= v <= 5:
            return None
        out[a] = v
    return out
