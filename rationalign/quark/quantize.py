"""Bins over a growing data pool (QUARK's "quantize" step).

Every round the pool grows by the new samples and every item (old ones too) is re-binned over the
whole pool: a reward value that was "best" in round 1 can become average once the policy improves,
which is what keeps pushing it up. Bins are 0 (worst) .. n_bins-1 (best); inference conditions on
n_bins-1.

`rank` (default, MaRio's data_pool_n.py:158-168): sort by reward, cut into equal-count bins, so
every bin holds ~1/n_bins of the pool whatever the ties. `quantile` (the older rule): edges at value
quantiles, which puts a tied maximum (consistency 1.0 for "no edits, nothing quoted") wholly in
the best bin. A reward whose pool values are all 0 or 1 gets binary bins either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def quantile_edges(values: Sequence[float], n_bins: int) -> list[float]:
    """The n_bins-1 inner edges at quantiles 1/n, 2/n, ... of the values."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not len(values):
        raise ValueError("quantile_edges: no values")
    qs = [i / n_bins for i in range(1, n_bins)]
    return [float(x) for x in np.quantile(np.asarray(values, dtype=float), qs)] if qs else []


def assign_bins(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Bin of each value. Distinct values fall between edges; a value *equal* to one or more edges
    (ties, common for metrics like consistency or a length plateau) could sit in any bin from
    `lo` to `hi`: the pool's maximum goes to `hi` (ties at the top are the best samples and must
    reach the best bin, which inference conditions on), the pool's minimum to `lo`, anything else
    to the middle of its range."""
    e = np.asarray(edges, dtype=float)
    v = np.asarray(values, dtype=float)
    if not len(v):
        return []
    lo = np.searchsorted(e, v, side="left")
    hi = np.searchsorted(e, v, side="right")
    top, bottom = v.max(), v.min()
    out = []
    for x, a, b in zip(v, lo, hi):
        if a == b or x == top:
            out.append(int(b))
        elif x == bottom:
            out.append(int(a))
        else:
            out.append(int((a + b + 1) // 2))
    return out


def is_binary(values: Sequence[float]) -> bool:
    return len(values) > 0 and {float(v) for v in values} <= {0.0, 1.0}


def binary_bins(values: Sequence[float], n_bins: int) -> list[int]:
    """1 -> the best bin, 0 -> the worst: a 0/1 reward (exact match, MaRio's accuracy token) has two
    states, and splitting the 1s over several bins by rank would give equal answers different tokens."""
    return [n_bins - 1 if float(v) == 1.0 else 0 for v in values]


def _tie_key(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def rank_bins(values: Sequence[float], n_bins: int, keys: Sequence[str] | None = None, seed: int = 0) -> list[int]:
    """Equal-count bins by rank. Rank 0 is the highest value; rank i of N goes to bin
    n_bins-1 - floor(i * n_bins / N), so bin sizes differ by at most one and the best bin is never empty.

    Tie rule: equal values are ordered by a seeded hash of their key (the pool item's prompt and
    completion; its index when no keys), i.e. a reproducible random order that does not depend on
    when an item joined the pool. A tied group therefore spreads over the bins its ranks cover
    (60% of the pool at 1.0 fills the top three of five bins, 20% each) instead of all reaching the
    top bin. MaRio's stable sort breaks ties by pool order instead (older items rank higher)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    n = len(values)
    ks = [str(i) for i in range(n)] if keys is None else [str(k) for k in keys]
    if len(ks) != n:
        raise ValueError(f"rank_bins: {n} values but {len(ks)} keys")
    order = sorted(range(n), key=lambda i: (-float(values[i]), _tie_key(seed, ks[i]), i))
    out = [0] * n
    for rank, i in enumerate(order):
        out[i] = n_bins - 1 - (rank * n_bins) // n
    return out


def pool_key(row: dict) -> tuple[str, str] | None:
    """(user message, completion): the pair MaRio's pool is keyed by (data_pool_n.py:181)."""
    if "user_message" in row and "completion" in row:
        return row["user_message"], row["completion"]
    return None


class Pool:
    """Rows (dicts) with one float per reward under row['rewards'][name]; grows, never shrinks.
    With dedup, a row whose (user message, completion) is already in the pool is merged into it
    (its `copies` count goes up) instead of added: a sample the policy repeats round after round
    would otherwise weigh more in training every round."""

    def __init__(self, rows: list[dict] | None = None, *, dedup: bool = False):
        self.rows: list[dict] = []
        self.dedup = dedup
        self._index: dict[tuple[str, str], int] = {}
        self.add(rows or [])

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rows) -> int:
        """Add rows; returns how many were merged into an existing item (0 without dedup)."""
        merged = 0
        for row in rows:
            key = pool_key(row) if self.dedup else None
            if key is not None and key in self._index:
                kept = self.rows[self._index[key]]
                kept["copies"] = kept.get("copies", 1) + row.get("copies", 1)
                merged += 1
                continue
            if key is not None:
                self._index[key] = len(self.rows)
            self.rows.append(row)
        return merged

    def quantize(self, rewards: Sequence[str], n_bins: int, *, method: str = "quantile",
                 seed: int = 0) -> tuple[list[dict[str, int]], dict[str, dict]]:
        """(per row {reward: bin}, {reward: how it was binned}) over the whole current pool. The
        description has the method (rank | quantile | binary), the count per bin and the lowest
        value in each bin (bins 0..n_bins-1; None for an empty bin)."""
        if method not in ("rank", "quantile"):
            raise ValueError(f"quark.binning={method!r}: expected rank or quantile")
        keys = ["\0".join(pool_key(x) or (str(i),)) for i, x in enumerate(self.rows)]
        bins, info = {}, {}
        for r in rewards:
            vals = [float(row["rewards"][r]) for row in self.rows]
            if is_binary(vals) and n_bins >= 2:
                b, how = binary_bins(vals, n_bins), "binary"
            elif method == "rank":
                b, how = rank_bins(vals, n_bins, keys, seed), "rank"
            else:
                b, how = assign_bins(vals, quantile_edges(vals, n_bins)) if vals else [], "quantile"
            bins[r] = b
            info[r] = {"method": how, "counts": [b.count(k) for k in range(n_bins)],
                       "lowest": [min((v for v, k in zip(vals, b) if k == j), default=None) for j in range(n_bins)]}
        return [{r: bins[r][i] for r in rewards} for i in range(len(self.rows))], info
