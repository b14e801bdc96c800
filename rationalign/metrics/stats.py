"""Statistics for comparing systems: Pearson correlation and paired bootstrap significance."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["bootstrap_ci", "paired_bootstrap", "pearson"]


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; ValueError on mismatched lengths, fewer than 2 points or a constant input."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"pearson: need two 1-D sequences of equal length, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("pearson: need at least 2 points")
    da, db = a - a.mean(), b - b.mean()
    den = np.sqrt((da * da).sum() * (db * db).sum())
    if den == 0:
        raise ValueError("pearson: undefined for a constant input")
    return float((da * db).sum() / den)


def paired_bootstrap(scores_a: Sequence[float], scores_b: Sequence[float], n_resamples: int = 1000,
                     seed: int = 0,
                     aggregate: Callable[[np.ndarray], float] | None = None) -> float:
    """One-tailed paired bootstrap (Koehn, 2004): p-value for "system A is better than B".

    Sentences are resampled with replacement (the same indices for both systems); the p-value is
    the fraction of resamples in which A does *not* beat B (a bootstrap sign test). ``aggregate``
    turns per-sentence scores of a resample into a corpus score (default: mean); for metrics whose
    corpus score is not a mean (SARI, M2, ERRANT) pass a function of the per-sentence statistics.
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"paired_bootstrap: {a.shape[0]} vs {b.shape[0]} sentences")
    if a.shape[0] == 0:
        raise ValueError("paired_bootstrap: no sentences")
    if n_resamples < 1:
        raise ValueError("paired_bootstrap: n_resamples must be >= 1")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, a.shape[0], size=(n_resamples, a.shape[0]))
    if aggregate is None:
        diff = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    else:
        diff = np.array([aggregate(a[i]) - aggregate(b[i]) for i in idx])
    return float(np.mean(diff <= 0))


def bootstrap_ci(values: Sequence[float], groups: Sequence[Any] | None = None, n_resamples: int = 10000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (e.g. pairwise accuracy from 0/1 outcomes).

    With ``groups`` (e.g. the input each RM pair comes from) whole groups are resampled, so pairs
    that share an input, and so are not independent, do not narrow the interval; the resampled
    statistic is sum(values) / count over the drawn groups.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError("bootstrap_ci: need a non-empty 1-D sequence")
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ci: level must be in (0, 1), got {level}")
    if groups is None:
        sums, counts = v, np.ones_like(v)
    else:
        if len(groups) != len(v):
            raise ValueError(f"bootstrap_ci: {len(groups)} groups for {len(v)} values")
        keys = list(dict.fromkeys(groups))
        index = {g: i for i, g in enumerate(keys)}
        sums, counts = np.zeros(len(keys)), np.zeros(len(keys))
        for x, g in zip(v, groups):
            sums[index[g]] += x
            counts[index[g]] += 1
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_resamples, len(sums)))
    stat = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(stat, tail)), float(np.quantile(stat, 1 - tail))
