"""sentence_score (K-fold RM pairs, RM analyses) per task metric, against values worked out by hand
rather than against the metric function it calls (issue 13)."""

from __future__ import annotations

import pytest

from rationalign.data.records import Record
from rationalign.runner import compose
from rationalign.scoring import sentence_score


@pytest.fixture(scope="module")
def specs():
    return compose(["task=all"]).task.specs


def rec(task, source, target=None, **kw):
    return Record(id="x", task=task, instruction="Fix:", source=source, target=target, **kw)


# SARI, one reference. Source "w1 .. w5 x", reference "w1 .. w5 y".
SRC, REF = "aa bb cc dd ee xx", "aa bb cc dd ee yy"


def test_sari_prediction_equal_to_the_reference_is_100(specs):
    # every n-gram to add (with yy), keep (aa..ee) and delete (with xx) is handled: P = R = 1 for all
    assert sentence_score(specs["fluency"], rec("fluency", SRC, REF), REF) == pytest.approx(100.0)


def test_sari_unchanged_source_scores_only_on_keep(specs):
    # ADD 0 (nothing added), DEL 0 (nothing deleted). KEEP per order n = 1..4: P = (6-n)/(7-n) (the
    # n-grams without xx over all source n-grams), R = 1, F1 = 2P/(P+1): 10/11, 8/9, 6/7, 4/5.
    keep = (10 / 11 + 8 / 9 + 6 / 7 + 4 / 5) / 4
    assert sentence_score(specs["fluency"], rec("fluency", SRC, REF), SRC) == pytest.approx(100 * keep / 3)


def test_sari_uses_every_reference(specs):
    r = rec("simplification", SRC, references=[REF, SRC])
    one = sentence_score(specs["simplification"], rec("simplification", SRC, REF), REF)
    assert sentence_score(specs["simplification"], r, REF) < one


def test_m2_from_plain_gold_counts_edits(specs):
    src = "He go to school and she like apples ."
    gold = "He goes to school and she likes apples ."
    r = rec("gec", src, gold)
    assert sentence_score(specs["gec"], r, gold) == pytest.approx(100.0)
    assert sentence_score(specs["gec"], r, src) == 0.0  # no edit proposed, two missed
    # one of the two edits: P = 1, R = 1/2, F0.5 = 1.25 * 0.5 / (0.25 + 0.5)
    half = "He goes to school and she like apples ."
    assert sentence_score(specs["gec"], r, half) == pytest.approx(100 * 1.25 * 0.5 / 0.75)
    # one right, one wrong edit: P = 1/2, R = 1/2, F = 1/2
    wrong = "He goes to school and she liked apples ."
    assert sentence_score(specs["gec"], r, wrong) == pytest.approx(50.0)


def test_m2_from_the_records_gold_m2(specs):
    m2 = "S He go to school .\nA 1 2|||R:VERB:SVA|||goes|||REQUIRED|||-NONE-|||0\n"
    # the target text disagrees with the M2: the M2 is what is scored against
    r = rec("gec", "He go to school .", "He went to school .", meta={"m2": m2})
    assert sentence_score(specs["gec"], r, "He goes to school .") == pytest.approx(100.0)
    assert sentence_score(specs["gec"], r, "He went to school .") == 0.0
    only_m2 = rec("gec", "He go to school .", None, meta={"m2": m2})
    assert sentence_score(specs["gec"], only_m2, "He goes to school .") == pytest.approx(100.0)


def test_formality_ranks_by_bleu_to_the_gold(specs):
    gold = "I will see you at the meeting tomorrow morning ."
    r = rec("formality", "gonna see u at the meeting tmrw", gold)
    assert sentence_score(specs["formality"], r, gold) == pytest.approx(100.0)
    assert sentence_score(specs["formality"], r, "zz qq vv") == pytest.approx(0.0)
    # 9 of 10 unigrams, 7/9 bigrams ... : strictly between
    near = sentence_score(specs["formality"], r, "I will see you at the meeting tomorrow evening .")
    assert 0.0 < near < 100.0


def test_no_gold_is_an_error_and_bleu_to_the_gold(specs):
    with pytest.raises(ValueError, match="record x: no gold"):
        sentence_score(specs["fluency"], rec("fluency", "a b"), "a b")
    assert sentence_score(specs["formality"], rec("formality", "u", "You are here ."), "You are here .") == \
        pytest.approx(100.0)
    assert sentence_score(specs["fluency"], rec("fluency", SRC, REF), SRC) == \
        pytest.approx(100 * (10 / 11 + 8 / 9 + 6 / 7 + 4 / 5) / 12)


def test_a_formality_metric_spec_ranks_by_bleu_not_the_classifier():
    """A spec whose primary metric is the formality classifier (plain dict, as a user config may
    give) is ranked by BLEU to the gold: the classifier's 0/100 per sentence cannot rank samples."""
    gold = "I will see you at the meeting tomorrow morning ."
    r = rec("formality", "gonna see u at the meeting tmrw", gold)
    near = "I will see you at the meeting tomorrow evening ."
    by_formality = sentence_score({"metric": "formality"}, r, near)
    assert 0.0 < by_formality < 100.0  # a classifier would say 0 or 100
    assert by_formality == pytest.approx(sentence_score({"metric": "bleu"}, r, near))
    assert sentence_score({"metric": "formality"}, r, gold) == pytest.approx(100.0)
    assert sentence_score({"metric": "sari"}, rec("fluency", SRC, REF), REF) == pytest.approx(100.0)
