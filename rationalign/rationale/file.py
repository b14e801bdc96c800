"""`file`: rationales written elsewhere (by hand, another system, a past run), JSONL keyed by id.

Rows look like {"id": "...", "rationale": "..."}; full Record rows work too (other keys ignored).
A malformed row stops the run naming file:line:field; a record with no row is reported per id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rationalign.data.records import RecordError
from rationalign.io import iter_jsonl
from rationalign.rationale.base import RationaleSource, register_source


@dataclass
class FileConfig:
    name: str = "file"
    path: str = "???"
    id_field: str = "id"
    field: str = "rationale"


def load_rationales(path: str | Path, id_field: str = "id", field: str = "rationale") -> dict[str, tuple[str | None, str]]:
    """{id: (rationale or None, 'file:line')}; None where the row has no rationale."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"rationale.path: no such file {path}")
    out: dict[str, tuple[str | None, str]] = {}
    for where, _lineno, row in iter_jsonl(path, RecordError):
        rid = row.get(id_field)
        if not isinstance(rid, str) or not rid:
            raise RecordError(f"{where}: field '{id_field}' must be a non-empty string")
        text = row.get(field)
        if text is not None and not isinstance(text, str):
            raise RecordError(f"{where}: field '{field}' must be a string or null, got {type(text).__name__}")
        if rid in out:
            raise RecordError(f"{where}: duplicate id '{rid}' (first at {out[rid][1]})")
        out[rid] = (text, where)
    return out


@register_source("file", FileConfig)
class FileSource(RationaleSource):
    def __init__(self, config: FileConfig | None = None) -> None:
        super().__init__()
        self.config = config or FileConfig()
        if self.config.path in ("", "???", None):
            raise ValueError("rationale.path: required for rationale=file (a JSONL of {id, rationale})")
        self._table: dict[str, tuple[str | None, str]] | None = None

    @property
    def table(self) -> dict[str, tuple[str | None, str]]:
        if self._table is None:  # read lazily, once
            c = self.config
            self._table = load_rationales(c.path, c.id_field, c.field)
        return self._table

    def _explain(self, records, edits):
        out: list[str | None] = []
        failed: dict[int, str] = {}
        for i, rec in enumerate(records):
            text, where = self.table.get(rec.id, (None, ""))
            if not where:
                failed[i] = f"id not found in {self.config.path}"
            elif text is None or not text.strip():
                failed[i] = f"{where}: no '{self.config.field}' for this id"
            out.append(text if text and text.strip() else None)
        return out, failed
