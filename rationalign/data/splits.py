"""Load the configured data splits (labeled / unlabeled / test) as validated Records."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rationalign.data.records import Record, RecordError, load_records

SPLITS = ("labeled", "unlabeled", "test")


def split_files(cfg: DictConfig) -> list[str]:
    """Files whose content determines the data (hashed into stage keys)."""
    if cfg.data.format == "records":
        return [cfg.data[s] for s in SPLITS if cfg.data.get(s)]
    from rationalign.data.readers.configured import configured_files

    return configured_files(cfg)


def _cap(records: list[Record], cap: int | None, seed: int) -> list[Record]:
    if cap is None:
        return records
    by_task: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_task[r.task].append(r)
    out = []
    for task in sorted(by_task):
        rs = by_task[task]
        if len(rs) > cap:
            rs = random.Random(f"{seed}-{task}").sample(rs, cap)
            rs.sort(key=lambda r: r.id)
        out.extend(rs)
    return out


def known_tasks() -> set[str]:
    """Every task with a config file (conf/task/<name>.yaml), whether selected or not."""
    from rationalign.cli import CONF_DIR

    return {p.stem for p in (Path(CONF_DIR) / "task").glob("*.yaml")} - {"all"}


def load_split(cfg: DictConfig, split: str) -> list[Record]:
    """Records of one split for the configured tasks, capped per task as configured."""
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' (expected one of {SPLITS})")
    tasks = list(cfg.task.names)
    if cfg.data.format == "records":
        path = cfg.data.get(split)
        if not path:
            return []
        if not Path(path).exists():
            raise FileNotFoundError(f"data.{split}: file not found: {path}")
        records = load_records(path)
    else:
        from rationalign.data import readers  # real formats, data=local / data=hub

        records = readers.load_configured_split(cfg, split)
    unknown = sorted({r.task for r in records} - known_tasks())
    if unknown:
        raise RecordError(f"data.{split}: records name unknown task(s) {unknown}")
    records = [r for r in records if r.task in tasks]
    if split == "unlabeled":
        records = [Record(**{**r.__dict__, "target": None, "references": None}) for r in records]
    cap = cfg.data.get(f"max_{split}_per_task")
    return _cap(records, cap, int(cfg.seed))


def records_by_task(records: list[Record]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        out[r.task].append(r)
    return dict(out)


def cfg_get(node: Any, key: str, default: Any = None) -> Any:
    if isinstance(node, dict):
        return node.get(key, default)
    return getattr(node, key, default)
