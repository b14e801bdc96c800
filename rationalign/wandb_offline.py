"""Read an offline wandb run back: its name, group, tags, config and summary, as `wandb sync` would
send them. Offline runs (the default, `tracking.mode=offline`) keep everything in one transaction log,
`<run dir>/run-<id>.wandb`; wandb >= 0.2x ships no Python reader for it, so this is one: the log is
LevelDB's record format (32 KiB blocks; each record: crc32, length, type FULL/FIRST/MIDDLE/LAST) after
a 7-byte header, each payload a `wandb_internal_pb2.Record`.

What checks a run's summary offline calls (tests/test_tracking_identity.py, experiments/slurm_check.py).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

_HEADER = b":W&B"
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def records(path: Path) -> list[bytes]:
    """The payloads of a .wandb transaction log, in order."""
    data = Path(path).read_bytes()
    if data[:4] != _HEADER:
        raise ValueError(f"{path}: not a wandb transaction log (header {data[:4]!r})")
    out: list[bytes] = []
    pos, partial = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding up to the next block
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            partial = chunk
        elif kind == _MIDDLE:
            partial += chunk
        elif kind == _LAST:
            out.append(partial + chunk)
        else:
            raise ValueError(f"{path}: record type {kind} at byte {pos - 7 - length}")
    return out


def _value(item: Any) -> tuple[str, Any]:
    key = ".".join(item.nested_key) if item.nested_key else item.key
    return key, json.loads(item.value_json)


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """{'name', 'group', 'tags', 'config', 'summary'} of an offline run dir (`.../offline-run-*`).
    config and summary map top-level keys to values (config values unwrapped from wandb's {'value': v})."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    logs = sorted(run_dir.glob("run-*.wandb"))
    if not logs:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb transaction log")
    out: dict[str, Any] = {"name": None, "group": None, "tags": [], "config": {}, "summary": {}}
    for payload in records(logs[0]):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out.update(name=rec.run.display_name, group=rec.run.run_group, tags=list(rec.run.tags))
            out["config"].update(_value(i) for i in rec.run.config.update)
        elif kind == "config":
            out["config"].update(_value(i) for i in rec.config.update)
        elif kind == "summary":
            out["summary"].update(_value(i) for i in rec.summary.update)
    out["config"] = {k: v.get("value", v) if isinstance(v, dict) else v for k, v in out["config"].items()}
    return out
