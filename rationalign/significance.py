"""Is one system better than another on a report column? The paper's test, on the statistic the
report prints.

The paper (Sec. 4.1) reports "the average scores of three runs and use[s] a one-tailed sign test
with bootstrap resampling (Cao et al., 2021)". As NUS GEC papers run it: draw B bootstrap
resamples of the test sentences (the same indices for both systems); on each, compute each
system's corpus-level column metric (SARI, M2 F0.5, BLEU, ... recomputed, never a mean of
sentence scores); count the resamples where A beats B (wins), where B beats A (losses) and ties;
the one-tailed sign test on wins against losses (ties dropped) gives p = P(X >= wins),
X ~ Binomial(wins + losses, 1/2). Identical outputs tie on every resample: p = 1 both ways.

B: 100 by default (`evaluate.significance.sign_test_resamples`), the number NUS GEC papers state
for this test (e.g. Chollampatt & Ng, 2018: "bootstrap resampling on 100 samples"); the papers in
shared/ do not print it, so it is configurable. The sign test's p shrinks as B grows for the same
win rate, so we also report, under its own key, the paired bootstrap p (Koehn, 2004) on
`bootstrap_resamples` (default 1000) resamples: the share of resamples where A does not beat B,
which does not depend on B. Both recompute the corpus metric per resample (metrics/resample.py).

Several runs (seeds) are compared pooled: on each resample, a system's score is the mean over its
runs of the corpus metric on that resample, as the paper averages three runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rationalign.metrics.resample import ColumnStats

# (A, B, label): "is A better than B", systems named as in evaluate.systems. The paper's Table 1
# reads SFT(R) against SFT, the aligned model against SFT(R), and (Sec. 4.2) alignment without
# rationale against SFT without rationale.
COMPARISONS = (
    ("sft", "sft_no_rationale", "SFT(R) vs SFT"),
    ("aligned", "sft", "aligned vs SFT(R)"),
    ("aligned_no_rationale", "sft_no_rationale", "aligned vs SFT (no rationale)"),
)
SIGN_TEST_RESAMPLES = 100
BOOTSTRAP_RESAMPLES = 1000


def sign_test_p(wins: int, losses: int) -> float:
    """One-tailed exact sign test: P(X >= wins), X ~ Binomial(wins + losses, 1/2); 1.0 with no
    untied comparison (nothing to conclude either way)."""
    n = wins + losses
    if wins < 0 or losses < 0:
        raise ValueError(f"sign_test_p: negative counts ({wins}, {losses})")
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, k) for k in range(wins, n + 1)) / 2 ** n)


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n]: how often each of n sentences is drawn in each bootstrap resample."""
    if n < 1:
        raise ValueError("resample_counts: no sentences")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n), dtype=np.float64)
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    return counts


def _pooled(runs: Sequence[ColumnStats], counts: np.ndarray) -> np.ndarray:
    return np.mean([r.resampled(counts) for r in runs], axis=0)


def compare(a: Sequence[ColumnStats] | ColumnStats, b: Sequence[ColumnStats] | ColumnStats,
            sign_resamples: int = SIGN_TEST_RESAMPLES, bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = 0) -> dict[str, Any]:
    """Is A better than B? a, b: one system's statistics on the same sentences, one per run
    (several runs are pooled by their mean score per resample).

    Returns {n, runs, score_a, score_b, delta, wins, losses, ties, resamples, p, p_lower, bootstrap}:
    p is the sign test's one-tailed p for "A > B" and p_lower the one for "B > A";
    bootstrap = {resamples, p, p_lower, delta_ci} (Koehn's paired bootstrap on its own resamples).
    """
    a_runs = [a] if isinstance(a, ColumnStats) else list(a)
    b_runs = [b] if isinstance(b, ColumnStats) else list(b)
    if not a_runs or not b_runs:
        raise ValueError("compare: each system needs at least one run")
    sizes = {r.rows.shape[0] for r in (*a_runs, *b_runs)}
    metrics = {r.metric for r in (*a_runs, *b_runs)}
    if len(sizes) != 1 or len(metrics) != 1:
        raise ValueError(f"compare: systems must be scored on the same sentences with one metric "
                         f"(sentences {sorted(sizes)}, metrics {sorted(metrics)})")
    n = sizes.pop()
    counts = resample_counts(n, max(sign_resamples, bootstrap_resamples), seed)
    sa, sb = _pooled(a_runs, counts), _pooled(b_runs, counts)
    s_a, s_b = sa[:sign_resamples], sb[:sign_resamples]
    wins, losses = int(np.sum(s_a > s_b)), int(np.sum(s_a < s_b))
    ba, bb = sa[:bootstrap_resamples], sb[:bootstrap_resamples]
    diff = ba - bb
    score_a = float(np.mean([r.score() for r in a_runs]))
    score_b = float(np.mean([r.score() for r in b_runs]))
    return {
        "n": n, "runs": [len(a_runs), len(b_runs)], "metric": metrics.pop(),
        "score_a": score_a, "score_b": score_b, "delta": score_a - score_b,
        "wins": wins, "losses": losses, "ties": sign_resamples - wins - losses, "resamples": sign_resamples,
        "p": sign_test_p(wins, losses), "p_lower": sign_test_p(losses, wins),
        "test": "one-tailed sign test with bootstrap resampling (corpus metric per resample)",
        "bootstrap": {"resamples": bootstrap_resamples, "p": float(np.mean(diff <= 0)),
                      "p_lower": float(np.mean(diff >= 0)),
                      "delta_ci": [float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))],
                      "test": "paired bootstrap (Koehn, 2004), one-tailed"},
    }


def column_pvalues(stats: Mapping[str, Mapping[str, ColumnStats | Sequence[ColumnStats]]],
                   comparisons: Sequence[tuple[str, str, str]] = COMPARISONS,
                   sign_resamples: int = SIGN_TEST_RESAMPLES, bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
                   seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """stats: system -> report column -> its statistics (one run, or a list of runs).

    Returns {column: {label: {"a", "b", **compare(...)}}}; comparisons whose systems were not
    evaluated are left out."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    columns = list(dict.fromkeys(c for per_col in stats.values() for c in per_col))
    for col in columns:
        for a, b, label in comparisons:
            if col not in stats.get(a, {}) or col not in stats.get(b, {}):
                continue
            res = compare(stats[a][col], stats[b][col], sign_resamples, bootstrap_resamples, seed)
            out.setdefault(col, {})[label] = {"a": a, "b": b, **res}
    return out
