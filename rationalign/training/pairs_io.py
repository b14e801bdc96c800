"""Readers for the two pair files, validating every row.

* RM pairs (kfold stage, ``rm_pairs.jsonl``): two *suggestions* for one input, ranked by a metric.
* D_H (pairs stage, ``d_h.jsonl``): two full *responses* (suggestion + rationale) with their rewards.

Both also accept the common user layout ``{prompt, chosen, rejected[, rationale, chosen_reward,
rejected_reward]}`` where ``prompt`` is the raw user message. A bad row raises ``PairsError`` naming
``file:line: field``; rows are never dropped silently (the readers return every row or raise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rationalign.io import iter_jsonl


class PairsError(ValueError):
    """A bad pair row; the message names file, line and field."""


@dataclass
class RMPair:
    id: str
    task: str | None          # None for the user layout (no task template)
    instruction: str
    source: str | None
    chosen: str               # suggestion only (the RM never sees a rationale)
    rejected: str
    prompt: str | None = None  # user layout: the raw user message
    chosen_score: float | None = None
    rejected_score: float | None = None
    metric: str | None = None


@dataclass
class PrefPair:
    id: str
    task: str | None
    instruction: str
    source: str | None
    chosen: str               # full response (suggestion + rationale)
    rejected: str
    prompt: str | None = None
    chosen_reward: float | None = None
    rejected_reward: float | None = None
    chosen_suggestion: str | None = None
    rejected_suggestion: str | None = None
    rationale: str | None = None  # preference rationale r (rdpo/rorpo)
    # The exact prompt r was written for (stage pair_rationales records it, with the two responses
    # in the randomised order it showed); None: align builds one from its template.
    rationale_prompt: str | None = None


_RM_FIELDS = {"id", "task", "instruction", "source", "chosen", "rejected", "chosen_score", "rejected_score",
              "metric", "prompt", "meta"}
_PREF_FIELDS = {"id", "task", "instruction", "source", "chosen", "rejected", "chosen_reward", "rejected_reward",
                "chosen_suggestion", "rejected_suggestion", "rationale", "prompt", "meta"}


def _iter_rows(path: Path):
    if not path.exists():
        raise PairsError(f"{path}: pairs file not found")
    yield from iter_jsonl(path, PairsError)


def _text(obj: dict, key: str, where: str, required: bool = True) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise PairsError(f"{where}: field '{key}' is missing")
        return None
    if not isinstance(v, str):
        raise PairsError(f"{where}: field '{key}' must be a string, got {type(v).__name__}")
    if required and not v.strip():
        raise PairsError(f"{where}: field '{key}' is empty")
    return v


def _number(obj: dict, key: str, where: str, required: bool) -> float | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise PairsError(f"{where}: field '{key}' is missing")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise PairsError(f"{where}: field '{key}' must be a finite number, got {v!r}")
    return float(v)


def _common(obj: dict, where: str, lineno: int, allowed: set[str]) -> dict[str, Any]:
    """Fields shared by both layouts: id, task/instruction/source or prompt, chosen, rejected."""
    unknown = set(obj) - allowed
    if unknown:
        raise PairsError(f"{where}: unknown field(s) {sorted(unknown)}")
    user_layout = "prompt" in obj and "source" not in obj
    out: dict[str, Any] = {"id": _text(obj, "id", where, required=False) or f"line-{lineno}"}
    if user_layout:
        out.update(prompt=_text(obj, "prompt", where), task=None, instruction="", source=None)
    else:
        out.update(task=_text(obj, "task", where), source=_text(obj, "source", where),
                   instruction=_text(obj, "instruction", where, required=False) or "", prompt=None)
    out["chosen"] = _text(obj, "chosen", where)
    out["rejected"] = _text(obj, "rejected", where)
    if out["chosen"].strip() == out["rejected"].strip():
        raise PairsError(f"{where}: fields 'chosen' and 'rejected' are identical")
    return out


def _check_unique(ids: dict[str, int], pid: str, where: str, lineno: int) -> None:
    if pid in ids:
        raise PairsError(f"{where}: field 'id': duplicate '{pid}' (first at line {ids[pid]})")
    ids[pid] = lineno


def load_rm_pairs(path: str | Path) -> list[RMPair]:
    """Every row of an RM pairs file, validated (scores are optional; when both are given chosen >= rejected)."""
    path = Path(path)
    out, ids = [], {}
    for where, lineno, obj in _iter_rows(path):
        row = _common(obj, where, lineno, _RM_FIELDS)
        _check_unique(ids, row["id"], where, lineno)
        cs = _number(obj, "chosen_score", where, required=False)
        rs = _number(obj, "rejected_score", where, required=False)
        if cs is not None and rs is not None and cs < rs:
            raise PairsError(f"{where}: field 'chosen_score' ({cs}) is below 'rejected_score' ({rs})")
        metric = obj.get("metric")
        if metric is not None and not isinstance(metric, str):
            raise PairsError(f"{where}: field 'metric' must be a string")
        out.append(RMPair(**row, chosen_score=cs, rejected_score=rs, metric=metric))
    if not out:
        raise PairsError(f"{path}: no pairs")
    return out


def load_pref_pairs(path: str | Path, *, need_rewards: bool = False, need_rationale: bool = False) -> list[PrefPair]:
    """Every row of a D_H (or user-layout) file, validated; need_* make optional fields required
    (MPO needs the rewards, RDPO/RORPO the preference rationale)."""
    path = Path(path)
    out, ids = [], {}
    for where, lineno, obj in _iter_rows(path):
        row = _common(obj, where, lineno, _PREF_FIELDS)
        _check_unique(ids, row["id"], where, lineno)
        cr = _number(obj, "chosen_reward", where, required=need_rewards)
        rr = _number(obj, "rejected_reward", where, required=need_rewards)
        rationale = _text(obj, "rationale", where, required=need_rationale)
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        cond = (meta.get("pair_rationale") or {}).get("condition_prompt")
        if cond is not None and not isinstance(cond, str):
            raise PairsError(f"{where}: field 'meta.pair_rationale.condition_prompt' must be a string")
        out.append(PrefPair(
            **row, chosen_reward=cr, rejected_reward=rr, rationale=rationale, rationale_prompt=cond,
            chosen_suggestion=_text(obj, "chosen_suggestion", where, required=False),
            rejected_suggestion=_text(obj, "rejected_suggestion", where, required=False),
        ))
    if not out:
        raise PairsError(f"{path}: no pairs")
    return out


__all__ = ["PairsError", "PrefPair", "RMPair", "load_pref_pairs", "load_rm_pairs"]
