"""data.hub (conf/data/hub.yaml) -> typed, validated specs, before anything is downloaded.

    datasets:  key -> {name, revision, config, data_files}     one pinned entry per hub dataset
    train:     task -> spec or list of specs                   the pool labeled and unlabeled are drawn from
    unlabeled_extra: task -> specs                             source sides only, added to the unlabeled pool
    dev:       task -> spec or list of specs                   a task without one: dev_per_task held out of train
    test:      task -> spec or list of specs
A hub spec is {dataset: <key>, split, convert: <converter>, column?, ...converter options}; a
local spec (sets that are not public on the hub) is {format: <reader>, path | source + refs,
if_missing: error | skip, missing_note, column?, ...reader options}, paths relative to local_root.
Errors are DataConfigError naming the config key.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rationalign.data.hub.convert import CONVERTERS
from rationalign.data.records import DataConfigError
from rationalign.data.tasks import TASKS

TOP_KEYS = {"cache", "seed", "labeled_per_task", "unlabeled_per_task", "dev_per_task", "per_task",
            "exclude_test_sources", "local_root", "datasets", "train", "unlabeled_extra", "dev", "test"}
DATASET_KEYS = {"name", "revision", "config", "data_files"}
SPLIT_NODES = ("train", "unlabeled_extra", "dev", "test")
_HUB_KEYS = {"dataset", "split", "convert", "column"}
_LOCAL_KEYS = {"format", "path", "source", "refs", "if_missing", "missing_note", "column"}
_ALIGNED = ("aligned", "lines", "asset", "turk", "turkcorpus", "jfleg")


@dataclass(frozen=True)
class HubDataset:
    key: str
    name: str  # hub id, or a `datasets` builder (json, parquet, csv) reading data_files
    revision: str | None
    config: str | None = None
    data_files: Any = None

    @property
    def pinned(self) -> bool:
        """A commit hash pins the data; a branch name such as 'main' does not."""
        r = self.revision or ""
        return len(r) == 40 and all(c in "0123456789abcdef" for c in r)


@dataclass(frozen=True)
class SourceSpec:
    key: str  # config key, e.g. data.hub.test.fluency
    task: str
    node: str  # train | unlabeled_extra | dev | test
    options: dict = field(default_factory=dict)
    dataset: str | None = None  # hub spec
    split: str | None = None
    convert: str | None = None
    format: str | None = None  # local spec
    paths: dict = field(default_factory=dict)
    if_missing: str = "error"
    missing_note: str | None = None
    column: str | None = None

    @property
    def is_local(self) -> bool:
        return self.format is not None


@dataclass
class HubConfig:
    cache: str
    seed: int
    labeled_per_task: int | None
    unlabeled_per_task: int | None
    dev_per_task: int | None  # hold-out of the train pool for a task with no dev spec
    per_task: dict[str, dict]
    exclude_test_sources: bool
    local_root: str
    datasets: dict[str, HubDataset]
    specs: list[SourceSpec]

    def of(self, node: str, tasks: list[str] | None = None) -> list[SourceSpec]:
        return [s for s in self.specs if s.node == node and (tasks is None or s.task in tasks)]

    def size(self, task: str, split: str) -> int | None:
        """Records per task for `split` (labeled | unlabeled | dev): per_task.<task>.<split>, else the default."""
        own = (self.per_task.get(task) or {})
        return own[split] if split in own else getattr(self, f"{split}_per_task")


def _container(node: Any) -> dict:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return dict(node or {})


def _size(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataConfigError(f"{key}: expected a non-negative integer or null, got {value!r}")
    return value


def parse_hub(cfg: DictConfig) -> HubConfig:
    base = "data.hub"
    data = _container(cfg.data.get("hub"))
    bad = sorted(set(data) - TOP_KEYS)
    if bad:
        raise DataConfigError(f"{base}.{bad[0]}: unknown key; expected one of {sorted(TOP_KEYS)}")
    datasets = {}
    for k, d in (data.get("datasets") or {}).items():
        if not isinstance(d, dict) or not d.get("name"):
            raise DataConfigError(f"{base}.datasets.{k}.name: required (a hub id such as grammarly/coedit)")
        extra = sorted(set(d) - DATASET_KEYS)
        if extra:
            raise DataConfigError(f"{base}.datasets.{k}.{extra[0]}: unknown key; expected {sorted(DATASET_KEYS)}")
        datasets[k] = HubDataset(k, str(d["name"]), d.get("revision"), d.get("config"), d.get("data_files"))
    per_task = data.get("per_task") or {}
    for task, sizes in per_task.items():
        if task not in TASKS:
            raise DataConfigError(f"{base}.per_task.{task}: unknown task; expected one of {list(TASKS)}")
        for s, v in (sizes or {}).items():
            if s not in ("labeled", "unlabeled", "dev"):
                raise DataConfigError(f"{base}.per_task.{task}.{s}: unknown key; expected labeled, unlabeled or dev")
            _size(v, f"{base}.per_task.{task}.{s}")
    root = str(data.get("local_root") or ".")
    specs = []
    for node in SPLIT_NODES:
        by_task = data.get(node) or {}
        if not isinstance(by_task, dict):
            raise DataConfigError(f"{base}.{node}: expected a mapping task -> spec")
        for task, raw in by_task.items():
            key = f"{base}.{node}.{task}"
            if task not in TASKS:
                raise DataConfigError(f"{key}: unknown task; expected one of {list(TASKS)}")
            if raw is None:
                continue
            many = isinstance(raw, list)
            for i, spec in enumerate(raw if many else [raw]):
                specs.append(_spec(f"{key}[{i}]" if many else key, task, node, spec, datasets, root))
    seed = data.get("seed", cfg.get("seed", 0))
    return HubConfig(
        cache=str(data.get("cache") or ".rationalign-hub-cache"), seed=int(seed),
        labeled_per_task=_size(data.get("labeled_per_task"), f"{base}.labeled_per_task"),
        unlabeled_per_task=_size(data.get("unlabeled_per_task"), f"{base}.unlabeled_per_task"),
        dev_per_task=_size(data.get("dev_per_task"), f"{base}.dev_per_task"),
        per_task=per_task, exclude_test_sources=bool(data.get("exclude_test_sources", True)),
        local_root=root, datasets=datasets, specs=specs)


def _options_of(fn) -> set[str]:
    return {n for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}


def _spec(key: str, task: str, node: str, spec: Any, datasets: dict, root: str) -> SourceSpec:
    if not isinstance(spec, dict):
        raise DataConfigError(f"{key}: expected a spec mapping like {{dataset: coedit, split: train, convert: coedit}}")
    if "dataset" in spec and "format" in spec:
        raise DataConfigError(f"{key}: give either dataset (hub) or format (local files), not both")
    if "dataset" in spec:
        ds = spec["dataset"]
        if ds not in datasets:
            raise DataConfigError(f"{key}.dataset: {ds!r} is not a key of data.hub.datasets ({sorted(datasets)})")
        for k in ("split", "convert"):
            if not spec.get(k):
                raise DataConfigError(f"{key}.{k}: required for a hub spec")
        conv = spec["convert"]
        if conv not in CONVERTERS:
            raise DataConfigError(f"{key}.convert: unknown converter {conv!r}; expected one of {sorted(CONVERTERS)}")
        options = {k: v for k, v in spec.items() if k not in _HUB_KEYS}
        allowed = _options_of(CONVERTERS[conv])
        bad = sorted(set(options) - allowed)
        if bad:
            raise DataConfigError(f"{key}.{bad[0]}: not an option of converter {conv!r}; options: {sorted(allowed)}")
        return SourceSpec(key, task, node, options, dataset=ds, split=str(spec["split"]), convert=conv,
                          column=spec.get("column"))
    if "format" in spec:
        from rationalign.data import readers

        fmt = str(spec["format"]).lower()
        if fmt not in readers.FORMATS or fmt == "hub":
            raise DataConfigError(f"{key}.format: unknown local format {fmt!r}")
        need = ("source", "refs") if fmt in _ALIGNED else ("path",)
        for k in need:
            if not spec.get(k):
                raise DataConfigError(f"{key}.{k}: required for format {fmt!r}")
        if spec.get("if_missing", "error") not in ("error", "skip"):
            raise DataConfigError(f"{key}.if_missing: expected error or skip, got {spec['if_missing']!r}")
        paths = {k: _rooted(spec[k], root) for k in need}
        options = {k: v for k, v in spec.items() if k not in _LOCAL_KEYS}
        return SourceSpec(key, task, node, options, format=fmt, paths=paths,
                          if_missing=spec.get("if_missing", "error"), missing_note=spec.get("missing_note"),
                          column=spec.get("column"))
    raise DataConfigError(f"{key}: needs `dataset` (a key of data.hub.datasets) or `format` (local files)")


def _rooted(value: Any, root: str) -> Any:
    if isinstance(value, list):
        return [_rooted(v, root) for v in value]
    p = Path(str(value)).expanduser()
    return os.path.normpath(p if p.is_absolute() else Path(root).expanduser() / p)
