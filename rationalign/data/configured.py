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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from rationalign.cfg_access import cfg_get
from rationalign.data import readers
from rationalign.data.hub import hub_files, hub_specs, read_split
from rationalign.data.readers.common import LoadResult
from rationalign.data.records import DataConfigError, Record, RecordError
from rationalign.data.tasks import TASKS

log = logging.getLogger("rationalign")

SPLIT_KEYS = ("labeled", "unlabeled", "test")
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


last_loaded: dict[str, SplitResult] = {}  # split -> what load_configured_split read last


# ----------------------------------------------------------------------------- config access


def _node(cfg: DictConfig) -> tuple[str, dict]:
    fmt = cfg.data.format
    if fmt not in ("local", "hub"):
        raise DataConfigError(f"data.format={fmt}: expected records, local or hub")
    node = cfg.data.get(fmt)
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    bad = sorted(set(data) - {*SPLIT_KEYS, "root"})
    if bad:
        raise DataConfigError(f"data.{fmt}: unknown key(s) {bad}; expected root, {', '.join(SPLIT_KEYS)}")
    return fmt, data


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
            out.append((k, task, _check_spec(k, task, spec, fmt_node, root)))
    return out


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
    """Every input file the data=local config names (selected tasks, all splits; globs expanded,
    GYAFC folders listed), for hashing into stage keys. data=hub: its converted, cached records."""
    if cfg.data.format == "hub":
        return hub_files(cfg)
    files: list[str] = []
    for split in splits:
        for _, _, spec in configured_specs(cfg, split):
            for k in ("path", "source", "refs"):
                for v in (spec.get(k) if isinstance(spec.get(k), list) else [spec.get(k)]):
                    if not v:
                        continue
                    matches = sorted(globmod.glob(v)) if any(c in v for c in "*?[") else [v]
                    for m in matches:
                        p = Path(m)
                        files.extend(sorted(str(f) for f in p.iterdir() if f.is_file()) if p.is_dir() else [m])
    return [f for f in dict.fromkeys(files) if Path(f).is_file()]


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
        elif len(cols) > 1 and split == "test":
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
        nodes = ("test",) if split == "test" else ("train", "unlabeled_extra") if split == "unlabeled" else ("train",)
        dropped = {k: v for k, v in manifest["dropped"].items() if k.split(".")[2] in nodes}
        return SplitResult(records, dropped, {split: len(records)})
    specs = configured_specs(cfg, split)
    for key, _, spec in specs:
        _check_files(key, spec)
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
        result = _read_one(key, task, spec, prefix, list(cfg.task.names))
        _finish(key, task, spec, result.records, task_specs, split)
        for r in result.records:
            if r.id in seen:
                raise RecordError(f"{key}: duplicate id '{r.id}' (also from {seen[r.id]}); set id_prefix")
            seen[r.id] = key
        out.records.extend(result.records)
        out.read[key] = len(result.records)
        if result.dropped:
            out.dropped[key] = dict(result.dropped)
        log.info("%s: %d records (%s format)%s", key, len(result.records), spec["format"],
                 f", dropped {dict(result.dropped)}" if result.dropped else "")
    return out


def load_configured_split(cfg: DictConfig, split: str) -> list[Record]:
    """The records of `split` (rationalign.data.splits.load_split reads this for data=local/hub);
    drop counts stay in `last_loaded[split].dropped`."""
    result = read_configured_split(cfg, split)
    last_loaded[split] = result
    return result.records
