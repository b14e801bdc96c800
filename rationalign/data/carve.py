"""Carve one pool of records into disjoint parts (data.local.pools; rationalign/data/configured.py).

    pools:
      asset_valid: {task: simplification, seed: 0, format: asset, source: ..., refs: ...}
    labeled:   {simplification: {pool: asset_valid, take: 1000}}
    dev:       {simplification: {pool: asset_valid, take: 300}}
    test:      {simplification: {pool: asset_valid, take: null}}   # null: the rest

Records are grouped by their normalised source sentence (whitespace collapsed, case folded), so
two records with the same source always land in the same part. The groups are shuffled once with
Random(f"carve:{seed}") and laid out as consecutive parts in CARVE_ORDER (then the order of the
specs within a split). The carve seed is the pool's own, never the run's `seed`: `-m seed=0,1,2`
trains and evaluates on the same data, and every split gets the same records whichever split is
read first. `take` counts source sentences; it equals the record count when sources are unique.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rationalign.data.records import DataConfigError, Record

CARVE_ORDER = ("labeled", "unlabeled", "dev", "test")


@dataclass(frozen=True)
class Part:
    key: str  # config key of the split spec that takes it, e.g. data.local.dev.simplification
    take: int | None  # source sentences; None = what the other parts leave


def norm_source(text: str) -> str:
    """The form sources are compared in: whitespace collapsed, case folded."""
    return " ".join(text.split()).casefold()


def check_take(key: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataConfigError(f"{key}.take: expected a positive number of source sentences or null (the rest), "
                              f"got {value!r}")
    return value


def part_sizes(pool_key: str, n_sources: int, parts: list[Part]) -> list[int]:
    """Sources per part; the one `take: null` part gets what the others leave."""
    rest = [p.key for p in parts if p.take is None]
    if len(rest) > 1:
        raise DataConfigError(f"{rest[1]}.take: null (the rest) is already taken by {rest[0]}; "
                              f"only one part of {pool_key} may take the rest")
    taken = 0
    for p in parts:
        if p.take is None:
            continue
        if taken + p.take > n_sources:
            before = ", ".join(f"{q.key} {q.take}" for q in parts[:parts.index(p)] if q.take is not None)
            raise DataConfigError(f"{p.key}.take: {p.take} source sentences asked of {pool_key}, which holds "
                                  f"{n_sources}" + (f" ({before} taken before it)" if before else ""))
        taken += p.take
    return [n_sources - taken if p.take is None else p.take for p in parts]


def carve(records: list[Record], parts: list[Part], seed: int, pool_key: str) -> dict[str, list[Record]]:
    """{part key: its records, in pool order}, disjoint by normalised source."""
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(norm_source(r.source), []).append(i)
    order = list(groups)
    random.Random(f"carve:{seed}").shuffle(order)
    sizes = part_sizes(pool_key, len(order), parts)
    out: dict[str, list[Record]] = {}
    start = 0
    for part, size in zip(parts, sizes):
        picked = sorted(i for src in order[start:start + size] for i in groups[src])
        out[part.key] = [records[i] for i in picked]
        start += size
    return out
