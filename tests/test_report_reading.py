"""Report keys outside checks read, the reward-model analysis (base apart, Pearson per task), and the
"What this run shows" paragraph reading the numbers the right way round."""

import json

import pytest

from rationalign.data.records import Record
from rationalign.report import write_report
from rationalign.report_reading import comparison_sentence, reward_model_sentence, what_this_run_shows
from rationalign.runner import compose


def _rm(acc, lo, hi, n=60, k=20):
    return {"heldout_accuracy": acc, "heldout_accuracy_ci": [lo, hi], "heldout_pairs": n, "heldout_inputs": k}


def test_reward_model_sentence_says_above_inconclusive_or_wrong_way():
    assert "better than chance" in reward_model_sentence(_rm(0.75, 0.62, 0.86))
    s = reward_model_sentence(_rm(0.5625, 0.41, 0.733, n=32, k=9))
    assert "56.2% of the time (95% CI 41.0% to 73.3%)" in s and "inconclusive" in s and "better" not in s
    s = reward_model_sentence(_rm(0.3, 0.2, 0.45))
    assert "whole interval is below 0.5" in s and "wrong way" in s
    assert "unknown" in reward_model_sentence({"heldout_pairs": 0})
    assert "60 K-fold pairs (pairs whose metric scores differ by more than 5) from 20" in reward_model_sentence(
        {**_rm(0.75, 0.62, 0.86), "heldout_min_metric_gap": 5.0})


def test_comparison_sentence_keeps_wrong_way_results():
    cells = {"CoN": {"a": "aligned", "b": "sft", "score_a": 30.0, "score_b": 20.0, "p": 0.01, "p_lower": 0.99,
                     "n": 40},
             "WNC": {"a": "aligned", "b": "sft", "score_a": 10.0, "score_b": 40.0, "p": 0.99, "p_lower": 0.01,
                     "n": 40},
             "AST": {"a": "aligned", "b": "sft", "score_a": 33.0, "score_b": 32.0, "p": 0.40, "p_lower": 0.62,
                     "n": 40},
             # identical outputs: both one-tailed p-values are 1, neither direction is significant
             "STS": {"a": "aligned", "b": "sft", "score_a": 50.0, "score_b": 50.0, "p": 1.0, "p_lower": 1.0, "n": 40}}
    s = comparison_sentence("aligned vs SFT(R)", cells)
    assert s.startswith("The aligned model against SFT(R) (aligned vs SFT(R); corpus metric, sign test with bootstrap "
                        "resampling): higher on 2 of 4 columns (CoN, AST)")
    assert "lower on 1 (WNC)" in s
    assert "significantly higher (one-tailed p < 0.05) on CoN" in s
    assert "significantly lower (one-tailed p < 0.05 the other way) on WNC." in s  # not STS: a tie
    quiet = comparison_sentence("x", {"CoN": {**cells["AST"]}})
    assert "no column differs significantly" in quiet


def test_report_json_has_the_keys_outside_checks_read(tmp_path):
    results = {s: {"CoN": {"score": v, "n": 4}} for s, v in (("base", 1.0), ("sft", 3.0), ("aligned", 4.0))}
    extra = {"systems": {"base": "zero-shot", "sft": "SFT, rationale after", "aligned": "MPO"},
             "reward_model": {**_rm(0.72, 0.6, 0.83), "systems": {
                 "base": {"mean_reward": -1.0, "mean_metric": 1.0}, "sft": {"mean_reward": 0.2, "mean_metric": 3.0},
                 "aligned": {"mean_reward": 0.5, "mean_metric": 4.0}}},
             "significance": {"CoN": {"aligned vs SFT(R)": {
                 "a": "aligned", "b": "sft", "score_a": 4.0, "score_b": 3.0, "p": 0.2, "p_lower": 0.9, "n": 4,
                 "wins": 55, "losses": 40, "ties": 5, "resamples": 100,
                 "bootstrap": {"resamples": 1000, "p": 0.41, "p_lower": 0.6}}}}}
    md = write_report(tmp_path, "report", results, extra)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["reward_model"]["heldout_accuracy"] == 0.72 and rep["reward_model"]["heldout_accuracy_ci"] == [0.6, 0.83]
    assert rep["reward_model"]["heldout_pairs"] == 60
    assert {s: v["mean_reward"] for s, v in rep["systems"].items()} == {"base": -1.0, "sft": 0.2, "aligned": 0.5}
    assert "### What this run shows" in md and "mean reward of 0.500, higher than SFT(R)'s 0.200" in md
    assert ("| CoN | 4.00 vs 3.00: sign test p=0.2 (55 wins, 40 losses, 5 ties), bootstrap p=0.41; p_lower=0.9 (n=4) |"
            in md)
    assert "72.0% (95% CI 60.0% to 83.0%; 60 K-fold pairs from 20 inputs" in md


def test_what_this_run_shows_reads_a_worse_aligned_model_as_worse():
    summary = {"reward_model": _rm(0.45, 0.3, 0.6),
               "systems": {"sft": {"mean_reward": 0.4}, "aligned": {"mean_reward": 0.1}}}
    text = what_this_run_shows([{"system": "sft", "ALL": 20.0}, {"system": "aligned", "ALL": 18.0}], summary)
    assert "inconclusive" in text and "lower than SFT(R)'s 0.400" in text and "did not move" in text
    assert "SFT(R) 20.0, the aligned model 18.0" in text


class _LenScorer:
    """Reward = length of the suggestion, so the analysis can be worked out by hand."""

    def score(self, items):
        return [float(len(s)) for *_, s in items]


def test_reward_analysis_leaves_base_out_and_reports_pearson_per_task(tmp_path, monkeypatch):
    from rationalign.stages.evaluate import reward_model_analysis
    from rationalign.training import reward as R

    monkeypatch.setattr(R.RewardScorer, "load", classmethod(lambda cls, *a, **k: _LenScorer()))
    records = [Record(id=f"{t}{i}", task=t, instruction="", source="s", target="t") for t in ("gec", "fluency")
               for i in range(3)]
    sugg = {"base": "a very long zero-shot answer", "sft": "ab", "aligned": "abcd"}
    preds = {s: {"gec": [{"id": r.id, "suggestion": x + r.id} for r in records]} for s, x in sugg.items()}
    # Metric: aligned beats sft on gec (agrees with the longer = higher-reward suggestion), loses on fluency.
    metric = {"base": {r.id: 0.0 for r in records},
              "sft": {r.id: 10.0 + i for i, r in enumerate(records)},
              "aligned": {r.id: (20.0 + i if r.task == "gec" else 1.0 + i) for i, r in enumerate(records)}}
    (tmp_path / "reward" / "rm").mkdir(parents=True)

    class Ctx:
        cfg = compose(["task=all"])

        def stage_dir(self, name):
            return tmp_path / name

    rm = reward_model_analysis(Ctx(), records, preds, metric)
    t = rm["test_outputs"]
    assert t["systems"] == ["sft", "aligned"] and t["points"] == 12  # base left out
    assert (t["inputs"], t["ties"], t["agreement"]) == (6, 0, 0.5)
    assert set(t["pearson_per_task"]) == {"gec", "fluency"}
    assert t["pearson_per_task"]["fluency"] < 0 < t["pearson_per_task"]["gec"]
    assert t["pearson_mean"] == pytest.approx(sum(t["pearson_per_task"].values()) / 2)
    assert rm["systems"]["base"]["mean_reward"] == pytest.approx(len(sugg["base"]) + 6)  # ids: 4 chars (gec0) and 8 (fluency0)
    assert rm["systems"]["aligned"]["mean_reward"] > rm["systems"]["sft"]["mean_reward"]
    assert rm["heldout_pairs"] == 0 and rm["heldout_accuracy"] is None  # no reward manifest here
