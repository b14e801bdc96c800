"""Bootstrap interval and paired bootstrap p-values on cases small enough to work out by hand."""

import numpy as np
import pytest

from rationalign.metrics.stats import bootstrap_ci, paired_bootstrap


def test_bootstrap_ci_of_a_constant_is_that_constant():
    assert bootstrap_ci([1, 1, 1, 1]) == (1.0, 1.0)
    assert bootstrap_ci([0, 0, 0]) == (0.0, 0.0)


def test_bootstrap_ci_of_two_values_spans_their_resample_means():
    # Resampling [0, 1] twice gives mean 0, 0.5 or 1 with probability 1/4, 1/2, 1/4: the 2.5th and
    # 97.5th percentiles are 0 and 1, and a 40% interval is [0.5, 0.5].
    assert bootstrap_ci([0, 1], seed=1) == (0.0, 1.0)
    assert bootstrap_ci([0, 1], seed=1, level=0.4) == (0.5, 0.5)


def test_bootstrap_ci_resamples_whole_groups():
    # Two inputs, one with four right pairs, one with four wrong: every resample of inputs gives
    # accuracy 0, 0.5 or 1, so the 95% interval is [0, 1]; by pairs it would be much narrower.
    values, groups = [1, 1, 1, 1, 0, 0, 0, 0], ["a"] * 4 + ["b"] * 4
    assert bootstrap_ci(values, groups=groups) == (0.0, 1.0)
    lo, hi = bootstrap_ci(values)
    assert 0.1 < lo < 0.5 < hi < 0.9


def test_bootstrap_ci_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci([1, 0], groups=["a"])


def test_paired_bootstrap_p_value_by_hand():
    # A beats B only on sentence 0: A fails to beat B exactly when both draws pick sentence 1 (1/4).
    assert paired_bootstrap([1, 0], [0, 0], n_resamples=20000, seed=3) == pytest.approx(0.25, abs=0.01)
    assert paired_bootstrap([2, 2, 2], [1, 1, 1], seed=3) == 0.0
    assert paired_bootstrap([1, 1, 1], [2, 2, 2], seed=3) == 1.0


# ----------------------------------------------------------------------------- the paper's test


def test_sign_test_p_by_hand():
    from rationalign.significance import sign_test_p

    # P(X >= 8), X ~ Bin(10, 1/2) = (C(10,8) + C(10,9) + C(10,10)) / 2^10 = (45 + 10 + 1) / 1024
    assert sign_test_p(8, 2) == 56 / 1024
    assert sign_test_p(2, 8) == 1 - (1 + 10) / 1024  # P(X >= 2) = 1 - P(X <= 1)
    assert sign_test_p(0, 0) == 1.0  # every resample tied: nothing to conclude
    assert sign_test_p(3, 0) == 1 / 8
    with pytest.raises(ValueError):
        sign_test_p(-1, 2)


SRC = ["The cat sat on the mat because it was tired .", "He went to the big old house .",
       "It is a very long and hard way .", "She said that he was not there .",
       "The man , who was tall , left .", "We will go there tomorrow morning ."]
REFS = [["The cat sat on the mat .", "The tired cat sat on the mat ."],
        ["He went to the old house .", "He went to the house ."],
        ["It is a long way .", "It is a hard way ."],
        ["She said he was not there .", "She said he was away ."],
        ["The tall man left .", "The man left ."],
        ["We go there tomorrow .", "We will go tomorrow ."]]
A = ["The cat sat on the mat .", "He went to the house .", "It is a long and hard way .",
     "She said he was not there .", "The man left .", "We will go there tomorrow morning ."]
B = ["The cat sat on the mat because it was tired .", "He went to the big house .", "It is a long way .",
     "She said that he was not there .", "The man , who was tall , left .", "We will go tomorrow ."]


def _brute_force(preds_a, preds_b, resamples, seed):
    """The definition, spelt out: draw sentence indices, rescore each resample's texts with corpus SARI."""
    from rationalign.metrics.sari import corpus_sari

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(SRC), size=(resamples, len(SRC)))
    out = []
    for row in idx:
        src, refs = [SRC[i] for i in row], [REFS[i] for i in row]
        out.append((corpus_sari(src, [preds_a[i] for i in row], refs), corpus_sari(src, [preds_b[i] for i in row], refs)))
    return out


def test_compare_recomputes_corpus_sari_on_every_resample():
    from math import comb

    from rationalign.metrics.resample import column_stats
    from rationalign.metrics.sari import corpus_sari
    from rationalign.significance import compare

    a, b = column_stats("sari", SRC, A, REFS), column_stats("sari", SRC, B, REFS)
    assert a.score() == pytest.approx(corpus_sari(SRC, A, REFS), abs=1e-9)
    # corpus SARI is not the mean of sentence SARI: a test on sentence means would test something else
    from rationalign.metrics.sari import sentence_sari

    assert abs(a.score() - np.mean([sentence_sari(s, p, r) for s, p, r in zip(SRC, A, REFS)])) > 0.5
    res = compare(a, b, sign_resamples=40, bootstrap_resamples=60, seed=7)
    pairs = _brute_force(A, B, 60, seed=7)
    wins = sum(x > y for x, y in pairs[:40])
    losses = sum(x < y for x, y in pairs[:40])
    assert (res["wins"], res["losses"], res["ties"]) == (wins, losses, 40 - wins - losses)
    assert res["p"] == pytest.approx(sum(comb(wins + losses, k) for k in range(wins, wins + losses + 1))
                                     / 2 ** (wins + losses), abs=1e-12)
    assert res["bootstrap"]["p"] == pytest.approx(np.mean([x <= y for x, y in pairs]), abs=1e-12)
    assert res["score_a"] == pytest.approx(corpus_sari(SRC, A, REFS), abs=1e-9)
    assert res["delta"] == pytest.approx(corpus_sari(SRC, A, REFS) - corpus_sari(SRC, B, REFS), abs=1e-9)


def test_pooled_runs_average_each_resample():
    from rationalign.metrics.resample import column_stats
    from rationalign.significance import compare

    a1, a2 = column_stats("sari", SRC, A, REFS), column_stats("sari", SRC, B, REFS)
    b1 = b2 = column_stats("sari", SRC, SRC, REFS)  # copying the source
    res = compare([a1, a2], [b1, b2], sign_resamples=30, bootstrap_resamples=30, seed=1)
    pa, pb = _brute_force(A, SRC, 30, seed=1), _brute_force(B, SRC, 30, seed=1)
    pooled = [((x1 + x2) / 2, (y1 + y2) / 2) for (x1, y1), (x2, y2) in zip(pa, pb)]
    assert res["wins"] == sum(x > y for x, y in pooled) and res["losses"] == sum(x < y for x, y in pooled)
    assert res["runs"] == [2, 2]


def test_identical_outputs_are_significant_in_neither_direction():
    from rationalign.metrics.resample import column_stats
    from rationalign.significance import compare

    a, b = column_stats("sari", SRC, A, REFS), column_stats("sari", SRC, list(A), REFS)
    res = compare(a, b)
    assert (res["wins"], res["losses"], res["ties"]) == (0, 0, 100)
    assert res["p"] == 1.0 and res["p_lower"] == 1.0
    assert res["bootstrap"]["p"] == 1.0 and res["bootstrap"]["p_lower"] == 1.0


def test_a_clearly_better_system_is_significant_and_the_wrong_way_stays_visible():
    from rationalign.metrics.resample import column_stats
    from rationalign.significance import column_pvalues

    good = column_stats("sari", SRC * 5, A * 5, REFS * 5)
    copy = column_stats("sari", SRC * 5, SRC * 5, REFS * 5)
    res = column_pvalues({"sft_no_rationale": {"AST": copy}, "sft": {"AST": good},
                          "aligned_no_rationale": {"AST": copy}}, seed=3)
    assert set(res["AST"]) == {"SFT(R) vs SFT", "aligned vs SFT (no rationale)"}  # no `aligned` system
    up = res["AST"]["SFT(R) vs SFT"]
    assert (up["a"], up["b"], up["n"]) == ("sft", "sft_no_rationale", 30)
    assert up["wins"] == 100 and up["p"] == 0.5 ** 100 and up["bootstrap"]["p"] == 0.0
    tie = res["AST"]["aligned vs SFT (no rationale)"]
    assert tie["p"] == 1.0 and tie["p_lower"] == 1.0


def test_compare_refuses_mismatched_sentences():
    from rationalign.metrics.resample import column_stats
    from rationalign.significance import compare

    with pytest.raises(ValueError, match="same sentences"):
        compare(column_stats("sari", SRC, A, REFS), column_stats("sari", SRC[:3], A[:3], REFS[:3]))


# ----------------------------------------------------------------------------- per-sentence statistics


def test_column_stats_reproduce_every_metrics_corpus_score():
    """combine(sum of rows) is exactly the corpus score the report prints, for every metric."""
    from rationalign.metrics import get_metric
    from rationalign.metrics.resample import column_stats

    for metric in ("sari", "bleu"):
        st = column_stats(metric, SRC, A, REFS)
        assert st.rows.shape[0] == len(SRC)
        assert st.score() == pytest.approx(get_metric(metric)(SRC, A, REFS)["score"], abs=1e-9)
    m2 = ("S He go to school .\nA 1 2|||R:VERB:SVA|||goes|||REQUIRED|||-NONE-|||0\n\n"
          "S She like apples .\nA 1 2|||R:VERB:SVA|||likes|||REQUIRED|||-NONE-|||0\n\n"
          "S It is fine .\nA -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||0\n")
    hyps = ["He goes to school .", "She likes apple .", "It is good ."]
    st = column_stats("m2", None, hyps, m2)
    assert st.score() == pytest.approx(get_metric("m2")(None, hyps, m2)["score"], abs=1e-9)
    assert st.rows.tolist() == [[1, 1, 1], [1, 2, 1], [0, 1, 0]]

    class Clf:
        def predict(self, texts):
            return [int(t.endswith(".")) for t in texts]

    st = column_stats("formality", None, ["a.", "b", "c."], None, classifier=Clf())
    assert st.score() == pytest.approx(200 / 3)


# ----------------------------------------------------------------------------- systems without rationale


def test_aligned_no_rationale_resolves_to_the_no_rationale_branch_and_keys_evaluate(tmp_path):
    """aligned_no_rationale is the align stage under rationale.position=none (its own SFT, samples and D_H,
    the same reward model), and evaluate's key follows it even when no system of this branch is also
    evaluated with rationale."""
    from pathlib import Path

    from rationalign.components import import_components
    from rationalign.runner import compose
    from rationalign.stages.base import Context
    from rationalign.stages.common import no_rationale_ctx

    import_components()
    from rationalign.stages.evaluate import describe_system

    base = ["model=tiny", f"paths.root={tmp_path}", "stage=evaluate", "evaluate.systems=[sft_no_rationale,aligned_no_rationale]"]
    cfg = compose(base)
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    sub = no_rationale_ctx(ctx)
    assert sub.cfg.rationale.position == "none" and ctx.cfg.rationale.position == "after"
    assert sub.key("align") != ctx.key("align") and sub.key("reward") == ctx.key("reward")  # one reward model
    assert "rationale.position=none" in describe_system(cfg, "aligned_no_rationale")
    key = ctx.key("evaluate")
    for change in ("loss.beta=0.5", "pairs.keep_fraction=0.3", "sample.m=3"):  # only the aligned branch reads these
        c2 = compose([*base, change])
        assert Context(cfg=c2, workdir=Path(c2.paths.workdir)).key("evaluate") != key, change
