"""What a stage's manifest says about its files, and whether the disk still agrees.

A manifest lists every file the stage wrote (`outputs`: relative path -> sha256) with its size and
mtime (`output_stats`). Reuse trusts a stage only if each listed file is there with its recorded
size and, when its mtime moved, its recorded hash: a truncated, deleted or edited artifact is found
with a stat per file, and hashed only when the stat cannot vouch for it. A downstream manifest
records each upstream's `outputs_digest`, so an upstream rebuilt to different files makes every
stage built on the old ones stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from rationalign.io import sha256_file, sha256_json

MANIFEST = "manifest.json"
# Written when a stage starts: the upstream digests it is built from. A dir resumed after its
# upstream changed is cleared first, so partial files from the old inputs never mix with new ones.
STARTED = ".started.json"


def listed_files(out: Path) -> list[Path]:
    """The files a manifest records: everything but the manifest itself, hidden files (temporary files,
    the start marker) and trainer checkpoints (resumable state, checked by training.trainer)."""
    files = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if not p.is_file() or p.name == MANIFEST or any(part.startswith(".") for part in rel.parts):
            continue
        if any(part.startswith("checkpoint") for part in rel.parts[:-1]):
            continue
        files.append(p)
    return files


def describe_outputs(out: Path) -> tuple[dict[str, str], dict[str, list[int]]]:
    """(outputs: path -> sha256, output_stats: path -> [size, mtime_ns]) of a finished stage dir."""
    outputs, stats = {}, {}
    for p in listed_files(out):
        rel = str(p.relative_to(out))
        st = p.stat()
        outputs[rel] = sha256_file(p)
        stats[rel] = [st.st_size, st.st_mtime_ns]
    return outputs, stats


def outputs_digest(manifest: dict) -> str:
    """One hash of every output's content: what a downstream stage was built from."""
    return sha256_json(manifest.get("outputs") or {})[:16]


def read_manifest(path: Path) -> tuple[dict | None, str | None]:
    """(manifest, None), (None, None) when there is none, or (None, why) when it cannot be trusted."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path}: unreadable ({e})"
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"{path}: not valid JSON ({e.msg} at line {e.lineno}), e.g. half-written"
    if not isinstance(manifest, dict):
        return None, f"{path}: expected a JSON object, got {type(manifest).__name__}"
    return manifest, None


def outputs_problem(out: Path, manifest: dict) -> str | None:
    """None when every listed output is on disk as recorded; else the first file that is not, and why."""
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict):
        return f"{out / MANIFEST}: lists no outputs"
    stats = manifest.get("output_stats") or {}
    for rel, digest in outputs.items():
        p = out / rel
        try:
            st = p.stat()
        except FileNotFoundError:
            return f"{p}: missing"
        size, mtime = (stats.get(rel) or [None, None])[:2]
        if size is not None and st.st_size != size:
            return f"{p}: {st.st_size} bytes, the manifest recorded {size}"
        if mtime is not None and st.st_mtime_ns == mtime:
            continue  # same size, untouched since the manifest: no need to read it
        if sha256_file(p) != digest:
            return f"{p}: content differs from the manifest's sha256"
    return None
