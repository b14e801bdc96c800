"""ITERATER sentence-level JSON Lines -> records (fluency / clarity / coherence by `labels`)."""

from __future__ import annotations

from pathlib import Path

from rationalign.data.readers.common import (
    LoadResult,
    check_task,
    default_prefix,
    instruction_for,
    require_text,
)
from rationalign.data.records import Record, RecordError
from rationalign.io import iter_jsonl

ITERATER_TASKS = ("fluency", "clarity", "coherence")


def read_iterater(path: str | Path, task: str | None = None, instruction: str | None = None, *,
                  drop_short_targets: bool | None = None, other_labels: str = "error",
                  id_prefix: str | None = None) -> LoadResult:
    """Read one ITERATER file.

    task: None takes each row's task from `labels`; a task name keeps only rows with that label
      (the others are dropped and counted as 'label=<x>').
    drop_short_targets: EditEval's filter, drop rows whose raw after_sent has len <= 1 (it gives
      88/185/35 test rows). None = on for files named dev*/test*, off otherwise.
    other_labels: what to do with labels outside fluency/clarity/coherence (meaning-changed,
      style, others in the full corpus): 'error' or 'drop' (counted).
    """
    path = Path(path)
    if task is not None:
        check_task(task, str(path))
        if task not in ITERATER_TASKS:
            raise RecordError(f"{path}: ITERATER has no task {task!r}; expected one of {list(ITERATER_TASKS)}")
    if other_labels not in ("error", "drop"):
        raise ValueError(f"other_labels must be 'error' or 'drop', got {other_labels!r}")
    if drop_short_targets is None:
        drop_short_targets = path.name.startswith(("dev", "test"))
    result = LoadResult([])
    for where, lineno, row in iter_jsonl(path, RecordError):
        for key in ("before_sent", "after_sent", "labels"):
            if key not in row:
                raise RecordError(f"{where}: missing required field '{key}'")
        label = row["labels"]
        if not isinstance(label, str):
            raise RecordError(f"{where}: field 'labels' must be a string")
        if label not in ITERATER_TASKS:
            if other_labels == "error":
                raise RecordError(f"{where}: field 'labels' is {label!r}, not one of "
                                  f"{list(ITERATER_TASKS)} (pass other_labels='drop' to skip such rows)")
            result.drop(f"label={label}")
            continue
        if task is not None and label != task:
            result.drop(f"label={label}")
            continue
        after = row["after_sent"]
        if not isinstance(after, str):
            raise RecordError(f"{where}: field 'after_sent' must be a string")
        if drop_short_targets and len(after) <= 1:
            result.drop("after_sent_len<=1")
            continue
        source = require_text(row["before_sent"], where, "before_sent")
        meta = {"origin": str(path), "line": lineno, "labels": label}
        for key in ("doc_id", "revision_depth"):
            if key in row:
                meta[key] = row[key]
        prefix = id_prefix or f"iterater-{default_prefix(label, path)}"
        result.records.append(Record(
            id=f"{prefix}-{lineno:05d}", task=label, instruction=instruction_for(label, instruction),
            source=source, target=after.strip(), meta=meta,
        ))
    return result
