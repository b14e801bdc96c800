"""SARI (Xu et al., 2016), reproducing EASSE's ``corpus_sari`` (easse 0.2.4).

Behaviour (see shared/vectors/README.md): optional ``str.lower``, sacrebleu 13a tokenisation,
whitespace split; ADD uses n-gram *sets*, KEEP/DEL use counters where source counts are scaled
by the number of references and reference counts are summed. Counts are summed over the corpus
before any precision/recall, so corpus SARI is not the mean of sentence SARI.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

NGRAM_ORDER = 4
_TOKENIZER = Tokenizer13a()

__all__ = ["corpus_ngram_stats", "corpus_sari", "corpus_sari_operations", "sari_from_stats", "sentence_ngram_stats",
           "sentence_sari"]


@lru_cache(maxsize=2**16)
def _normalize(text: str, lowercase: bool) -> str:
    if lowercase:
        text = text.lower()
    return _TOKENIZER(text)


def _ngrams(text: str) -> list[Counter]:
    toks = text.split()
    return [Counter(" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1))
            for n in range(1, NGRAM_ORDER + 1)]


def _scaled(counter: Counter, k: int) -> Counter:
    return Counter({g: c * k for g, c in counter.items()})


def check_inputs(sources, predictions, references) -> int:
    if not (len(sources) == len(predictions) == len(references)):
        raise ValueError(
            f"SARI: length mismatch: {len(sources)} sources, {len(predictions)} predictions, "
            f"{len(references)} reference lists")
    if not references:
        raise ValueError("SARI: empty corpus")
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(f"SARI: references[{i}] is a string; expected a list of references")  # noqa: TRY004
    n_refs = {len(r) for r in references}
    if len(n_refs) != 1:
        raise ValueError(
            f"SARI: all sentences must have the same number of references, got counts {sorted(n_refs)}")
    if 0 in n_refs:
        raise ValueError("SARI: every sentence needs at least one reference")
    return n_refs.pop()


STAT_KEYS = ("add_sys_correct", "add_sys_total", "add_ref_total",
             "keep_sys_correct", "keep_sys_total", "keep_ref_total",
             "del_sys_correct", "del_sys_total", "del_ref_total")


def sentence_ngram_stats(source: str, prediction: str, references: Sequence[str],
                         lowercase: bool = True) -> dict:
    """One sentence's n-gram statistics (lists over orders 1-4); summed over sentences they are
    the corpus statistics, so a bootstrap resample is a weighted sum (rationalign.metrics.resample)."""
    n_refs = len(references)
    st = {k: [0] * NGRAM_ORDER for k in STAT_KEYS}
    s_ng = _ngrams(_normalize(source, lowercase))
    h_ng = _ngrams(_normalize(prediction, lowercase))
    r_ng = [Counter() for _ in range(NGRAM_ORDER)]
    for ref in references:
        for n, c in enumerate(_ngrams(_normalize(ref, lowercase))):
            r_ng[n].update(c)
    for n in range(NGRAM_ORDER):
        s, h, r = s_ng[n], h_ng[n], r_ng[n]
        # ADD: binary (sets)
        added = h.keys() - s.keys()
        st["add_sys_total"][n] = len(added)
        st["add_ref_total"][n] = len(r.keys() - s.keys())
        st["add_sys_correct"][n] = len(added & r.keys())
        # KEEP / DEL: weighted, source and hypothesis scaled by the number of references
        s_k, h_k = _scaled(s, n_refs), _scaled(h, n_refs)
        kept_h, kept_r = s_k & h_k, s_k & r
        st["keep_sys_total"][n] = sum(kept_h.values())
        st["keep_ref_total"][n] = sum(kept_r.values())
        st["keep_sys_correct"][n] = sum((kept_h & kept_r).values())
        del_h, del_r = s_k - h_k, s_k - r
        st["del_sys_total"][n] = sum(del_h.values())
        st["del_ref_total"][n] = sum(del_r.values())
        st["del_sys_correct"][n] = sum((del_h & del_r).values())
    return st


def corpus_ngram_stats(sources: Sequence[str], predictions: Sequence[str],
                       references: Sequence[Sequence[str]], lowercase: bool = True) -> dict:
    """Corpus-summed n-gram statistics (lists over orders 1-4), named as in the vectors."""
    check_inputs(sources, predictions, references)
    st = {k: [0] * NGRAM_ORDER for k in STAT_KEYS}
    for src, hyp, refs in zip(sources, predictions, references):
        one = sentence_ngram_stats(src, hyp, refs, lowercase)
        for k in STAT_KEYS:
            st[k] = [a + b for a, b in zip(st[k], one[k])]
    return st


def sari_from_stats(st: dict, paper_version: bool = False) -> float:
    """Corpus SARI (0-100) from summed statistics (corpus_ngram_stats' layout)."""
    add, keep, dele = _operation_scores(st, paper_version)
    return 100.0 * (add + keep + dele) / 3


def _prf(correct: float, sys_total: float, ref_total: float) -> tuple[float, float, float]:
    p = correct / sys_total if sys_total > 0 else 0.0
    r = correct / ref_total if ref_total > 0 else 0.0
    return p, r, _f1(p, r)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p > 0 and r > 0 else 0.0


def _operation_scores(st: dict, paper_version: bool) -> tuple[float, float, float]:
    out = []
    for op in ("add", "keep", "del"):
        prfs = [_prf(st[f"{op}_sys_correct"][n], st[f"{op}_sys_total"][n], st[f"{op}_ref_total"][n])
                for n in range(NGRAM_ORDER)]
        if paper_version:  # micro: average P and R over orders, then F1
            out.append(_f1(sum(x[0] for x in prfs) / NGRAM_ORDER, sum(x[1] for x in prfs) / NGRAM_ORDER))
        else:  # macro: mean of per-order F1
            out.append(sum(x[2] for x in prfs) / NGRAM_ORDER)
    return out[0], out[1], out[2]


def corpus_sari_operations(sources: Sequence[str], predictions: Sequence[str],
                           references: Sequence[Sequence[str]], lowercase: bool = True,
                           paper_version: bool = False) -> dict:
    """ADD / KEEP / DEL scores (0-100); ``del_`` because ``del`` is a keyword."""
    st = corpus_ngram_stats(sources, predictions, references, lowercase)
    add, keep, dele = _operation_scores(st, paper_version)
    return {"add": 100.0 * add, "keep": 100.0 * keep, "del_": 100.0 * dele}


def corpus_sari(sources: Sequence[str], predictions: Sequence[str],
                references: Sequence[Sequence[str]], lowercase: bool = True,
                paper_version: bool = False) -> float:
    """Corpus SARI on a 0-100 scale; ``references[i]`` is the list of references of sentence i."""
    ops = corpus_sari_operations(sources, predictions, references, lowercase, paper_version)
    return (ops["add"] + ops["keep"] + ops["del_"]) / 3


def sentence_sari(source: str, prediction: str, references: Sequence[str], **kw) -> float:
    """SARI of one sentence (a one-sentence corpus); used for per-sentence significance tests."""
    return corpus_sari([source], [prediction], [list(references)], **kw)
