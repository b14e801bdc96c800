"""What every rationale source shares: the explain() interface, the per-record error report,
and the registry (name -> class + typed options) that config files select from (`rationale=teacher`)."""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rationalign.config import checked
from rationalign.data.records import Record
from rationalign.edits import Edit, extract_edits
from rationalign.registry import Registry

log = logging.getLogger(__name__)

EditsArg = Sequence[Sequence[Edit] | None] | None


class RationaleError(RuntimeError):
    """Records could not be explained and the caller asked to fail."""


@dataclass
class Failure:
    id: str
    error: str


@dataclass
class ExplainResult:
    """Rationales aligned with the input records, plus one Failure per record that has none
    because something went wrong (as opposed to the `none` source, which fails nothing)."""

    rationales: list[str | None]
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self, max_listed: int = 1000) -> dict[str, Any]:
        """Counts and reasons, for a stage manifest."""
        return {
            "total": len(self.rationales),
            "explained": sum(r is not None for r in self.rationales),
            "failed": len(self.failures),
            "failures": [dataclasses.asdict(f) for f in self.failures[:max_listed]],
        }

    def raise_if_failed(self) -> None:
        if self.failures:
            head = "; ".join(f"{f.id}: {f.error}" for f in self.failures[:5])
            more = f" (+{len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
            raise RationaleError(f"{len(self.failures)} record(s) got no rationale: {head}{more}")


class RationaleSource(ABC):
    name: ClassVar[str] = "?"
    needs_edits: ClassVar[bool] = False  # False: don't load spaCy/ERRANT at all
    needs_target: ClassVar[bool] = False

    def __init__(self) -> None:
        self.last_result: ExplainResult | None = None

    def explain(self, records: Sequence[Record], edits: EditsArg = None) -> list[str | None]:
        """Rationales aligned with `records`; the error report is kept in `self.last_result`."""
        self.last_result = self.explain_report(records, edits)
        return self.last_result.rationales

    def explain_report(self, records: Sequence[Record], edits: EditsArg = None) -> ExplainResult:
        """Rationales plus the per-record failures; the stage decides to fail or go on."""
        records = list(records)
        if edits is not None and len(edits) != len(records):
            raise ValueError(f"{self.name}: {len(records)} records but {len(edits)} edit lists")
        if self.needs_edits:
            edits = list(edits) if edits is not None else [None] * len(records)
            # Fill only the gaps, so callers can pass edits they already extracted.
            gaps = [i for i, e in enumerate(edits) if e is None and records[i].target is not None]
            for i, e in zip(gaps, edits_for_records([records[i] for i in gaps])):
                edits[i] = e
        rationales: list[str | None] = [None] * len(records)
        failures: dict[int, str] = {}
        todo = []
        for i, rec in enumerate(records):
            if self.needs_target and rec.target is None:
                failures[i] = "record has no target to explain"
            else:
                todo.append(i)
        sub_edits = [edits[i] for i in todo] if edits is not None else None
        got, errs = self._explain([records[i] for i in todo], sub_edits)
        for j, i in enumerate(todo):
            rationales[i] = got[j]
            if j in errs:
                failures[i] = errs[j]
        result = ExplainResult(
            rationales, [Failure(records[i].id, failures[i]) for i in sorted(failures)]
        )
        for f in result.failures[:20]:
            log.warning("rationale[%s]: no rationale for %s: %s", self.name, f.id, f.error)
        if result.failures:
            log.warning("rationale[%s]: %d/%d records failed", self.name, len(result.failures), len(records))
        return result

    @abstractmethod
    def _explain(
        self, records: list[Record], edits: list[Sequence[Edit] | None] | None
    ) -> tuple[list[str | None], dict[int, str]]:
        """Rationales for `records` and {index: error} for the ones that failed."""


def edits_for_records(records: Sequence[Record]) -> list[list[Edit] | None]:
    """ERRANT edits source -> target; None for unlabeled records (no target)."""
    idx = [i for i, r in enumerate(records) if r.target is not None]
    got = extract_edits([records[i].source for i in idx], [records[i].target for i in idx])
    out: list[list[Edit] | None] = [None] * len(records)
    for i, e in zip(idx, got):
        out[i] = e
    return out


# ---- registry ---------------------------------------------------------------------------

SOURCES: Registry[type[RationaleSource]] = Registry("rationale source", group="rationale")

# Keys of the `rationale` node that belong to the rationalize stage, not to the source: where the
# rationale goes in the response (after | before | none, paper Fig. 9) and what to do with records
# whose rationale failed (fail | skip).
STAGE_KEYS = ("position", "on_error")


@dataclass
class StageOptions:
    """What every `rationale=<source>` node carries beside the source's own options."""

    position: str = checked("after", choices=("after", "before", "none"))
    on_error: str = checked("fail", choices=("fail", "skip"))


def register_source(name: str, config_cls: type):
    """Tie a source class to its name and its config dataclass (one source, one module).
    The dataclass has a `name` field too, so it can sit in a Hydra ConfigStore as is."""

    def deco(cls: type[RationaleSource]) -> type[RationaleSource]:
        cls.name = name
        SOURCES.add(name, cls, config=config_cls)
        return cls

    return deco


def source_options(rationale: Mapping[str, Any]) -> dict:
    """The rationale node minus the keys that belong to the stage, not the source."""
    return {k: v for k, v in rationale.items() if k not in STAGE_KEYS}


def parse_config(name: str, options: Mapping[str, Any]) -> Any:
    """Options -> the source's config dataclass; an unknown or secret-looking key, a wrong type or a
    value out of range is a one-line error naming `rationale.<key>`."""
    if name not in SOURCES:
        raise ValueError(f"rationale.name: unknown source '{name}' (known: {SOURCES.names()})")
    return SOURCES.typed(options, name=name, where="rationale", label=f" for source '{name}'")


def build_source(cfg: Mapping[str, Any] | str, **runtime: Any) -> RationaleSource:
    """Build a source from a config mapping with a `name` key (a dict or an OmegaConf node) or
    a bare name. `runtime` passes objects that config cannot hold (e.g. generator= for local)."""
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if hasattr(cfg, "_metadata"):  # OmegaConf DictConfig -> plain dict, interpolations resolved
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    options = source_options(cfg)
    name = options.get("name")
    if name is None:
        raise ValueError(f"rationale.name: missing (one of {SOURCES.names()})")
    config = parse_config(name, options)
    return SOURCES.get(name)(config, **runtime)


def local_generator(cfg: Any, model: str | None):
    """rationale=local, pair_rationale=local: `model` (path/hub id; None: the configured model) through
    the engine factory (engine=hf or vllm). The caller closes it."""
    from rationalign.engines import build_engine

    model_cfg = {"source": "hf", "path": model, "dtype": cfg.model.dtype} if model else cfg.model
    return build_engine(cfg, model_cfg=model_cfg)
