"""SARI against EASSE's vectors (when shared/vectors exists) and small hand-checked cases."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rationalign.metrics import get_metric, sari

REPO = Path(__file__).resolve().parent.parent


def _vectors(name: str):
    root = Path(os.environ.get("RATIONALIGN_VECTORS") or REPO.parent / "shared" / "vectors")
    f = root / name
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else None


VEC = _vectors("sari_vectors.json")
NO_VEC = "shared/vectors/sari_vectors.json not found (set RATIONALIGN_VECTORS); reference vectors skipped"
SETTINGS = {"default": {}, "lowercase_false": {"lowercase": False}, "paper_version": {"paper_version": True}}


def _check(srcs, hyps, refs, expected):
    for setting, kw in SETTINGS.items():
        exp = expected[setting]
        ops = sari.corpus_sari_operations(srcs, hyps, refs, **kw)
        assert sari.corpus_sari(srcs, hyps, refs, **kw) == pytest.approx(exp["sari"], abs=1e-9), setting
        assert ops["add"] == pytest.approx(exp["add"], abs=1e-9), setting
        assert ops["keep"] == pytest.approx(exp["keep"], abs=1e-9), setting
        assert ops["del_"] == pytest.approx(exp["del"], abs=1e-9), setting


@pytest.mark.skipif(VEC is None, reason=NO_VEC)
@pytest.mark.parametrize("case", VEC["cases"] if VEC else [], ids=lambda c: c["id"])
def test_sari_case(case):
    _check([case["source"]], [case["hypothesis"]], [case["references"]], case["expected"])
    stats = sari.corpus_ngram_stats([case["source"]], [case["hypothesis"]], [case["references"]])
    assert stats == case["ngram_stats_default"]


@pytest.mark.skipif(VEC is None, reason=NO_VEC)
@pytest.mark.parametrize("corpus", VEC["corpora"] if VEC else [], ids=lambda c: c["id"])
def test_sari_corpus(corpus):
    _check(corpus["sources"], corpus["hypotheses"], corpus["references"], corpus["expected"])
    mean = sum(sari.corpus_sari([s], [h], [r]) for s, h, r in
               zip(corpus["sources"], corpus["hypotheses"], corpus["references"])) / len(corpus["sources"])
    assert mean == pytest.approx(corpus["mean_of_sentence_sari_default_NOT_corpus_sari"], abs=1e-9)


# ---- hand cases (no shared/ needed)

def test_identity_hand_computed():
    # hyp == source == ref: ADD has no n-grams (F=0), KEEP is perfect (100), DEL has nothing to
    # delete (P=R=0 -> F=0): SARI = 100/3.
    s = "the cat sat on the mat ."
    ops = sari.corpus_sari_operations([s], [s], [[s]])
    assert ops == {"add": 0.0, "keep": 100.0, "del_": 0.0}
    assert sari.corpus_sari([s], [s], [[s]]) == pytest.approx(100 / 3)


def test_perfect_deletion_hand_computed():
    # source "a b c", ref and hyp "a b": keep all correct (a, b, "a b"), delete "c", "b c", "a b c"
    src, out = "a b c", "a b"
    ops = sari.corpus_sari_operations([src], [out], [[out]])
    # KEEP: orders 1 and 2 perfect, orders 3-4 empty -> mean F1 = 0.5; DEL: orders 1-3 perfect -> 0.75
    assert ops["keep"] == pytest.approx(50.0)
    assert ops["del_"] == pytest.approx(75.0)
    assert ops["add"] == 0.0


def test_lowercase_and_tokenisation_matter():
    src, hyp, ref = "Hello, World", "hello, world", "hello, world"
    # lowercased, the case-only rewrite is the same as copying the (lowercased) source
    assert sari.corpus_sari([src], [hyp], [[ref]]) == sari.corpus_sari([hyp], [hyp], [[ref]])
    assert sari.corpus_sari([src], [hyp], [[ref]], lowercase=False) != sari.corpus_sari([src], [hyp], [[ref]])
    # 13a splits the comma off, so "World," and "World" share the unigram "world"
    st = sari.corpus_ngram_stats(["World,"], ["World"], [["World"]])
    assert st["keep_sys_correct"][0] == 1 and st["del_sys_correct"][0] == 1


def test_corpus_is_not_mean_of_sentences():
    srcs, hyps = ["a b c d", "x y"], ["a b", "x y z"]
    refs = [["a b c"], ["x y z"]]
    corpus = sari.corpus_sari(srcs, hyps, refs)
    mean = sum(sari.corpus_sari([s], [h], [r]) for s, h, r in zip(srcs, hyps, refs)) / 2
    assert corpus != pytest.approx(mean)


def test_errors():
    with pytest.raises(ValueError, match="same number of references"):
        sari.corpus_sari(["a", "b"], ["a", "b"], [["a"], ["b", "c"]])
    with pytest.raises(ValueError, match="length mismatch"):
        sari.corpus_sari(["a", "b"], ["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="list of references"):
        sari.corpus_sari(["a"], ["a"], ["a"])


def test_registry_uniform_call():
    res = get_metric("sari")(["a b c"], ["a b"], [["a b"]])
    assert res["score"] == pytest.approx(sari.corpus_sari(["a b c"], ["a b"], [["a b"]]))
    assert set(res) >= {"score", "add", "keep", "del_"}
    with pytest.raises(KeyError, match="known"):
        get_metric("rouge")
