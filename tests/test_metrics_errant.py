"""ERRANT F0.5: the compare step on the reference M2 (no spaCy), and the full path with spaCy."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rationalign.metrics import errant_f, get_metric
from rationalign.nlp_models import spacy_model_name

REPO = Path(__file__).resolve().parent.parent
VEC_FILE = Path(os.environ.get("RATIONALIGN_VECTORS") or REPO.parent / "shared" / "vectors") / "errant_vectors.json"
VEC = json.loads(VEC_FILE.read_text(encoding="utf-8")) if VEC_FILE.exists() else None
NO_VEC = "shared/vectors/errant_vectors.json not found (set RATIONALIGN_VECTORS); reference vectors skipped"


def _has_spacy_model() -> bool:
    try:
        import errant  # noqa: F401
        import spacy.util

        return spacy.util.is_package(spacy_model_name())
    except ImportError:
        return False


needs_spacy = pytest.mark.skipif(not _has_spacy_model(), reason="errant or its spaCy model not installed")


def _rounded(r) -> dict:
    return {"tp": r.tp, "fp": r.fp, "fn": r.fn, "precision": round(r.precision, 4),
            "recall": round(r.recall, 4), "f0.5": round(r.f, 4)}


@pytest.mark.skipif(VEC is None, reason=NO_VEC)
@pytest.mark.parametrize("case", VEC["cases"] if VEC else [], ids=lambda c: c["id"])
def test_compare_step_on_reference_m2(case):
    assert _rounded(errant_f.compare_m2(case["hyp_m2_errant"], case["ref_m2_errant"])) == case["expected"]


@needs_spacy
@pytest.mark.skipif(VEC is None, reason=NO_VEC)
def test_full_path_with_spacy_matches_vectors():
    cases = VEC["cases"]
    srcs = [c["source"] for c in cases]
    # our annotation reproduces errant_parallel's M2 exactly ...
    hyp_m2 = errant_f.annotate_m2(srcs, [[c["hypothesis"]] for c in cases])
    assert [b.strip() for b in hyp_m2.split("\n\n")] == [c["hyp_m2_errant"].strip() for c in cases]
    ref_m2 = errant_f.annotate_m2(srcs, [[c["reference"]] for c in cases])
    assert [b.strip() for b in ref_m2.split("\n\n")] == [c["ref_m2_errant"].strip() for c in cases]
    # ... and the one-sentence scores equal errant_compare's
    for c in cases:
        res = errant_f.evaluate([c["source"]], [c["hypothesis"]], [[c["reference"]]])
        assert _rounded(res) == c["expected"], c["id"]
    # corpus: counts add up over sentences, each sentence having a single reference
    corpus = errant_f.score(srcs, [c["hypothesis"] for c in cases], [[c["reference"]] for c in cases])
    assert corpus["tp"] == sum(c["expected"]["tp"] for c in cases)
    assert corpus["fp"] == sum(c["expected"]["fp"] for c in cases)


# ---- hand cases for the compare step (no spaCy)

def _m2(src, *edits):
    return "S " + src + "\n" + "".join(f"A {e}\n" for e in edits)


def test_span_correction_and_ignored_edits():
    hyp = _m2("a b c", "0 1|||R:X|||A|||REQUIRED|||-NONE-|||0", "2 3|||UNK|||c|||REQUIRED|||-NONE-|||0",
              "1 2|||R:Y|||B|||REQUIRED|||-NONE-|||0")
    ref = _m2("a b c", "0 1|||R:OTHER|||A|||REQUIRED|||-NONE-|||0", "2 3|||R:Z|||C|||REQUIRED|||-NONE-|||0")
    r = errant_f.compare_m2(hyp, ref)
    assert (r.tp, r.fp, r.fn) == (1, 1, 1)      # type ignored for TP; UNK not counted as FP
    noop = _m2("a b c", "-1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||0")
    r = errant_f.compare_m2(noop, noop)
    assert (r.tp, r.fp, r.fn, r.precision, r.recall, r.f) == (0, 0, 0, 1.0, 1.0, 1.0)


def test_best_reference_by_cumulative_f_then_tp():
    src = "a b c d"
    hyp = _m2(src, "0 1|||R|||A|||REQUIRED|||-NONE-|||0", "1 2|||R|||B|||REQUIRED|||-NONE-|||0")
    ref = _m2(src, "0 1|||R|||A|||REQUIRED|||-NONE-|||0",                       # coder 0: 1 TP, 1 FP
              "0 1|||R|||A|||REQUIRED|||-NONE-|||1", "1 2|||R|||B|||REQUIRED|||-NONE-|||1",
              "3 4|||R|||D|||REQUIRED|||-NONE-|||1")                            # coder 1: 2 TP, 1 FN
    r = errant_f.compare_m2(hyp, ref)
    assert (r.tp, r.fp, r.fn) == (2, 0, 1)
    # equal F0.5 after rounding (1/1/0 and 2/0/8 both give 0.5556): more TP wins, even when later
    src = " ".join(f"w{i}" for i in range(12))
    extra = [f"{i} {i + 1}|||R|||X{i}|||REQUIRED|||-NONE-|||1" for i in range(2, 10)]
    ref2 = _m2(src, "0 1|||R|||A|||REQUIRED|||-NONE-|||0",
               "0 1|||R|||A|||REQUIRED|||-NONE-|||1", "1 2|||R|||B|||REQUIRED|||-NONE-|||1", *extra)
    hyp2 = _m2(src, "0 1|||R|||A|||REQUIRED|||-NONE-|||0", "1 2|||R|||B|||REQUIRED|||-NONE-|||0")
    r = errant_f.compare_m2(hyp2, ref2)
    assert (r.tp, r.fp, r.fn) == (2, 0, 8)


def test_compare_errors():
    with pytest.raises(ValueError, match="1 hypothesis vs 2 reference"):
        errant_f.compare_m2(_m2("a"), _m2("a") + "\n" + _m2("b"))
    with pytest.raises(ValueError, match="different source"):
        errant_f.compare_m2(_m2("a"), _m2("b"))


@needs_spacy
def test_registry_and_reference_forms():
    src = ["She go to school every days ."]
    hyp = ["She goes to school every days ."]
    refs = [["She goes to school every day ."]]
    res = get_metric("errant")(src, hyp, refs)
    assert (res["tp"], res["fp"], res["fn"]) == (1, 0, 1)
    assert res["score"] == pytest.approx(100 * res["f"])
    ref_m2 = errant_f.annotate_m2(src, refs)
    assert errant_f.score(None, hyp, ref_m2) == errant_f.score(src, hyp, refs)
    with pytest.raises(ValueError, match="list of references"):
        errant_f.score(src, hyp, ["She goes to school every day ."])
    # M2 from references through errant, then MaxMatch
    m2res = get_metric("m2")(src, hyp, refs)
    assert (m2res["correct"], m2res["gold"]) == (1, 2)
