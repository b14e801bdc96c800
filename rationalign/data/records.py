"""The one record schema every stage reads and writes (JSON Lines).

A record is one writing-task example:
  id           unique string
  task         one of the registered task names (gec, fluency, ...)
  instruction  the task instruction shown to the model (Table 12 style)
  source       the text to edit (non-empty)
  target       the gold revision, or null for unlabeled inputs
  references   optional list of gold revisions (multi-reference test sets)
  rationale    optional explanation of the edits
  meta         optional free-form dict (origin file/line, split, ...)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rationalign.io import atomic_write_jsonl, iter_jsonl


class RecordError(ValueError):
    """A bad input record; the message names file, line and field."""


class DataConfigError(ValueError):
    """A data.local / data.hub spec that cannot be read; the message starts with its config key."""


@dataclass
class Record:
    id: str
    task: str
    instruction: str
    source: str
    target: str | None = None
    references: list[str] | None = None
    rationale: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None and v != {}}

    @property
    def gold(self) -> list[str]:
        """All gold revisions: references if given, else [target]."""
        if self.references:
            return list(self.references)
        return [self.target] if self.target is not None else []


# spaCy (errant) refuses texts over 1M characters; a writing-task example is far shorter, so a
# longer field is a broken file (a lost line break), reported here with its line.
MAX_FIELD_CHARS = 100_000
_REQUIRED_STR = ("id", "task", "instruction", "source")
_OPTIONAL_STR = ("target", "rationale")


def record_from_dict(d: Any, where: str = "<record>") -> Record:
    """Validate one parsed JSON object; `where` is 'file:line' for error messages."""
    if not isinstance(d, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(d).__name__}")
    unknown = set(d) - {"id", "task", "instruction", "source", "target", "references", "rationale", "meta"}
    if unknown:
        raise RecordError(f"{where}: unknown field(s) {sorted(unknown)}")
    for key in _REQUIRED_STR:
        if key not in d:
            raise RecordError(f"{where}: missing required field '{key}'")
        if not isinstance(d[key], str):
            raise RecordError(f"{where}: field '{key}' must be a string")
        if key != "instruction" and not d[key].strip():
            raise RecordError(f"{where}: field '{key}' is empty")
    for key in _OPTIONAL_STR:
        if d.get(key) is not None and not isinstance(d[key], str):
            raise RecordError(f"{where}: field '{key}' must be a string or null")
    for key in ("source", "target", "rationale"):
        if isinstance(d.get(key), str) and len(d[key]) > MAX_FIELD_CHARS:
            raise RecordError(f"{where}: field '{key}' is {len(d[key])} characters (more than {MAX_FIELD_CHARS}: "
                              "a missing line break?)")
    refs = d.get("references")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, str) for r in refs)):
        raise RecordError(f"{where}: field 'references' must be a list of strings")
    meta = d.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError(f"{where}: field 'meta' must be an object")
    return Record(
        id=d["id"], task=d["task"], instruction=d["instruction"], source=d["source"],
        target=d.get("target"), references=refs, rationale=d.get("rationale"), meta=meta,
    )


def read_jsonl(path: str | Path) -> list[dict]:
    """Every object of a JSON Lines file, naming file:line on bad JSON. Blank lines are skipped."""
    return [obj for _, _, obj in iter_jsonl(path, RecordError)]


def load_located_records(path: str | Path) -> list[tuple[str, Record]]:
    """('file:line', record) for every record; the first bad one raises with file:line:field."""
    out, seen = [], {}
    for where, lineno, obj in iter_jsonl(path, RecordError):
        rec = record_from_dict(obj, where)
        if rec.target is not None and not rec.target.strip():
            # (a reader may keep an empty revision, e.g. an IteraTeR deletion; a records file may not:
            # it would fail much later, as an empty SFT target)
            raise RecordError(f"{where}: field 'target' is empty (null marks a record without one)")
        if rec.id in seen:
            raise RecordError(f"{where}: duplicate id '{rec.id}' (first at line {seen[rec.id]})")
        seen[rec.id] = lineno
        out.append((where, rec))
    return out


def load_records(path: str | Path) -> list[Record]:
    """Load and validate every record; the first bad one raises with file:line:field."""
    return [rec for _, rec in load_located_records(path)]


def save_records(path: str | Path, records: Iterable[Record]) -> int:
    return atomic_write_jsonl(path, (r.to_dict() for r in records))
