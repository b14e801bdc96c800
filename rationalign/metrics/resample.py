"""Per-sentence sufficient statistics of every corpus metric, so a bootstrap resample's corpus
score is a weighted sum of rows followed by the metric's own formula, not a rescoring of text.

A report column is a corpus-level number (SARI, M2 F0.5, BLEU, ...); a significance test that
resamples sentences must recompute that number on every resample (Koehn, 2004), not average
sentence scores. ``column_stats`` gives one row of statistics per sentence and a ``combine``
function such that ``combine(rows.sum(0))`` is exactly the corpus score the report prints
(tests/test_significance.py checks this for each metric):

- sari: the 36 n-gram counts of EASSE's corpus SARI (9 kinds x orders 1-4), summed over sentences.
- m2: (correct, proposed, gold) per sentence as the M2 scorer chose them on the whole corpus; the
  scorer's per-sentence annotator choice is kept fixed under resampling (as NUS GEC significance
  scripts do), so the resampled F0.5 is computed from the same edits.
- errant: (tp, fp, fn) per sentence, same convention.
- bleu: sacrebleu's own sentence statistics (n-gram matches and totals, lengths), as sacrebleu's
  paired bootstrap uses them.
- formality: (formal, 1) per sentence: the share of outputs the classifier calls formal.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["COMBINERS", "ColumnStats", "column_stats"]


@dataclass
class ColumnStats:
    """Statistics of one system's outputs on one report column."""

    metric: str
    rows: np.ndarray  # [sentences, k] float64
    options: dict[str, Any]

    @property
    def combine(self) -> Callable[[np.ndarray], float]:
        return combiner(self.metric, self.options)

    def score(self) -> float:
        """The corpus score of the whole column (what the report prints)."""
        return self.combine(self.rows.sum(0))

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """Corpus scores of resamples: counts[b, i] = how often sentence i is drawn in resample b."""
        summed = counts @ self.rows
        return np.array([self.combine(s) for s in summed])

    def to_json(self) -> dict:
        return {"metric": self.metric, "options": self.options, "rows": self.rows.tolist()}

    @classmethod
    def from_json(cls, d: dict) -> ColumnStats:
        return cls(d["metric"], np.asarray(d["rows"], dtype=np.float64), dict(d.get("options") or {}))


# ----------------------------------------------------------------------------- combiners


def _sari_combine(options: dict) -> Callable[[np.ndarray], float]:
    from rationalign.metrics.sari import NGRAM_ORDER, STAT_KEYS, sari_from_stats

    paper = bool(options.get("paper_version", False))

    def combine(v: np.ndarray) -> float:
        st = {k: list(v[i * NGRAM_ORDER:(i + 1) * NGRAM_ORDER]) for i, k in enumerate(STAT_KEYS)}
        return sari_from_stats(st, paper)

    return combine


def _m2_combine(options: dict) -> Callable[[np.ndarray], float]:
    beta = float(options.get("beta", 0.5))

    def combine(v: np.ndarray) -> float:  # rationalign.metrics.m2.evaluate's corpus formula
        c, p, g = (float(x) for x in v)
        prec = c / p if p else 1.0
        rec = c / g if g else 1.0
        den = beta * beta * prec + rec
        return 100.0 * ((1.0 + beta * beta) * prec * rec / den if den else 0.0)

    return combine


def _errant_combine(options: dict) -> Callable[[np.ndarray], float]:
    from rationalign.metrics.errant_f import prf

    beta = float(options.get("beta", 0.5))
    return lambda v: 100.0 * prf(int(v[0]), int(v[1]), int(v[2]), beta)[2]


def _bleu_combine(options: dict) -> Callable[[np.ndarray], float]:
    from sacrebleu.metrics import BLEU

    metric = BLEU(**options)
    return lambda v: float(metric._compute_score_from_stats([round(x) for x in v]).score)


def _formality_combine(options: dict) -> Callable[[np.ndarray], float]:
    return lambda v: 100.0 * float(v[0]) / float(v[1]) if v[1] else 0.0


COMBINERS: dict[str, Callable[[dict], Callable[[np.ndarray], float]]] = {
    "sari": _sari_combine, "m2": _m2_combine, "errant": _errant_combine, "bleu": _bleu_combine,
    "formality": _formality_combine,
}


def combiner(metric: str, options: dict | None = None) -> Callable[[np.ndarray], float]:
    if metric not in COMBINERS:
        raise KeyError(f"no per-sentence statistics for metric {metric!r} (known: {sorted(COMBINERS)})")
    return COMBINERS[metric](dict(options or {}))


# ----------------------------------------------------------------------------- statistics


def column_stats(metric: str, sources: Sequence[str] | None, predictions: Sequence[str], references: Any,
                 **options: Any) -> ColumnStats:
    """Per-sentence statistics of `metric`, taking the arguments the metric itself takes
    (rationalign.metrics.METRICS: references as lists of texts, or gold M2 for m2/errant)."""
    if metric == "sari":
        from rationalign.metrics.sari import STAT_KEYS, check_inputs, sentence_ngram_stats

        check_inputs(sources, predictions, references)
        lowercase = bool(options.get("lowercase", True))
        rows = []
        for s, p, refs in zip(sources, predictions, references):
            st = sentence_ngram_stats(s, p, refs, lowercase)
            rows.append([x for k in STAT_KEYS for x in st[k]])
        opts = {"paper_version": bool(options.get("paper_version", False))}
    elif metric == "m2":
        from rationalign.metrics import is_m2
        from rationalign.metrics.m2 import evaluate

        gold = references
        if not is_m2(references):
            from rationalign.metrics.errant_f import annotate_m2

            gold = annotate_m2(sources, references)
        res = evaluate(gold, predictions, **options)
        rows = [list(t) for t in res.per_sentence]
        opts = {"beta": options.get("beta", 0.5)}
    elif metric == "errant":
        from rationalign.metrics.errant_f import evaluate as errant_evaluate

        res = errant_evaluate(sources, predictions, references, **options)
        rows = [list(t) for t in res.per_sentence]
        opts = {"beta": options.get("beta", 0.5)}
    elif metric == "bleu":
        from sacrebleu.metrics import BLEU

        n = max(len(r) for r in references)
        streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(n)]
        rows = BLEU(**options)._extract_corpus_statistics(list(predictions), streams)
        opts = dict(options)
    elif metric == "formality":
        from rationalign.metrics.formality import default_classifier

        clf = options.pop("classifier", None) or default_classifier()
        target = int(options.get("target", 1))
        rows = [[float(y == target), 1.0] for y in clf.predict(list(predictions))]
        opts = {}
    else:
        raise KeyError(f"no per-sentence statistics for metric {metric!r} (known: {sorted(COMBINERS)})")
    return ColumnStats(metric, np.asarray(rows, dtype=np.float64).reshape(len(predictions), -1), opts)
