"""Writing-task metrics, checked against the reference scorers (shared/vectors).

``METRICS[name](sources, predictions, references, **kw) -> dict`` gives every metric one calling
convention for the evaluate stage; the main key ``score`` is on a 0-100 scale. Accepted
``references`` per metric:

- ``sari``: list (one per sentence) of lists of reference strings, same count for every sentence.
- ``bleu``: list of lists of reference strings (counts may vary); ``sources`` is ignored.
- ``m2``: the gold M2 (path, text, or ``parse_m2`` output; ``sources`` may then be None), or lists
  of corrected references, which are first turned into gold M2 with errant (one annotator each).
- ``errant``: lists of corrected references, or a reference M2 (path, text, parsed).
- ``formality``: ignored (may be None); ``target=1`` counts formal outputs, ``classifier=`` any
  object with ``predict(texts) -> list[int]`` (default: the offline n-gram classifier).

The modules are imported lazily so that ``import rationalign.metrics`` stays cheap (no spaCy,
no scikit-learn until a metric that needs them runs).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rationalign.registry import Registry

__all__ = ["METRICS", "get_metric"]


def _sari(sources, predictions, references, lowercase: bool = True, paper_version: bool = False) -> dict:
    from . import sari

    ops = sari.corpus_sari_operations(sources, predictions, references, lowercase, paper_version)
    return {"score": (ops["add"] + ops["keep"] + ops["del_"]) / 3, **ops}


def is_m2(refs) -> bool:
    from rationalign.m2_format import M2Sentence

    return isinstance(refs, (str, Path)) or (isinstance(refs, list) and bool(refs)
                                             and isinstance(refs[0], M2Sentence))


def _m2(sources, predictions, references, beta: float = 0.5, max_unchanged_words: int = 2,
        ignore_whitespace_casing: bool = False) -> dict:
    from . import m2

    gold = references
    if not is_m2(references):
        from .errant_f import annotate_m2

        if sources is None:
            raise ValueError("m2: sources are required when references are plain texts")
        gold = annotate_m2(sources, references)
    res = m2.score(gold, predictions, beta, max_unchanged_words, ignore_whitespace_casing)
    return {"score": 100.0 * res["f"], **res}


def _errant(sources, predictions, references, beta: float = 0.5, tokenize: bool = False) -> dict:
    from . import errant_f

    res = errant_f.score(sources, predictions, references, beta=beta, tokenize=tokenize)
    return {"score": 100.0 * res["f"], **res}


def _bleu(sources, predictions, references, **bleu_kwargs) -> dict:
    from .bleu import corpus_bleu

    return corpus_bleu(predictions, references, **bleu_kwargs)


def _formality(sources, predictions, references=None, target: int = 1, classifier=None) -> dict:
    from .formality import default_classifier, formality_accuracy

    clf = classifier or default_classifier()
    return {"score": formality_accuracy(predictions, clf, target), "target": target}


METRICS: Registry[Callable[..., dict]] = Registry("metric")
for _name, _fn in (("sari", _sari), ("m2", _m2), ("errant", _errant), ("bleu", _bleu), ("formality", _formality)):
    METRICS.add(_name, _fn)


def get_metric(name: str) -> Callable[..., dict]:
    """METRICS[name]; an unknown name raises KeyError listing the known ones."""
    return METRICS.get(name)
