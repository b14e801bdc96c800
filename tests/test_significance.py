"""Bootstrap interval and paired bootstrap p-values on cases small enough to work out by hand."""

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


def test_column_pvalues_by_hand_and_only_for_evaluated_systems():
    from rationalign.significance import column_pvalues

    cols = {"CoN": ["x", "y"], "WNC": ["z"]}
    scores = {"sft_no_rationale": {"x": 0.0, "y": 0.0, "z": 5.0}, "sft": {"x": 1.0, "y": 0.0, "z": 1.0}}
    res = column_pvalues(cols, scores, n_resamples=20000, seed=5)
    assert set(res) == {"CoN", "WNC"} and set(res["CoN"]) == {"SFT(R) vs SFT"}  # no aligned system
    con = res["CoN"]["SFT(R) vs SFT"]
    assert (con["a"], con["b"], con["n"], con["mean_a"], con["mean_b"]) == ("sft", "sft_no_rationale", 2, 0.5, 0.0)
    assert con["p"] == pytest.approx(0.25, abs=0.01)  # as in the two-sentence case above
    assert res["WNC"]["SFT(R) vs SFT"]["p"] == 1.0  # SFT(R) is worse: the wrong-way result stays visible
    assert res["WNC"]["SFT(R) vs SFT"]["p_lower"] < 0.05


def test_identical_outputs_are_significant_in_neither_direction():
    from rationalign.significance import column_pvalues

    res = column_pvalues({"AST": ["a", "b", "c"]}, {"sft": {"a": 1.0, "b": 2.0, "c": 3.0},
                                                      "aligned": {"a": 1.0, "b": 2.0, "c": 3.0}})
    cell = res["AST"]["aligned vs SFT(R)"]
    assert cell["p"] == 1.0 and cell["p_lower"] == 1.0
