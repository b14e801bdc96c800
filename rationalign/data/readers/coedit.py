"""CoEdIT-style JSON Lines: {"src": "Instruction: text", "tgt": ..., "task": ...}."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from rationalign.data.readers.common import LoadResult, default_prefix, require_text
from rationalign.data.records import Record, RecordError
from rationalign.data.tasks import TASKS
from rationalign.io import iter_jsonl

# CoEdIT's own task names -> ours.
COEDIT_TASK_ALIASES = {
    "gec": "gec", "fluency": "fluency", "clarity": "clarity", "coherence": "coherence",
    "paraphrase": "paraphrase", "neutralize": "neutralization", "neutralization": "neutralization",
    "simplification": "simplification", "simplify": "simplification", "formality": "formality",
    "formal": "formality",
}


def split_instruction(src: str, where: str) -> tuple[str, str]:
    """'Fix the grammar: text' -> ('Fix the grammar:', 'text'), split at the first ':'."""
    head, sep, text = src.partition(":")
    if not sep or not head.strip():
        raise RecordError(f"{where}: field 'src' has no 'Instruction:' prefix before the first ':'")
    return head.strip() + ":", require_text(text, where, "src (text after the instruction)")


def read_coedit(path: str | Path, task: str | None = None, *,
                keep_tasks: Collection[str] | None = None, id_prefix: str | None = None) -> LoadResult:
    """task: None maps each row's `task` through COEDIT_TASK_ALIASES; a name overrides every row.
    keep_tasks: keep only these (mapped) tasks, the rest counted as 'task=<x>'."""
    path = Path(path)
    if task is not None and task not in TASKS:
        raise RecordError(f"{path}: unknown task {task!r}; expected one of {list(TASKS)}")
    result = LoadResult([])
    for where, lineno, row in iter_jsonl(path, RecordError):
        for key in ("src", "tgt") + (("task",) if task is None else ()):
            if key not in row:
                raise RecordError(f"{where}: missing required field '{key}'")
        if task is None:
            raw_task = row["task"]
            if raw_task not in COEDIT_TASK_ALIASES:
                raise RecordError(f"{where}: field 'task' {raw_task!r} is not a known CoEdIT task "
                                  f"({sorted(COEDIT_TASK_ALIASES)})")
            rec_task = COEDIT_TASK_ALIASES[raw_task]
        else:
            rec_task = task
        if keep_tasks is not None and rec_task not in keep_tasks:
            result.drop(f"task={rec_task}")
            continue
        instruction, source = split_instruction(require_text(row["src"], where, "src"), where)
        target = require_text(row["tgt"], where, "tgt")
        meta = {"origin": str(path), "line": lineno}
        if "_id" in row:
            meta["coedit_id"] = row["_id"]
        result.records.append(Record(
            id=f"{id_prefix or default_prefix('coedit', path)}-{lineno:06d}", task=rec_task,
            instruction=instruction, source=source, target=target, meta=meta,
        ))
    return result
