"""Readers for the real dataset formats, each returning a LoadResult of validated Records.

    read_dataset("m2", "official-2014.combined.m2")
    read_dataset("aligned", "asset.valid.orig", "asset.valid.simp.*", task="simplification")

Errors are RecordError naming file, line and field. Filters are explicit options and every row
they drop is counted in LoadResult.dropped by reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rationalign.data.readers.aligned import read_aligned, read_gyafc
from rationalign.data.readers.coedit import read_coedit, split_instruction
from rationalign.data.readers.common import DEFAULT_INSTRUCTIONS, LoadResult
from rationalign.data.readers.hub import load_hub
from rationalign.data.readers.iterater import read_iterater
from rationalign.data.readers.m2 import read_m2
from rationalign.data.readers.tabular import read_stsb, read_wnc
from rationalign.data.records import RecordError, load_records

__all__ = [
    "ALIGNED_FORMATS",
    "DEFAULT_INSTRUCTIONS",
    "FORMATS",
    "LoadResult",
    "load_hub",
    "read_aligned",
    "read_coedit",
    "read_dataset",
    "read_gyafc",
    "read_iterater",
    "read_m2",
    "read_records",
    "read_stsb",
    "read_wnc",
    "reader_for",
    "split_instruction",
]


def read_records(path: str | Path, task: str | None = None) -> LoadResult:
    """The project's own record JSON Lines; `task`, if given, must match every record."""
    records = load_records(path)
    if task is not None:
        for r in records:
            if r.task != task:
                raise RecordError(f"{path}: record '{r.id}' has field 'task' {r.task!r}, expected {task!r}")
    return LoadResult(records)


# format name -> (reader taking one path, task keyword name or None). Aliases share a reader.
_SINGLE_FILE: dict[str, Callable[..., LoadResult]] = {
    "m2": read_m2, "iterater": read_iterater, "stsb": read_stsb, "wnc": read_wnc,
    "gyafc": read_gyafc, "coedit": read_coedit, "records": read_records, "jsonl": read_records,
}
ALIGNED_FORMATS = ("aligned", "lines", "asset", "turk", "turkcorpus", "jfleg")
FORMATS = tuple(sorted([*_SINGLE_FILE, *ALIGNED_FORMATS, "hub"]))


def reader_for(format: str) -> Callable[..., LoadResult]:
    """The function that reads `format` (its signature lists the format's options)."""
    if format == "hub":
        return load_hub
    if format in ALIGNED_FORMATS:
        return read_aligned
    return _SINGLE_FILE[format]


def read_dataset(format: str, *paths: str | Path, task: str | None = None, **opts) -> LoadResult:
    """Read files of a named format. Single-file formats accept several paths (concatenated);
    aligned formats take the source then the reference files (or one glob); hub takes a name."""
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown data format {format!r}; expected one of {list(FORMATS)}")
    if not paths:
        raise ValueError(f"format {fmt!r} needs at least one path")
    if fmt == "hub":
        if len(paths) != 1 or task is None:
            raise ValueError("format 'hub' takes one dataset name and task=")
        return load_hub(str(paths[0]), task=task, **opts)
    if fmt in ALIGNED_FORMATS:
        if task is None:
            raise ValueError(f"format {fmt!r} needs task= (line-aligned files do not name their task)")
        refs = opts.pop("refs", None)
        if refs is None:
            refs = paths[1] if len(paths) == 2 else list(paths[1:])
        elif len(paths) > 1:
            raise ValueError("give reference files either as extra paths or as refs=, not both")
        return read_aligned(paths[0], refs, task, **opts)
    reader = _SINGLE_FILE[fmt]
    kwargs = dict(opts) if task is None else {**opts, "task": task}
    out = LoadResult([])
    seen: dict[str, str] = {}
    for p in paths:
        part = reader(p, **kwargs)
        for r in part.records:
            if r.id in seen:
                raise RecordError(f"{p}: duplicate id '{r.id}' (also in {seen[r.id]}); pass id_prefix=")
            seen[r.id] = str(p)
        out.records.extend(part.records)
        for reason, n in part.dropped.items():
            out.dropped[reason] = out.dropped.get(reason, 0) + n
    return out
