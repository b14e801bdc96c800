"""Load the configured data splits (labeled / unlabeled / dev / test) as validated Records.

dev is held out like test: sweeps evaluate it (evaluate.split, rationalign/data/eval_split.py) so
that settings are chosen without seeing the test set."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from rationalign.data.records import Record, RecordError, load_located_records
from rationalign.data.tasks import TASKS

log = logging.getLogger("rationalign")
SPLITS = ("labeled", "unlabeled", "dev", "test")


def split_files(cfg: DictConfig, splits: tuple[str, ...] = SPLITS) -> list[str]:
    """Files whose content determines the data of `splits` (hashed into stage keys)."""
    if cfg.data.format == "records":
        return [cfg.data[s] for s in splits if cfg.data.get(s)]
    from rationalign.data.configured import configured_files

    return configured_files(cfg, splits)


# A stage's key hashes only the splits it reads: fixing the test file must not retrain SFT.
def labeled_files(cfg: DictConfig) -> list[str]:
    return split_files(cfg, ("labeled",))


def unlabeled_files(cfg: DictConfig) -> list[str]:
    return split_files(cfg, ("unlabeled",))


def dev_files(cfg: DictConfig) -> list[str]:
    return split_files(cfg, ("dev",))


def test_files(cfg: DictConfig) -> list[str]:
    return split_files(cfg, ("test",))


# Drop tallies: rationalign.stages.base opens one per running stage and writes it to the manifest.
_TALLIES: list[dict[str, dict[str, int]]] = []
# Carve tallies likewise: what each pool part (data.local.pools) gave the splits the stage read.
_CARVES: list[dict[str, dict]] = []


@contextmanager
def drop_tally():
    tally: dict[str, dict[str, int]] = {}
    _TALLIES.append(tally)
    try:
        yield tally
    finally:
        _TALLIES.pop()


@contextmanager
def carve_tally():
    tally: dict[str, dict] = {}
    _CARVES.append(tally)
    try:
        yield tally
    finally:
        _CARVES.pop()


def _note_drops(key: str, reasons: dict[str, int]) -> None:
    for reason, n in reasons.items():
        if n:
            log.warning("%s: dropped %d record(s): %s", key, n, reason)
            if _TALLIES:
                _TALLIES[-1].setdefault(key, {})[reason] = n  # a split read twice counts once


def _has_gold(r: Record) -> bool:
    return bool(r.gold) or bool((r.meta or {}).get("m2"))


def _require(cfg: DictConfig, split: str, records: list[Record], wheres: dict[str, str]) -> list[Record]:
    """A labeled record needs its target and a test record its gold, unless the user opted to skip."""
    if split == "unlabeled":
        return records
    what, option = ("target", "on_missing_target") if split == "labeled" else ("gold", "on_missing_gold")
    has = (lambda r: r.target is not None) if split == "labeled" else _has_gold
    missing = [r for r in records if not has(r)]
    if not missing:
        return records
    if str(cfg.data.get(option, "fail")) != "skip":
        first = missing[0]
        where = wheres.get(first.id, f"data.{split} record '{first.id}'")
        field_name = "target" if split == "labeled" else "target/references"
        raise RecordError(f"{where}: field '{field_name}' missing: a {split} record needs its {what} "
                          f"({len(missing)} of {len(records)} lack one); fix the file or set "
                          f"data.{option}=skip to drop them (counted in the manifest)")
    _note_drops(f"data.{split}", {f"no {what} (data.{option}=skip)": len(missing)})
    return [r for r in records if has(r)]


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
        located = load_located_records(path)
        if not located:  # an empty file is a broken download or a wrong path, not a dataset
            raise RecordError(f"data.{split}: {path}: no records (the file is empty)")
        records = [r for _, r in located]
        wheres = {r.id: w for w, r in located}
    else:
        from rationalign.data.configured import last_loaded, load_configured_split  # data=local / data=hub

        records = load_configured_split(cfg, split)
        wheres = {}
        for key, reasons in last_loaded[split].dropped.items():
            _note_drops(key, reasons)
        if _CARVES:
            _CARVES[-1].update(last_loaded[split].carved)
    unknown = sorted({r.task for r in records} - set(TASKS))
    if unknown:
        raise RecordError(f"data.{split}: records name unknown task(s) {unknown}")
    records = _require(cfg, split, [r for r in records if r.task in tasks], wheres)
    if split == "unlabeled":
        records = [Record(**{**r.__dict__, "target": None, "references": None}) for r in records]
    cap = cfg.data.get(f"max_{split}_per_task")
    return _cap(records, cap, int(cfg.seed))

