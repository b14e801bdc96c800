"""Line-aligned multi-reference files (ASSET, TurkCorpus, JFLEG, GYAFC) -> records.

Line i of the source file pairs with line i of every reference file.
"""

from __future__ import annotations

import glob as globmod
from collections.abc import Sequence
from pathlib import Path

from rationalign.data.readers.common import (
    LoadResult,
    check_task,
    default_prefix,
    instruction_for,
    natural_key,
    read_lines,
    require_text,
)
from rationalign.data.records import Record, RecordError


def _ref_paths(refs: str | Path | Sequence[str | Path], source: Path) -> list[Path]:
    if isinstance(refs, (str, Path)):
        pattern = str(refs)
        if any(c in pattern for c in "*?["):
            paths = sorted((Path(p) for p in globmod.glob(pattern)), key=natural_key)
            if not paths:
                raise RecordError(f"{source}: reference glob {pattern!r} matches no file")
            return paths
        return [Path(refs)]
    paths = [Path(p) for p in refs]
    if not paths:
        raise RecordError(f"{source}: no reference files given")
    return paths


def read_aligned(source: str | Path, refs: str | Path | Sequence[str | Path], task: str,
                 instruction: str | None = None, *, target_ref: int = 0,
                 id_prefix: str | None = None) -> LoadResult:
    """`refs`: list of files, one file, or a glob (sorted numerically: simp.2 before simp.10).
    The target is reference `target_ref`; all references are kept in order."""
    source = Path(source)
    check_task(task, str(source))
    ref_paths = _ref_paths(refs, source)
    if not 0 <= target_ref < len(ref_paths):
        raise ValueError(f"target_ref={target_ref} but only {len(ref_paths)} reference file(s)")
    src_lines = read_lines(source)
    ref_lines = []
    for rp in ref_paths:
        lines = read_lines(rp)
        if len(lines) != len(src_lines):
            raise RecordError(f"{rp}: has {len(lines)} lines but source {source} has {len(src_lines)}")
        ref_lines.append(lines)
    prefix = id_prefix or default_prefix(task, source)
    records = []
    for i, line in enumerate(src_lines):
        lineno = i + 1
        text = require_text(line, f"{source}:{lineno}", "source")
        refs_i = [require_text(r[i], f"{rp}:{lineno}", "reference") for r, rp in zip(ref_lines, ref_paths)]
        records.append(Record(
            id=f"{prefix}-{lineno:05d}", task=task, instruction=instruction_for(task, instruction),
            source=text, target=refs_i[target_ref], references=refs_i,
            meta={"origin": str(source), "line": lineno, "reference_files": [str(p) for p in ref_paths]},
        ))
    return LoadResult(records)


def read_gyafc(path: str | Path, task: str = "formality", instruction: str | None = None, *,
               id_prefix: str | None = None) -> LoadResult:
    """GYAFC informal -> formal. `path` is a split folder (holding `informal` and `formal.ref0..3`,
    or a single `formal` in train) or the `informal` file itself."""
    path = Path(path)
    informal = path / "informal" if path.is_dir() else path
    folder = informal.parent
    if not informal.exists():
        raise RecordError(f"{informal}: GYAFC source file 'informal' not found")
    refs = sorted(folder.glob("formal.ref*"), key=natural_key)
    if not refs and (folder / "formal").exists():
        refs = [folder / "formal"]
    if not refs:
        raise RecordError(f"{folder}: no GYAFC reference file (formal.ref0.. or formal)")
    return read_aligned(informal, refs, task, instruction,
                        id_prefix=id_prefix or f"{task}-gyafc-{folder.name}")
