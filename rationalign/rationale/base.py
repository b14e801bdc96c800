"""What every rationale source shares: the explain() interface, the per-record error report,
and the name -> class registry that config files select from (`rationale: teacher`)."""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rationalign.data.records import Record
from rationalign.edits import Edit, extract_edits

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

SOURCES: dict[str, tuple[type[RationaleSource], type]] = {}


def register_source(name: str, config_cls: type):
    """Tie a source class to its name and its config dataclass (one source, one module).
    The dataclass has a `name` field too, so it can sit in a Hydra ConfigStore as is."""

    def deco(cls: type[RationaleSource]) -> type[RationaleSource]:
        if name in SOURCES:
            raise ValueError(f"rationale source '{name}' registered twice")
        cls.name = name
        SOURCES[name] = (cls, config_cls)
        return cls

    return deco


def parse_config(name: str, options: Mapping[str, Any]) -> Any:
    """Options -> the source's config dataclass; an unknown or secret-looking key is a one-line
    error naming `rationale.<key>`."""
    if name not in SOURCES:
        raise ValueError(f"rationale.name: unknown source '{name}' (known: {sorted(SOURCES)})")
    cfg_cls = SOURCES[name][1]
    known = {f.name for f in dataclasses.fields(cfg_cls)}
    for key in options:
        if key in ("api_key", "key", "token", "secret"):
            raise ValueError(
                f"rationale.{key}: secrets are never read from config; put the key in an "
                "environment variable and name that variable in rationale.api_key_env"
            )
        if key not in known:
            raise ValueError(f"rationale.{key}: unknown option for source '{name}' (known: {sorted(known)})")
    return typed_options(cfg_cls, options, "rationale")


def typed_options(cfg_cls: type, options: Mapping[str, Any], prefix: str) -> Any:
    """options -> cfg_cls(**options) with each value checked against its annotation by OmegaConf
    (`temperature=hot` is an error naming `<prefix>.temperature`, not a crash mid-stage) and
    against the field's `checked` range."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from rationalign.config import _range_error

    try:
        node = OmegaConf.merge(OmegaConf.structured(cfg_cls), dict(options))
    except ValidationError as e:
        key = getattr(e, "full_key", None) or "?"
        raise ValueError(f"{prefix}.{key}={getattr(e, 'value', None)!s}: wrong type "
                         f"({str(e).splitlines()[0]})") from None
    values = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)  # '???' stays for the source
    for f in dataclasses.fields(cfg_cls):
        err = _range_error(f"{prefix}.{f.name}", values.get(f.name), dict(f.metadata)) if f.metadata else None
        if err:
            raise ValueError(err)
    return cfg_cls(**values)


def build_source(cfg: Mapping[str, Any] | str, **runtime: Any) -> RationaleSource:
    """Build a source from a config mapping with a `name` key (a dict or an OmegaConf node) or
    a bare name. `runtime` passes objects that config cannot hold (e.g. generator= for local)."""
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if hasattr(cfg, "_metadata"):  # OmegaConf DictConfig -> plain dict, interpolations resolved
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)
    options = dict(cfg)
    name = options.get("name")
    if name is None:
        raise ValueError(f"rationale.name: missing (one of {sorted(SOURCES)})")
    config = parse_config(name, options)
    return SOURCES[name][0](config, **runtime)
