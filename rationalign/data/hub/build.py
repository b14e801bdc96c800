"""Build the data=hub splits once per configuration, into a content-addressed cache.

    <cache>/<key>/labeled.jsonl  unlabeled.jsonl  dev.jsonl  test.jsonl  manifest.json

`key` hashes everything that decides the records (the data.hub node with its pinned revisions,
the selected tasks, their task specs, the converter code version), so a sweep that varies only
the training settings reads the same directory and downloads nothing twice. manifest.json is
written last; a directory without it is rebuilt.

Per task: the train specs' rows form a pool (rows repeating a source+target pair are dropped and
counted); `labeled_per_task` of them are sampled with a seeded RNG per task; the unlabeled pool is
the source side of every other pool row (plus unlabeled_extra), minus every source used as
labeled for any task (and, by default, every test source), deduplicated, then sampled the same
way. Dev is each task's `dev` specs (the test sets' own validation splits), or, for a task with
none, `dev_per_task` rows held out of what is left of the pool after labeled and unlabeled (so the
training data do not depend on the dev size). Test and dev sources are kept out of labeled and
unlabeled (exclude_test_sources), and the hold-out never holds a test source. The manifest checks
that no labeled source appears among the unlabeled ones, and counts every overlap with dev and test.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rationalign.data.hub.convert import CONVERTERS, OWN_INSTRUCTION
from rationalign.data.hub.spec import HubConfig, HubDataset, SourceSpec, parse_hub
from rationalign.data.readers.common import LoadResult
from rationalign.data.records import DataConfigError, Record, RecordError, load_records, save_records
from rationalign.io import atomic_write_json, sha256_file, sha256_json

log = logging.getLogger("rationalign")

VERSION = 2  # bump when a converter or the sampling changes what the same config produces
FILES = {"labeled": "labeled.jsonl", "unlabeled": "unlabeled.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}
MANIFEST = "manifest.json"


def norm(text: str) -> str:
    """The form sources are compared in for overlap: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


# ----------------------------------------------------------------------------- key and cache


def _task_specs(cfg: DictConfig, tasks: list[str]) -> dict:
    specs = cfg.task.get("specs") or {}
    return {t: OmegaConf.to_container(specs[t], resolve=True) if t in specs else None for t in tasks}


def _local_inputs(hub: HubConfig, tasks: list[str]) -> dict[str, str]:
    """Content hashes of the local files the build reads (local specs, data_files mirrors): a pinned
    hub revision fixes its own content, a file on disk does not."""
    import glob

    paths: list[str] = []
    for s in hub.specs:
        if s.is_local and s.task in tasks:
            for v in s.paths.values():
                paths.extend(v if isinstance(v, list) else [v])
        elif not s.is_local and s.task in tasks:
            files = hub.datasets[s.dataset].data_files
            if isinstance(files, dict):
                files = [f for v in files.values() for f in (v if isinstance(v, list) else [v])]
            paths.extend(files if isinstance(files, list) else [files] if files else [])
    out = {}
    for p in paths:
        for m in sorted(glob.glob(str(p))) or [str(p)]:
            q = Path(m)
            for f in (sorted(x for x in q.iterdir() if x.is_file()) if q.is_dir() else [q]):
                if f.is_file():
                    out[str(f)] = sha256_file(f)
    return out


def cache_key(cfg: DictConfig, hub: HubConfig) -> str:
    node = OmegaConf.to_container(cfg.data.hub, resolve=True)
    node.pop("cache", None)  # where the cache lives does not change its content
    tasks = list(cfg.task.names)
    return sha256_json({"version": VERSION, "hub": node, "tasks": tasks, "task_specs": _task_specs(cfg, tasks),
                        "local_files": _local_inputs(hub, tasks)})[:16]


def cache_dir(cfg: DictConfig) -> Path:
    hub = parse_hub(cfg)
    return Path(hub.cache).expanduser() / cache_key(cfg, hub)


def ensure_built(cfg: DictConfig) -> Path:
    """The cache directory of this config, building it first when absent or incomplete."""
    hub = parse_hub(cfg)
    key = cache_key(cfg, hub)
    out = Path(hub.cache).expanduser() / key
    if (out / MANIFEST).exists():
        log.info("data=hub: cached records %s", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{key}."))
    try:
        manifest = build(cfg, hub, tmp)
        manifest["key"] = key
        atomic_write_json(tmp / MANIFEST, manifest)
        if out.exists():  # an incomplete earlier attempt, or a concurrent job that finished first
            if (out / MANIFEST).exists():
                return out
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("data=hub: built %s (%s)", out, ", ".join(f"{s} {n}" for s, n in manifest["counts"].items()))
    return out


# ----------------------------------------------------------------------------- reading specs


class _Loader:
    """Loads each (dataset, split) once per build through `datasets.load_dataset`."""

    def __init__(self, hub: HubConfig):
        self.hub = hub
        self.rows: dict[tuple[str, str], list[dict]] = {}
        self.info: dict[str, dict] = {}

    def where(self, ds: HubDataset, split: str) -> str:
        return f"hub:{ds.name}@{ds.revision or 'unpinned'}[{split}]"

    def load(self, spec: SourceSpec) -> list[dict]:
        ds = self.hub.datasets[spec.dataset]
        k = (ds.key, spec.split)
        if k not in self.rows:
            self.rows[k] = self._load(ds, spec)
            info = self.info.setdefault(ds.key, {"name": ds.name, "revision": ds.revision, "config": ds.config,
                                                 "pinned": ds.pinned, "rows": {}})
            info["rows"][spec.split] = len(self.rows[k])
            if not ds.pinned:
                log.warning("data.hub.datasets.%s: revision %r is not a commit hash; the data may change",
                            ds.key, ds.revision)
        return self.rows[k]

    def _load(self, ds: HubDataset, spec: SourceSpec) -> list[dict]:
        try:
            import datasets
        except ImportError:
            raise ImportError(f"{spec.key}: data=hub needs the optional package 'datasets' "
                              "(pip install 'rationalign[hub]'); use data=local with files on disk otherwise") from None
        kwargs: dict[str, Any] = {"split": spec.split}
        if ds.revision:
            kwargs["revision"] = ds.revision
        if ds.data_files is not None:
            kwargs["data_files"] = ds.data_files
        try:
            loaded = datasets.load_dataset(ds.name, ds.config, **kwargs)
        except Exception as e:  # network, unknown dataset, revision or split
            raise DataConfigError(f"{spec.key}: hub dataset {ds.name!r} (revision {ds.revision!r}, config "
                                  f"{ds.config!r}) split {spec.split!r} could not be loaded "
                                  f"({type(e).__name__}: {e})") from e
        return [dict(r) for r in loaded]


def _read_local(spec: SourceSpec, id_prefix: str) -> LoadResult | None:
    """A local-files spec; None when its files are absent and if_missing is skip."""
    import glob

    from rationalign.data import readers

    missing = [v for vals in spec.paths.values() for v in (vals if isinstance(vals, list) else [vals])
               if not (glob.glob(v) if any(c in v for c in "*?[") else Path(v).exists())]
    if missing:
        note = spec.missing_note or "not found"
        if spec.if_missing == "skip":
            log.warning("%s: %s; skipped (%s)", spec.key, note, missing[0])
            return None
        raise FileNotFoundError(f"{spec.key}: {note}: {missing[0]}")
    if spec.format in ("aligned", "lines", "asset", "turk", "turkcorpus", "jfleg"):
        args: tuple = (spec.paths["source"],)
        opts = {**spec.options, "refs": spec.paths["refs"]}
    else:
        p = spec.paths["path"]
        args, opts = (tuple(p) if isinstance(p, list) else (p,)), dict(spec.options)
    try:
        return readers.read_dataset(spec.format, *args, task=spec.task, id_prefix=id_prefix, **opts)
    except (RecordError, ValueError) as e:
        raise type(e)(f"{spec.key}: {e}") from None


def _read(spec: SourceSpec, loader: _Loader, cfg: DictConfig, index: int) -> LoadResult | None:
    # ids depend only on the task's own spec list, never on which other tasks are selected
    prefix = f"{spec.task}-{spec.dataset or spec.format}-{spec.split or spec.node}" + (f"{index}" if index else "")
    if spec.is_local:
        result = _read_local(spec, prefix)
    else:
        ds = loader.hub.datasets[spec.dataset]
        rows = loader.load(spec)
        where = loader.where(ds, spec.split)
        result = CONVERTERS[spec.convert](rows, spec.task, prefix, where, **spec.options)
        for r in result.records:
            r.meta = {**r.meta, "split": spec.split, "revision": ds.revision}
    if result is None:
        return None
    _place(spec, result.records, cfg)
    return result


def _place(spec: SourceSpec, records: list[Record], cfg: DictConfig) -> None:
    """Report column into meta (test sets) and the task's own instruction where the rows carry none."""
    from rationalign.prompts import choose_instruction

    tspec = (cfg.task.get("specs") or {}).get(spec.task)
    cols = []
    if tspec is not None and tspec.get("column") is not None:
        c = tspec.get("column")
        cols = [c] if isinstance(c, str) else [str(x) for x in c]
    column = spec.column
    if column is not None and cols and column not in cols:
        raise DataConfigError(f"{spec.key}.column: {column!r} is not a column of task {spec.task!r} ({cols})")
    evaluated = spec.node in ("dev", "test")  # reported in columns
    if column is None and evaluated:
        if len(cols) > 1:
            raise DataConfigError(f"{spec.key}.column: required, task {spec.task!r} reports several columns {cols}")
        column = cols[0] if cols else None
    own = spec.convert in OWN_INSTRUCTION or spec.format in ("records", "jsonl", "coedit")
    for r in records:
        if column is not None and evaluated:
            r.meta = {**r.meta, "column": column}
        if tspec is not None and not own:
            r.instruction = choose_instruction(tspec, r.id, with_rationale=False, fallback=r.instruction)


# ----------------------------------------------------------------------------- sampling


def _sample(items: list, k: int | None, rng: random.Random) -> list:
    """k items in their original order (all when k is None or the pool is smaller)."""
    if k is None or k >= len(items):
        return list(items)
    picked = sorted(rng.sample(range(len(items)), k))
    return [items[i] for i in picked]


def build(cfg: DictConfig, hub: HubConfig, out: Path) -> dict:
    tasks = list(cfg.task.names)
    loader = _Loader(hub)
    manifest: dict[str, Any] = {"seed": hub.seed, "tasks": {}, "dev": {}, "test": {}, "skipped": {}, "dropped": {}}

    def read_all(node: str) -> dict[str, list[Record]]:
        by_task: dict[str, list[Record]] = {t: [] for t in tasks}
        for task in tasks:
            for i, spec in enumerate(hub.of(node, [task])):
                result = _read(spec, loader, cfg, i)
                if result is None:
                    manifest["skipped"][spec.key] = spec.missing_note or "files not found"
                    continue
                by_task[task].extend(result.records)
                if result.dropped:
                    manifest["dropped"][spec.key] = dict(sorted(result.dropped.items()))
        return by_task

    test = read_all("test")
    dev = read_all("dev")
    train = read_all("train")
    extra = read_all("unlabeled_extra")
    test_sources = {norm(r.source) for rs in test.values() for r in rs}
    dev_sources = {norm(r.source) for rs in dev.values() for r in rs}

    labeled: dict[str, list[Record]] = {}
    pools: dict[str, list[Record]] = {}
    for task in tasks:
        seen, pool, dup, in_test, in_dev = set(), [], 0, 0, 0
        for r in train[task]:
            pair = (norm(r.source), norm(r.target or ""))
            if pair in seen:
                dup += 1
                continue
            seen.add(pair)
            if hub.exclude_test_sources and pair[0] in test_sources:
                in_test += 1
                continue
            if hub.exclude_test_sources and pair[0] in dev_sources:
                in_dev += 1
                continue
            pool.append(r)
        if not pool and hub.of("train", [task]):
            skipped = {k: v for k, v in manifest["skipped"].items() if k.startswith(f"data.hub.train.{task}")}
            raise DataConfigError(f"data.hub.train.{task}: no rows left for task {task!r} (dropped: "
                                  f"{_dropped_of(manifest, 'train', task)}, duplicate pairs {dup}, source in test "
                                  f"{in_test}{f', skipped {skipped}' if skipped else ''}); check task_values / labels")
        pools[task] = pool
        want = hub.size(task, "labeled")
        labeled[task] = _sample(pool, want, random.Random(f"{hub.seed}-{task}-labeled"))
        manifest["tasks"][task] = {"pool": len(pool), "duplicate_pairs": dup, "source_in_test": in_test,
                                   "source_in_dev": in_dev, "labeled_requested": want, "labeled": len(labeled[task])}

    used = {norm(r.source) for rs in labeled.values() for r in rs}
    unlabeled: dict[str, list[Record]] = {}
    for task in tasks:
        chosen_ids = {r.id for r in labeled[task]}
        seen, cands = set(), []
        reasons: Counter = Counter()
        for r in [*pools[task], *extra[task]]:
            if r.id in chosen_ids:
                continue  # this pair is a labeled record
            s = norm(r.source)
            if s in used:
                reasons["source_used_as_labeled"] += 1
            elif hub.exclude_test_sources and s in test_sources:
                reasons["source_in_test"] += 1
            elif hub.exclude_test_sources and s in dev_sources:
                reasons["source_in_dev"] += 1
            elif s in seen:
                reasons["duplicate_source"] += 1
            else:
                seen.add(s)
                cands.append(replace(r, target=None, references=None, rationale=None))
        want = hub.size(task, "unlabeled")
        unlabeled[task] = _sample(cands, want, random.Random(f"{hub.seed}-{task}-unlabeled"))
        manifest["tasks"][task].update({"unlabeled_pool": len(cands), "unlabeled_requested": want,
                                        "unlabeled": len(unlabeled[task]),
                                        "unlabeled_excluded": dict(sorted(reasons.items()))})

    unl_sources = {norm(r.source) for rs in unlabeled.values() for r in rs}
    for task in tasks:
        if not hub.of("dev", [task]):
            dev[task] = _hold_out(task, pools[task], labeled[task], used | unl_sources | test_sources, hub,
                                  manifest["tasks"][task], _columns_of(cfg, task))
    lab = [r for t in tasks for r in labeled[t]]
    unl = [r for t in tasks for r in unlabeled[t]]
    dv = [r for t in tasks for r in dev[t]]
    tst = [r for t in tasks for r in test[t]]
    dev_sources = {norm(r.source) for r in dv}
    overlap = {"labeled_unlabeled": len(used & unl_sources),
               "labeled_test": len(used & test_sources),
               "unlabeled_test": len(unl_sources & test_sources),
               "labeled_dev": len(used & dev_sources), "unlabeled_dev": len(unl_sources & dev_sources),
               "dev_test": len(dev_sources & test_sources)}
    if overlap["labeled_unlabeled"]:  # disjoint by construction: a failure here is a bug
        raise RuntimeError(f"data=hub: {overlap['labeled_unlabeled']} unlabeled sources are also labeled")
    for task in tasks:
        manifest["test"][task] = len(test[task])
        manifest["dev"][task] = len(dev[task])
    manifest.update(overlap=overlap, datasets=loader.info,
                    counts={"labeled": len(lab), "unlabeled": len(unl), "dev": len(dv), "test": len(tst)})
    for split, records in (("labeled", lab), ("unlabeled", unl), ("dev", dv), ("test", tst)):
        _check_ids(records, split)
        save_records(out / FILES[split], records)
    return manifest


def _hold_out(task: str, pool: list[Record], labeled: list[Record], excluded: set[str], hub: HubConfig,
              info: dict, columns: list[str]) -> list[Record]:
    """Dev for a task with no dev spec: pool rows whose source is in no other split, sampled. Train
    rows name no report column: a one-column task's is set; formality's two (GYAFC domains) stay
    unset, so the report puts them under its first column."""
    chosen = {r.id for r in labeled}
    seen: set[str] = set()
    cands = []
    for r in pool:
        s = norm(r.source)
        if r.id not in chosen and s not in excluded and s not in seen:
            seen.add(s)
            cands.append(r)
    want = hub.size(task, "dev")
    picked = _sample(cands, want, random.Random(f"{hub.seed}-{task}-dev"))
    if want is not None and len(picked) < want:
        log.warning("data.hub.dev_per_task: task %s holds out %d of %d dev rows (labeled and unlabeled took "
                    "the rest of its pool)", task, len(picked), want)
    info.update(dev_from="train hold-out", dev_pool=len(cands), dev_requested=want, dev=len(picked))
    column = {"column": columns[0]} if len(columns) == 1 else {}
    return [replace(r, meta={**r.meta, "held_out": "dev", **column}) for r in picked]


def _columns_of(cfg: DictConfig, task: str) -> list[str]:
    tspec = (cfg.task.get("specs") or {}).get(task)
    c = tspec.get("column") if tspec is not None else None
    return [] if c is None else [c] if isinstance(c, str) else [str(x) for x in c]


def _dropped_of(manifest: dict, node: str, task: str) -> dict:
    prefix = f"data.hub.{node}.{task}"
    return {k: v for k, v in manifest["dropped"].items() if k == prefix or k.startswith(prefix + "[")}


def _check_ids(records: list[Record], split: str) -> None:
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise RecordError(f"data=hub {split}: duplicate id '{r.id}'; give the specs distinct datasets or splits")
        seen.add(r.id)


def read_split(cfg: DictConfig, split: str) -> tuple[list[Record], dict]:
    """Records of one split from the cache (built when needed), and the build's manifest."""
    import json

    d = ensure_built(cfg)
    manifest = json.loads((d / MANIFEST).read_text())
    return load_records(d / FILES[split]), manifest
