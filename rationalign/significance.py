"""Per report column, is one system better than another? One-tailed paired bootstrap p-values
(Koehn, 2004) on sentence-level task scores, for the comparisons the paper's Table 1 reads:
SFT(R) against SFT, and the aligned model against SFT(R)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rationalign.metrics.stats import paired_bootstrap

# (better?, than, label): systems named as in evaluate.systems.
COMPARISONS = (("sft", "sft_no_rationale", "SFT(R) vs SFT"), ("aligned", "sft", "aligned vs SFT(R)"))


def column_pvalues(columns: Mapping[str, Sequence[str]], scores: Mapping[str, Mapping[str, float]],
                   comparisons: Sequence[tuple[str, str, str]] = COMPARISONS, n_resamples: int = 10000,
                   seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """columns: report column -> record ids; scores: system -> record id -> sentence score.

    Returns {column: {label: {"a", "b", "n", "mean_a", "mean_b", "p", "p_lower"}}}, where p is the
    bootstrap p-value for "a scores higher than b" and p_lower the one for "b scores higher than a"
    (each small when that direction holds; with ties both can be near 1, so "a is worse" is read
    from p_lower, never from 1 - p). Comparisons whose systems were not evaluated are left out.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for col, ids in columns.items():
        for a, b, label in comparisons:
            if a not in scores or b not in scores or not ids:
                continue
            sa = [scores[a][i] for i in ids]
            sb = [scores[b][i] for i in ids]
            out.setdefault(col, {})[label] = {
                "a": a, "b": b, "n": len(ids), "mean_a": sum(sa) / len(sa), "mean_b": sum(sb) / len(sb),
                "p": paired_bootstrap(sa, sb, n_resamples=n_resamples, seed=seed),
                "p_lower": paired_bootstrap(sb, sa, n_resamples=n_resamples, seed=seed)}
    return out
