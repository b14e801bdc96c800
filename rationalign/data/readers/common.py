"""Shared pieces of the format readers: result type, default instructions, error helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rationalign.data.records import Record, RecordError
from rationalign.data.tasks import TASKS
from rationalign.io import read_text_located

# CoEdIT-style plain instructions; callers pass their own (e.g. the paper's Table 12 templates).
DEFAULT_INSTRUCTIONS = {
    "gec": "Fix the grammar:",
    "fluency": "Fix the disfluencies in the text:",
    "clarity": "Make the text clearer:",
    "coherence": "Make the text more coherent:",
    "paraphrase": "Paraphrase the sentence:",
    "neutralization": "Remove the point of view:",
    "simplification": "Make this text simpler:",
    "formality": "Make this text more formal:",
}


@dataclass
class LoadResult:
    """Records read plus counts of what an explicit filter dropped, by reason."""

    records: list[Record]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_read(self) -> int:
        return len(self.records) + sum(self.dropped.values())

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def check_task(task: str | None, where: str = "") -> str:
    if task not in TASKS:
        raise RecordError(f"{where + ': ' if where else ''}unknown task {task!r}; expected one of {list(TASKS)}")
    return task


def instruction_for(task: str, instruction: str | dict[str, str] | None) -> str:
    """The caller's instruction (one string, or a per-task dict), else the task's default."""
    if isinstance(instruction, dict):
        instruction = instruction.get(task)
    return DEFAULT_INSTRUCTIONS[task] if instruction is None else instruction


def read_lines(path: str | Path) -> list[str]:
    """Lines without their newline; a missing final newline adds no empty line."""
    text = read_text_located(path, RecordError)
    # splitlines() would also split on \x0b, \x1c, U+2028 ... which real corpora contain.
    lines = re.split(r"\r?\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def require_text(value: object, where: str, fieldname: str) -> str:
    """The value as stripped text; RecordError naming where/field if missing or empty."""
    if not isinstance(value, str):
        raise RecordError(f"{where}: field '{fieldname}' must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise RecordError(f"{where}: field '{fieldname}' is empty")
    return text


def default_prefix(task: str, path: Path) -> str:
    return f"{task}-{path.name}"


def natural_key(path: Path) -> list:
    """Sort ref0, ref1, ..., ref10 numerically rather than lexically."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]
