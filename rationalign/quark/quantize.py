"""Quantile bins over a growing data pool (QUARK's "quantize" step).

Every round the pool grows by the new samples, the bin edges are recomputed from the quantiles of
the whole pool, and every item (old ones too) is re-binned: a reward value that was "best" in round
1 can become average once the policy improves, which is what keeps pushing it up.
Bins are 0 (worst) .. n_bins-1 (best); inference conditions on n_bins-1.
"""

from __future__ import annotations

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


class Pool:
    """Rows (dicts) with one float per reward under row['rewards'][name]; grows, never shrinks."""

    def __init__(self, rows: list[dict] | None = None):
        self.rows: list[dict] = list(rows or [])

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rows: Sequence[dict]) -> None:
        self.rows.extend(rows)

    def quantize(self, rewards: Sequence[str], n_bins: int) -> tuple[list[dict[str, int]], dict[str, list[float]]]:
        """(per row {reward: bin}, {reward: edges}) over the whole current pool."""
        edges = {r: quantile_edges([row["rewards"][r] for row in self.rows], n_bins) for r in rewards}
        bins = {r: assign_bins([row["rewards"][r] for row in self.rows], edges[r]) for r in rewards}
        return [{r: bins[r][i] for r in rewards} for i in range(len(self.rows))], edges
