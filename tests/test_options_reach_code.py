"""Every option of every config group reaches code.

Each yaml of each group under conf/ (and each experiment preset) is composed as a run sees it;
every key of the composed config must be something the code reads:

* the option of a registered component (loss, engine, tracker, rationale source, pair-rationale
  source, judge, ...): a field of the entry's typed dataclass and, through `Registry.build` or the
  component's own constructor, a parameter of the component (checked in test_registered_options);
* any other key: read somewhere in rationalign/ by name: an attribute (`cfg.train.lr`), a string
  key (`cfg["lr"]`, `.get("lr")`, `OmegaConf.select(cfg, "train.lr")`) or a keyword parameter that
  a node is splatted into (`f(**cfg.train)`).

The second check is by name, so it cannot tell two keys with the same last name apart; it does
catch an option that nothing reads at all (the planted one in the last test).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
# hydra's own node is read by Hydra.
NOT_OPTIONS = ("hydra",)
# Groups that are not composed into the run config (accelerate's own launcher files, hydra plugins).
NOT_GROUPS = {"accelerate", "hydra"}


class Names(set):
    """Names read in the code, plus the patterns of keys built by f-strings (f"max_{split}_per_task")."""

    def __init__(self):
        super().__init__()
        self.patterns: list[re.Pattern] = []

    def __contains__(self, name: object) -> bool:
        return set.__contains__(self, name) or any(p.fullmatch(str(name)) for p in self.patterns)


def read_names(root: Path = REPO / "rationalign") -> Names:
    names = Names()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                parts = [re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in node.values]
                if any(isinstance(v, ast.Constant) and "_" in str(v.value) for v in node.values):
                    names.patterns.append(re.compile("".join(parts)))
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
                names.update(part for part in node.value.replace(",", " ").replace(".", " ").split())
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names.update(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs])
    return names


def leaf_keys(node, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, DictConfig):
        for key in node:
            path = f"{prefix}.{key}" if prefix else str(key)
            if path.split(".")[0] in NOT_OPTIONS:
                continue
            value = node._get_node(key)
            if isinstance(value, DictConfig) and not value._is_none() and not value._is_missing():
                out.append(path)
                out += leaf_keys(value, path)
            else:
                out.append(path)
    return out


def options() -> list[tuple[str, str]]:
    out = []
    for group_dir in sorted(p for p in CONF.rglob("*") if p.is_dir()):
        group = group_dir.relative_to(CONF).as_posix()
        if group.split("/")[0] in NOT_GROUPS:
            continue
        out += [(group, y.stem) for y in sorted(group_dir.glob("*.yaml"))]
    return out


@pytest.fixture(scope="module")
def names() -> Names:
    return read_names()


def compose_option(group: str, option: str) -> DictConfig:
    from rationalign.runner import compose

    return compose([f"{group}={option}"])


def unread(cfg: DictConfig, names: set[str]) -> list[str]:
    missing = []
    for path in leaf_keys(cfg):
        parts = path.split(".")
        if parts[0] == "task" and len(parts) > 2 and parts[1] == "specs":
            parts = parts[:2] + parts[3:]  # task.specs.<task>.<field>: the task name is data
            if len(parts) == 2:
                continue
        if parts[:3] == ["data", "local", "pools"] and len(parts) > 3:
            parts = parts[:3] + parts[4:]  # data.local.pools.<name>.<field>: the pool name is data
        if parts[-1] not in names:
            missing.append(path)
    return missing


@pytest.mark.parametrize("group,option", options(), ids=lambda x: str(x))
def test_every_key_of_every_option_is_read(group, option, names):
    cfg = compose_option(group, option)
    assert unread(cfg, names) == [], f"{group}={option}: keys nothing in rationalign/ reads"


def test_registered_options_are_parameters_of_their_component():
    """A registered component gets its typed options as keyword arguments (Registry.build) or as
    one dataclass (its constructor takes `config`); either way every field has a reader."""
    from rationalign.components import import_components
    from rationalign.registry import REGISTRIES

    import_components()
    problems = []
    for kind, reg in REGISTRIES.items():
        for e in reg.entries():
            if e.config is None:
                continue
            fields = {f.name for f in dataclasses.fields(e.config)}
            try:
                params = inspect.signature(e.obj).parameters
            except (TypeError, ValueError):
                continue
            takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
            takes_config = any(p.annotation in (e.config, e.config.__name__) or n == "config"
                               for n, p in params.items())
            if not (takes_config or takes_kwargs or fields <= set(params)):
                problems.append(f"{kind} {e.name}: options {sorted(fields - set(params))} are not parameters")
    assert problems == []


def test_an_option_nothing_reads_fails(tmp_path, names):
    """The check can fail: a key no code reads is reported, a read one is not."""
    cfg = OmegaConf.create({"train": {"lr": 1e-4, "zz_never_read_anywhere": 3}, "hydra": {"x": 1}})
    assert unread(cfg, names) == ["train.zz_never_read_anywhere"]
    (tmp_path / "m.py").write_text("def f(cfg):\n    return cfg.train.zz_never_read_anywhere\n")
    assert "zz_never_read_anywhere" in read_names(tmp_path)


def test_every_group_is_covered():
    groups = {g for g, _ in options()}
    assert {"loss", "engine", "tracking", "rationale", "pair_rationale", "judge", "model", "data", "task",
            "stage", "prompts", "experiment", "quark/schedule"} <= groups
