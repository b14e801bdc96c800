"""Corpus BLEU through sacrebleu (the scores papers report), with its reproducibility signature."""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["corpus_bleu"]


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], **bleu_kwargs) -> dict:
    """``references[i]`` lists the references of sentence i (counts may differ between sentences).

    Returns dict(score=0-100, signature=sacrebleu signature string, plus BLEU's components).
    ``bleu_kwargs`` go to ``sacrebleu.metrics.BLEU`` (e.g. tokenize='13a', lowercase=False).
    """
    from sacrebleu.metrics import BLEU

    if len(predictions) != len(references):
        raise ValueError(f"BLEU: {len(predictions)} predictions but {len(references)} reference lists")
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(f"BLEU: references[{i}] is a string; expected a list of references")  # noqa: TRY004
        if len(refs) == 0:
            raise ValueError(f"BLEU: sentence {i} has no reference")
    n = max(len(r) for r in references)
    # sacrebleu wants one stream per reference position; None marks a missing reference
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(n)]
    metric = BLEU(**bleu_kwargs)
    res = metric.corpus_score(list(predictions), streams)
    return {"score": res.score, "signature": str(metric.get_signature()),
            "precisions": list(res.precisions), "bp": res.bp, "sys_len": res.sys_len,
            "ref_len": res.ref_len}
