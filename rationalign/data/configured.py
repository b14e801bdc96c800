"""data=local: the configured reader specs of one split -> validated Records.

`data.format: local` reads `data.local` with the layout below; `data.format: hub` is routed to
rationalign/data/hub (its own layout: pinned datasets, sampled pools, a cache) by the three entry
points configured_specs, configured_files and read_configured_split.

    root: /data                  # optional: relative paths below resolve against it
    test:                        # split -> task -> one reader spec, or a list of them
      gec: {format: m2, path: conll14/official-2014.combined.m2}
      simplification: {format: asset, source: asset/asset.test.orig, refs: asset/asset.test.simp.*}
      formality:
        - {format: gyafc, path: gyafc/Entertainment_Music/test, column: GYAFC-EM}
        - {format: gyafc, path: gyafc/Family_Relationships/test, column: GYAFC-FR}
    labeled:
      all: {format: records, path: train.jsonl}   # `all`: a multi-task file whose reader names the tasks
    unlabeled: {...}                              # targets are dropped by load_split
    dev: {...}                                    # held out like test: what sweeps evaluate
    pools:                       # read once, carved into disjoint parts (rationalign/data/carve.py)
      asset_valid: {task: simplification, seed: 0, format: asset, source: ..., refs: ...}
    # then, in any split: simplification: {pool: asset_valid, take: 300}   (take: null = the rest)

Spec keys: `format` (default `hub` under data.hub); the input: `path` (one file or a list; a GYAFC
split folder), `source` + `refs` (line-aligned formats; refs a list or one glob) or `name` + `split`
(hub); `column` (the report column, stored in record.meta["column"]; required for a test spec of a
task with several columns); `instruction` (else the task spec's plain instruction for the record,
see rationalign.prompts.choose_instruction); every other key is an option of the reader
(score_equals, drop_short_targets, annotators, target_ref, tokenized, keep_tasks, id_prefix, ...).

Only the selected tasks (cfg.task.names) are read. Every filter's drops are logged and returned:
`read_configured_split` gives a SplitResult whose `dropped` maps the spec's config key
("data.local.test.coherence") to {reason: count}; `load_configured_split` returns just the records
and keeps the SplitResult in `last_loaded[split]`. Errors name the config key.
"""

from __future__ import annotations

import glob as globmod
import inspect
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from rationalign.cfg_access import cfg_get
from rationalign.data import readers
from rationalign.data.carve import CARVE_ORDER, Part, carve, check_take, norm_source
from rationalign.data.hub import hub_files, hub_specs, read_split
from rationalign.data.readers.common import LoadResult
from rationalign.data.records import DataConfigError, Record, RecordError
from rationalign.data.tasks import TASKS

log = logging.getLogger("rationalign")

SPLIT_KEYS = CARVE_ORDER  # labeled, unlabeled, dev, test
ALL = "all"  # task key for a multi-task file (records, coedit, iterater): the reader assigns tasks
_MULTI_TASK = ("records", "jsonl", "coedit", "iterater")
_OWN_INSTRUCTION = ("records", "jsonl", "coedit")  # formats whose rows carry their instruction
_INPUT_KEYS = ("path", "source", "refs", "name")
_COMMON_KEYS = ("format", "column", "instruction", *_INPUT_KEYS)


@dataclass
class SplitResult:
    records: list[Record]
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # config key -> reason -> n
    read: dict[str, int] = field(default_factory=dict)  # config key -> records kept
    carved: dict[str, dict] = field(default_factory=dict)  # config key -> what its pool part holds


last_loaded: dict[str, SplitResult] = {}  # split -> what load_configured_split read last


# ----------------------------------------------------------------------------- config access


def _node(cfg: DictConfig) -> tuple[str, dict]:
    fmt = cfg.data.format
    if fmt not in ("local", "hub"):
        raise DataConfigError(f"data.format={fmt}: expected records, local or hub")
    node = cfg.data.get(fmt)
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    bad = sorted(set(data) - {*SPLIT_KEYS, "root", "pools"})
    if bad:
        raise DataConfigError(f"data.{fmt}: unknown key(s) {bad}; expected root, pools, {', '.join(SPLIT_KEYS)}")
    return fmt, data


def _pools(data: dict, node: str) -> dict[str, tuple[str, int, dict]]:
    """name -> (task, carve seed, reader spec) of data.<node>.pools, validated, root applied."""
    pools = data.get("pools") or {}
    if not isinstance(pools, dict):
        raise DataConfigError(f"data.{node}.pools: expected a mapping name -> reader spec with task")
    out = {}
    for name, raw in pools.items():
        key = f"data.{node}.pools.{name}"
        if not isinstance(raw, dict):
            raise DataConfigError(f"{key}: expected a reader spec with task (and seed), got {raw!r}")
        spec = dict(raw)
        task, seed = spec.pop("task", None), spec.pop("seed", 0)
        if task not in TASKS:
            raise DataConfigError(f"{key}.task: required, one of {list(TASKS)} (a pool holds one task's records)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise DataConfigError(f"{key}.seed: expected an integer (the carve seed), got {seed!r}")
        out[name] = (task, seed, _check_spec(key, task, spec, node, data.get("root")))
    return out


def _carve_ref(key: str, task: str, spec: dict, pools: dict) -> dict:
    """A split spec {pool, take}: the pool's reader spec plus the part it asks for."""
    stray = sorted(set(spec) - {"pool", "take"})
    if stray:
        raise DataConfigError(f"{key}.{stray[0]}: not a key of a pool part (pool, take); put reader options "
                              "on the pool")
    name = spec["pool"]
    if name not in pools:
        raise DataConfigError(f"{key}.pool: {name!r} is not a pool (data.<data>.pools: {sorted(pools)})")
    if "take" not in spec:
        raise DataConfigError(f"{key}.take: required (source sentences, or null for the rest)")
    pool_task, _, pool_spec = pools[name]
    if pool_task != task:
        raise DataConfigError(f"{key}.pool: pool {name!r} holds task {pool_task!r}, not {task!r}")
    return {**pool_spec, "pool": name, "take": check_take(key, spec["take"])}


def configured_specs(cfg: DictConfig, split: str, tasks: list[str] | None = None
                     ) -> list[tuple[str, str, dict]]:
    """(config key, task, spec) for every spec of `split` (selected tasks only unless `tasks`
    is given), validated for shape; `root` already applied to relative paths."""
    if cfg.data.format == "hub":  # the hub build has its own spec layout (rationalign/data/hub)
        return hub_specs(cfg, split, tasks)
    fmt_node, data = _node(cfg)
    base = f"data.{fmt_node}.{split}"
    by_task = data.get(split) or {}
    if not isinstance(by_task, dict):
        raise DataConfigError(f"{base}: expected a mapping task -> reader spec, got {type(by_task).__name__}")
    wanted = set(cfg.task.names if tasks is None else tasks)
    root = data.get("root")
    pools = _pools(data, fmt_node)
    out = []
    for task, specs in by_task.items():
        key = f"{base}.{task}"
        if task != ALL and task not in TASKS:
            raise DataConfigError(f"{key}: unknown task {task!r}; expected one of {[*TASKS, ALL]}")
        if specs is None or (task != ALL and task not in wanted):
            continue
        many = isinstance(specs, list)
        for i, spec in enumerate(specs if many else [specs]):
            k = f"{key}[{i}]" if many else key
            if _placeholder(spec):
                continue  # e.g. a preset's test.<task>.source: null, given on the command line or not at all
            if isinstance(spec, dict) and "pool" in spec:
                out.append((k, task, _carve_ref(k, task, spec, pools)))
            else:
                out.append((k, task, _check_spec(k, task, spec, fmt_node, root)))
    return out


def _placeholder(spec: Any) -> bool:
    """A spec whose every input key is present and null: no data given for that task (not an error;
    a spec with some inputs set and others null still fails naming the missing one)."""
    if not isinstance(spec, dict) or "pool" in spec:
        return False
    inputs = [k for k in _INPUT_KEYS if k in spec]
    return bool(inputs) and all(spec[k] in (None, "", []) for k in inputs)


def _check_spec(key: str, task: str, spec: Any, node: str, root: str | None) -> dict:
    if isinstance(spec, str):
        raise DataConfigError(f"{key}: expected a reader spec like {{format: m2, path: ...}}, got {spec!r}")
    if not isinstance(spec, dict):
        raise DataConfigError(f"{key}: expected a reader spec mapping, got {type(spec).__name__}")
    spec = dict(spec)
    fmt = str(spec.get("format") or ("hub" if node == "hub" else "")).lower()
    if not fmt:
        raise DataConfigError(f"{key}.format: required (one of {list(readers.FORMATS)})")
    if fmt not in readers.FORMATS:
        raise DataConfigError(f"{key}.format: unknown format {fmt!r}; expected one of {list(readers.FORMATS)}")
    spec["format"] = fmt
    if task == ALL and fmt not in _MULTI_TASK:
        raise DataConfigError(f"{key}: format {fmt!r} does not name its records' tasks; "
                              f"put it under a task key ({', '.join(_MULTI_TASK)} may use '{ALL}')")
    need = ("name", "split") if fmt == "hub" else ("source", "refs") if fmt in readers.ALIGNED_FORMATS else ("path",)
    for k in need:
        if spec.get(k) in (None, "", []):
            raise DataConfigError(f"{key}.{k}: required for format {fmt!r}")
    stray = [k for k in _INPUT_KEYS if k in spec and k not in need]
    if stray:
        raise DataConfigError(f"{key}.{stray[0]}: not used by format {fmt!r} (it reads {', '.join(need)})")
    options = {k: v for k, v in spec.items() if k not in _COMMON_KEYS}
    accepted = _reader_params(fmt)
    if accepted is not None:
        bad = sorted(set(options) - accepted)
        if bad:
            raise DataConfigError(f"{key}.{bad[0]}: not an option of format {fmt!r}; "
                                  f"options: {sorted(accepted - {'task', 'instruction'}) or 'none'}")
    for k in ("path", "source", "refs"):
        if k in spec:
            spec[k] = _rooted(spec[k], root)
    return spec


def _reader_params(fmt: str) -> set[str] | None:
    """Keyword options the format's reader accepts (None: it takes any, e.g. hub load kwargs)."""
    params = inspect.signature(readers.reader_for(fmt)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    skip = {"path", "source", "refs", "name"}
    return {n for n, p in params.items() if n not in skip and p.kind is not p.VAR_POSITIONAL}


def _rooted(value: Any, root: str | None) -> Any:
    if isinstance(value, list):
        return [_rooted(v, root) for v in value]
    p = Path(str(value)).expanduser()
    return os.path.normpath(Path(root).expanduser() / p if root and not p.is_absolute() else p)


def _check_files(key: str, spec: dict) -> None:
    fmt = spec["format"]
    if fmt == "hub":
        return
    fields = ("source", "refs") if fmt in readers.ALIGNED_FORMATS else ("path",)
    for k in fields:
        values = spec[k] if isinstance(spec[k], list) else [spec[k]]
        for i, v in enumerate(values):
            where = f"{key}.{k}" + (f"[{i}]" if isinstance(spec[k], list) else "")
            if any(c in v for c in "*?["):
                if not globmod.glob(v):
                    raise FileNotFoundError(f"{where}: glob matches no file: {v}")
            elif not Path(v).exists():
                raise FileNotFoundError(f"{where}: file not found: {v}")


def configured_files(cfg: DictConfig, splits: tuple[str, ...] = SPLIT_KEYS) -> list[str]:
    """Every input file the data=local config names for `splits` (selected tasks; globs expanded,
    GYAFC folders listed, a pool part's pool files), for hashing into stage keys. data=hub: the
    converted, cached record files of those splits."""
    if cfg.data.format == "hub":
        return hub_files(cfg, splits)
    files: list[str] = []
    for split in splits:
        for _, _, spec in configured_specs(cfg, split):
            files.extend(_spec_files(spec))
    return [f for f in dict.fromkeys(files) if Path(f).is_file()]


def _spec_files(spec: dict) -> list[str]:
    files: list[str] = []
    for k in ("path", "source", "refs"):
        for v in (spec.get(k) if isinstance(spec.get(k), list) else [spec.get(k)]):
            if not v:
                continue
            matches = sorted(globmod.glob(v)) if any(c in v for c in "*?[") else [v]
            for m in matches:
                p = Path(m)
                files.extend(sorted(str(f) for f in p.iterdir() if f.is_file()) if p.is_dir() else [m])
    return files


# ----------------------------------------------------------------------------- reading


def _columns(tspec: Any) -> list[str]:
    try:
        col = cfg_get(tspec, "column")
    except MissingMandatoryValue:  # `column: ???` in the task spec
        return []
    if col is None:
        return []
    if OmegaConf.is_config(col):
        col = OmegaConf.to_container(col)
    return [col] if isinstance(col, str) else [str(c) for c in col]




def _read_one(key: str, task: str, spec: dict, prefix: str | None, selected: list[str]) -> LoadResult:
    fmt = spec["format"]
    opts = {k: v for k, v in spec.items() if k not in _COMMON_KEYS}
    accepted = _reader_params(fmt)
    if spec.get("instruction") is not None:
        if accepted is not None and "instruction" not in accepted:
            raise DataConfigError(f"{key}.instruction: format {fmt!r} takes its instructions from the data")
        opts["instruction"] = spec["instruction"]
    if prefix and "id_prefix" not in opts and (accepted is None or "id_prefix" in accepted) and fmt != "hub":
        opts["id_prefix"] = prefix
    if task == ALL:
        task_arg = None
        if fmt == "coedit":  # count the unselected tasks' rows as dropped
            opts.setdefault("keep_tasks", list(selected))
    elif fmt == "coedit":  # a CoEdIT file mixes tasks: keep this key's task, count the rest
        task_arg = None
        opts.setdefault("keep_tasks", [task])
    else:
        task_arg = task
    if fmt == "hub":
        args: tuple = (spec["name"],)
    elif fmt in readers.ALIGNED_FORMATS:
        args = (spec["source"],)
        opts["refs"] = spec["refs"]
    else:
        args = tuple(spec["path"]) if isinstance(spec["path"], list) else (spec["path"],)
    try:
        result = readers.read_dataset(fmt, *args, task=task_arg, **opts)
    except (RecordError, FileNotFoundError) as e:
        raise type(e)(f"{key}: {e}") from None
    except ImportError as e:
        raise ImportError(f"{key}: {e}") from None
    except ValueError as e:
        raise DataConfigError(f"{key}: {e}") from None
    except Exception as e:  # hub: network, unknown dataset or split
        if fmt != "hub":
            raise
        raise DataConfigError(f"{key}: hub dataset {spec['name']!r} split {spec.get('split')!r} could not be "
                              f"loaded ({type(e).__name__}: {e})") from e
    if result.n_read == 0:  # an empty file is a broken download or a wrong path, not a dataset
        raise RecordError(f"{key}: no records in {', '.join(map(str, args))} (the file is empty)")
    if fmt == "hub":  # e.g. facebook/asset has only `simplifications`: the first one is the target
        for r in result.records:
            if r.target is None and r.references:
                r.target = r.references[0]
    return result


def _finish(key: str, task: str, spec: dict, records: list[Record], task_specs: Any, split: str) -> None:
    """Column into meta, per-record instruction from the task spec."""
    from rationalign.prompts import choose_instruction

    for r in records:
        tspec = cfg_get(task_specs, r.task)
        cols = _columns(tspec)
        column = spec.get("column")
        if column is not None:
            if cols and column not in cols:
                raise DataConfigError(f"{key}.column: {column!r} is not a column of task {r.task!r} ({cols})")
        elif len(cols) == 1:
            column = cols[0]
        elif len(cols) > 1 and split in ("dev", "test"):  # evaluated: each record needs its column
            raise DataConfigError(f"{key}.column: required, task {r.task!r} reports several columns {cols}")
        if column is not None:
            r.meta = {**(r.meta or {}), "column": column}
        if tspec is not None and spec.get("instruction") is None and spec["format"] not in _OWN_INSTRUCTION:
            r.instruction = choose_instruction(tspec, r.id, with_rationale=False, fallback=r.instruction)


def read_configured_split(cfg: DictConfig, split: str) -> SplitResult:
    """Every configured spec of `split` for the selected tasks, with drop counts per config key."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"unknown split '{split}' (expected one of {SPLIT_KEYS})")
    if cfg.data.format == "hub":
        records, manifest = read_split(cfg, split)
        nodes = {"test": ("test",), "dev": ("dev", "train"), "unlabeled": ("train", "unlabeled_extra")}.get(split, ("train",))
        dropped = {k: v for k, v in manifest["dropped"].items() if k.split(".")[2] in nodes}
        return SplitResult(records, dropped, {split: len(records)})
    specs = configured_specs(cfg, split)
    for key, _, spec in specs:
        _check_files(_pool_key(cfg, spec) if "pool" in spec else key, spec)
    per_task: dict[str, int] = {}
    for _, task, _ in specs:
        per_task[task] = per_task.get(task, 0) + 1
    task_specs = cfg.task.get("specs")
    out = SplitResult([])
    seen: dict[str, str] = {}
    counters: dict[str, int] = {}
    for key, task, spec in specs:
        prefix = None
        if per_task[task] > 1:  # several files of one task: keep their ids apart
            i = counters[task] = counters.get(task, -1) + 1
            prefix = f"{task}-{str(spec.get('column') or i).lower()}"
        if "pool" in spec:
            result = _pool_part(cfg, key, task, spec, out)
        else:
            result = _read_one(key, task, spec, prefix, list(cfg.task.names))
        _finish(key, task, spec, result.records, task_specs, split)
        for r in result.records:
            if r.id in seen:
                raise RecordError(f"{key}: duplicate id '{r.id}' (also from {seen[r.id]}); set id_prefix")
            seen[r.id] = key
        out.records.extend(result.records)
        out.read[key] = len(result.records)
        if result.dropped:
            out.dropped[_pool_key(cfg, spec) if "pool" in spec else key] = dict(result.dropped)
        log.info("%s: %d records (%s format)%s", key, len(result.records), spec["format"],
                 f", dropped {dict(result.dropped)}" if result.dropped else "")
    return out


# ----------------------------------------------------------------------------- pools


def _pool_key(cfg: DictConfig, spec: dict) -> str:
    return f"data.{cfg.data.format}.pools.{spec['pool']}"


_pool_memo: dict[str, tuple[dict[str, list[Record]], dict[str, int], int]] = {}


def _pool_part(cfg: DictConfig, key: str, task: str, spec: dict, out: SplitResult) -> LoadResult:
    """The records of the part `key` asks of its pool. The parts are every {pool, take} naming this
    pool in any split (CARVE_ORDER, then spec order), so each split's part is the same whichever
    split is read first; the pool is read and carved once per content of its files."""
    name, pool_key = spec["pool"], _pool_key(cfg, spec)
    pool_task, seed, pool_spec = _pools(_node(cfg)[1], cfg.data.format)[name]
    parts = [Part(k, s["take"]) for split in SPLIT_KEYS for k, _, s in configured_specs(cfg, split, [pool_task])
             if s.get("pool") == name]
    stats = [(f, os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in _spec_files(pool_spec) if Path(f).is_file()]
    memo_key = repr((pool_key, sorted(pool_spec.items(), key=str), parts, seed, stats))
    if memo_key not in _pool_memo:
        read = _read_one(pool_key, pool_task, pool_spec, None, list(cfg.task.names))
        carved = carve(read.records, parts, seed, pool_key)
        n_sources = len({norm_source(r.source) for r in read.records})
        _pool_memo[memo_key] = carved, dict(read.dropped), n_sources
    carved, dropped, n_sources = _pool_memo[memo_key]
    records = [replace(r) for r in carved[key]]  # _finish sets fields: keep the memo clean
    sources = len({norm_source(r.source) for r in records})
    out.carved[key] = {"pool": name, "records": len(records), "sources": sources, "pool_sources": n_sources,
                       "seed": seed}
    log.info("%s: %d records (%d source sentences) carved from %s (%d sources, carve seed %d)",
             key, len(records), sources, pool_key, n_sources, seed)
    return LoadResult(records, dropped)


def load_configured_split(cfg: DictConfig, split: str) -> list[Record]:
    """The records of `split` (rationalign.data.splits.load_split reads this for data=local/hub);
    drop counts stay in `last_loaded[split].dropped`."""
    result = read_configured_split(cfg, split)
    last_loaded[split] = result
    return result.records
