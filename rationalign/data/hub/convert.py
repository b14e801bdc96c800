"""Rows of a hub dataset (dicts, as `datasets` yields them) -> Records, one converter per row shape.

Each converter takes the rows, the task they are read for, an id prefix and a `where` prefix for
error messages (hub:<name>@<revision>[<split>]), plus its own options from the yaml spec. Filters
are options, and every row a filter leaves out is counted by reason in LoadResult.dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from rationalign.data.readers.coedit import COEDIT_TASK_ALIASES, split_instruction
from rationalign.data.readers.common import DEFAULT_INSTRUCTIONS, LoadResult, require_text
from rationalign.data.records import Record, RecordError

Converter = Callable[..., LoadResult]
CONVERTERS: dict[str, Converter] = {}
OWN_INSTRUCTION = {"coedit"}  # converters whose rows carry their instruction (kept as is)


def converter(name: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        CONVERTERS[name] = fn
        return fn

    return deco


def _field(row: dict, name: str, where: str) -> object:
    if name not in row:
        raise RecordError(f"{where}: missing field '{name}' (row has {sorted(row)})")
    return row[name]


def _record(task: str, rid: str, source: str, target: str | None, where: str, row_index: int,
            references: list[str] | None = None, instruction: str | None = None, **meta) -> Record:
    return Record(id=rid, task=task, instruction=instruction or DEFAULT_INSTRUCTIONS[task], source=source,
                  target=target, references=references,
                  meta={"origin": where.split("[")[0], "row": row_index, **meta})


@converter("coedit")
def coedit(rows: Iterable[dict], task: str, id_prefix: str, where: str, *,
           task_values: Sequence[str] | None = None) -> LoadResult:
    """grammarly/coedit: {_id, task, src = "<instruction>: <text>", tgt}. Keeps the rows whose `task`
    is in `task_values` (default: the CoEdIT names that map to `task`); the others are counted as
    'task=<value>', so the manifest shows every task value the file holds."""
    wanted = set(task_values) if task_values else {k for k, v in COEDIT_TASK_ALIASES.items() if v == task}
    out = LoadResult([])
    for i, row in enumerate(rows):
        w = f"{where}:{i}"
        raw = _field(row, "task", w)
        if raw not in wanted:
            out.drop(f"task={raw}")
            continue
        instruction, source = split_instruction(require_text(_field(row, "src", w), w, "src"), w)
        target = require_text(_field(row, "tgt", w), w, "tgt")
        meta = {"coedit_id": row["_id"]} if row.get("_id") is not None else {}
        out.records.append(_record(task, f"{id_prefix}-{i:06d}", source, target, w, i,
                                   instruction=instruction, coedit_task=raw, **meta))
    return out


@converter("iterater")
def iterater(rows: Iterable[dict], task: str, id_prefix: str, where: str, *,
             drop_short_targets: bool = True) -> LoadResult:
    """wanyu/IteraTeR_human_sent: {before_sent, after_sent, labels, ...}; keeps rows labelled `task`
    (others counted as 'label=<x>'). drop_short_targets: EditEval's filter, drop rows whose raw
    after_sent has length <= 1 (gives the 88/185/35 test rows of the paper's Table 4)."""
    out = LoadResult([])
    for i, row in enumerate(rows):
        w = f"{where}:{i}"
        label = _field(row, "labels", w)
        if label != task:
            out.drop(f"label={label}")
            continue
        after = _field(row, "after_sent", w)
        if not isinstance(after, str):
            raise RecordError(f"{w}: field 'after_sent' must be a string")
        if drop_short_targets and len(after) <= 1:
            out.drop("after_sent_len<=1")
            continue
        source = require_text(_field(row, "before_sent", w), w, "before_sent")
        meta = {k: row[k] for k in ("doc_id", "revision_depth") if row.get(k) is not None}
        out.records.append(_record(task, f"{id_prefix}-{i:06d}", source, after.strip(), w, i, **meta))
    return out


def _references(value: object, w: str, name: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value:
        raise RecordError(f"{w}: field '{name}' must be a non-empty list of strings")
    return [require_text(v, w, f"{name}[{k}]") for k, v in enumerate(value)]


def _multi_reference(rows: Iterable[dict], task: str, id_prefix: str, where: str, target_ref: int,
                     source_field: str, refs_field: str) -> LoadResult:
    """Rows of {source_field, refs_field: [strings]}: target is reference `target_ref`, all are kept."""
    out = LoadResult([])
    for i, row in enumerate(rows):
        w = f"{where}:{i}"
        source = require_text(_field(row, source_field, w), w, source_field)
        refs = _references(_field(row, refs_field, w), w, refs_field)
        out.records.append(_record(task, f"{id_prefix}-{i:06d}", source, refs[target_ref], w, i, references=refs))
    return out


@converter("asset")
def asset(rows: Iterable[dict], task: str, id_prefix: str, where: str, *, target_ref: int = 0) -> LoadResult:
    """facebook/asset (config simplification): {original, simplifications: [10 strings]}."""
    return _multi_reference(rows, task, id_prefix, where, target_ref, "original", "simplifications")


@converter("jfleg")
def jfleg(rows: Iterable[dict], task: str, id_prefix: str, where: str, *, target_ref: int = 0) -> LoadResult:
    """jhu-clsp/jfleg: {sentence, corrections: [4 strings]}."""
    return _multi_reference(rows, task, id_prefix, where, target_ref, "sentence", "corrections")


@converter("stsb")
def stsb(rows: Iterable[dict], task: str, id_prefix: str, where: str, *, score_equals: float | None = 5.0,
         score_field: str = "similarity_score") -> LoadResult:
    """STS-B pairs {sentence1, sentence2, <score_field>}; EditEval keeps score == 5.0 only (true
    paraphrases), the rest counted as 'score!=5.0'. null keeps every pair."""
    out = LoadResult([])
    for i, row in enumerate(rows):
        w = f"{where}:{i}"
        score = _field(row, score_field, w)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
            raise RecordError(f"{w}: field '{score_field}' must be a number, got {score!r}")
        if score_equals is not None and float(score) != float(score_equals):
            out.drop(f"score!={score_equals}")
            continue
        s1 = require_text(_field(row, "sentence1", w), w, "sentence1")
        s2 = require_text(_field(row, "sentence2", w), w, "sentence2")
        out.records.append(_record(task, f"{id_prefix}-{i:06d}", s1, s2, w, i, score=float(score)))
    return out
