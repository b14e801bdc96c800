"""Sentence-level task scores: rank self-generated samples against the gold (K-fold RM pairs,
reward-model analyses). Corpus metrics on one-sentence corpora, with the task's primary metric."""

from __future__ import annotations

from typing import Any

from rationalign.data.records import Record


def _spec_get(spec: Any, key: str, default: Any = None) -> Any:
    return spec.get(key, default) if isinstance(spec, dict) else getattr(spec, key, default)


def sentence_score(spec: Any, record: Record, prediction: str) -> float:
    """Primary task metric of one prediction against the record's gold revision(s), 0-100."""
    from rationalign.metrics import get_metric

    metric = _spec_get(spec, "metric")
    gold_m2 = record.meta.get("m2") if record.meta else None
    refs: Any = [record.gold]
    if not record.gold and not gold_m2:
        raise ValueError(f"record {record.id}: no gold revision to score against")
    if metric == "m2" and gold_m2:
        from rationalign.tokenization import m2_hypothesis

        refs = gold_m2
        prediction = m2_hypothesis(record.meta, prediction)  # tokenised like the gold M2
    if metric == "formality":  # a classifier, not a gold comparison: rank by BLEU to the gold instead
        metric = "bleu"
    if metric == "bleu":
        import sacrebleu

        return float(sacrebleu.sentence_bleu(prediction, record.gold).score)
    return float(get_metric(metric)([record.source], [prediction], refs)["score"])
