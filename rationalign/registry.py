"""One registry pattern for every component kind (stage, loss, reward loss, engine, metric, rationale
source, pair-rationale source, judge, tracker, QUARK reward).

A component is registered once, beside its definition, together with the typed dataclass that
holds its options and whatever it declares about itself (a loss: needs_reference, needs_reward,
needs_rationale):

    LOSSES = Registry("loss", group="loss")

    @dataclass
    class DPOConfig:
        beta: float = checked(0.1, gt=0)

    @LOSSES.register("dpo", config=DPOConfig, needs_reference=True)
    def dpo_loss(batch, *, beta=0.1): ...

The config group named by `group` selects an entry by its `name` key (`loss=dpo` -> cfg.loss.name);
`Registry.typed(node)` checks that node against the entry's dataclass (unknown keys, types and
ranges, one line per problem) and returns the dataclass instance the component is built from.
Every registry is listed in REGISTRIES, so one test walks every option of every group and checks it
reaches a registered component (tests/test_options_reach_code.py); `store_schemas()` puts each
entry's dataclass in Hydra's ConfigStore as `schema/<group>/<name>`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rationalign.cfg_access import cfg_get

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    config: type | None = None  # the component's typed options (a dataclass), None: takes none
    meta: dict[str, Any] = field(default_factory=dict)  # what the component declares (needs_reference, ...)

    def __getattr__(self, key: str) -> Any:
        # entry.needs_reference reads the declaration; a missing one is an error, not a silent False.
        meta = object.__getattribute__(self, "meta")
        if key in meta:
            return meta[key]
        raise AttributeError(f"'{object.__getattribute__(self, 'name')}' declares no '{key}'")


class Registry(Generic[T]):
    """name -> Entry. `group`: the Hydra config group whose `name` key selects from this registry."""

    def __init__(self, kind: str, *, group: str | None = None):
        self.kind = kind
        self.group = group
        self._entries: dict[str, Entry[T]] = {}
        REGISTRIES[kind] = self

    def register(self, name: str, *, config: type | None = None, **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj, config=config, **meta)
            return obj

        return deco

    def add(self, name: str, obj: T, *, config: type | None = None, **meta: Any) -> T:
        if name in self._entries:
            raise KeyError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = Entry(name, obj, config, dict(meta))
        return obj

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} '{name}'; known: {', '.join(sorted(self._entries))}") from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def typed(self, node: Any, *, name: str | None = None, where: str | None = None, label: str = "") -> Any:
        """The entry's dataclass built from `node` (a DictConfig/dict holding `name` and the options),
        checked by typed_options.typed_options (the one option checker). Raises ValueError naming every problem."""
        from omegaconf import OmegaConf

        from rationalign.typed_options import typed_options

        name = name if name is not None else cfg_get(node, "name")
        where = where or self.group or self.kind
        entry = self.entry(name)
        if entry.config is None:
            return None
        values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node or {})
        values = {k: v for k, v in values.items() if k != "name"}
        return typed_options(entry.config, values, where, label=label, prefix=f"{where}={name}: ")

    def build(self, node: Any, *, name: str | None = None, where: str | None = None, **runtime: Any) -> Any:
        """entry.obj(**typed options, **runtime): the options reach the component as keyword arguments,
        so an option the component does not take fails here (and in tests/test_options_reach_code.py)."""
        name = name if name is not None else cfg_get(node, "name")
        typed = self.typed(node, name=name, where=where)
        options = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)} if typed is not None else {}
        return self.entry(name).obj(**options, **runtime)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self):  # the names, sorted (so `sorted(REG)`, `set(REG)` read like a dict's keys)
        return iter(self.names())

    # A read-only mapping name -> object, so a registry stands where a dict of components stood
    # (the loss contract outside checks call: `LOSSES["mpo"](batch, beta=..)`).
    def __getitem__(self, name: str) -> T:
        return self.entry(name).obj

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        return self.names()

    def items(self) -> list[tuple[str, T]]:
        return [(e.name, e.obj) for e in self.entries()]

    def values(self) -> list[T]:
        return [e.obj for e in self.entries()]




REGISTRIES: dict[str, Registry[Any]] = {}


def store_schemas() -> None:
    """Every entry's dataclass in Hydra's ConfigStore as schema/<group>/<name> (for `--info` and for
    yaml files that want to extend the schema)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for reg in REGISTRIES.values():
        for e in reg.entries():
            if reg.group and e.config is not None:
                cs.store(group=f"schema/{reg.group}", name=e.name, node=e.config)
