"""Confidence intervals for judge results: Wilson score for proportions, percentile bootstrap for means."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for k successes out of n; None when n == 0."""
    if n == 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    z = _z(level)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if k == 0 else max(0.0, centre - half)   # exact at the ends (no float residue)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def bootstrap_ci(values: Sequence[float], level: float = 0.95, samples: int = 1000,
                 seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (seeded, so tables are reproducible)."""
    vals = list(values)
    if not vals:
        return None
    _z(level)
    rng = random.Random(seed)
    n = len(vals)
    means = sorted(sum(rng.choice(vals) for _ in range(n)) / n for _ in range(samples))
    lo_i = math.floor((1 - level) / 2 * (samples - 1))
    hi_i = math.ceil((1 + level) / 2 * (samples - 1))
    return means[lo_i], means[hi_i]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
