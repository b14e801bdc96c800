"""The numbers a sweep compares: report metrics under one set of names (result.json, the wandb summary,
the sweep table), ranked only when they are quality measures and in the right direction, an unknown
`--metric` refused with the names that exist, and docs that only name metrics that exist."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rationalign.job_metrics import job_metrics
from rationalign.report import all_average
from rationalign.report_metrics import report_metrics
from rationalign.report_sweep import MetricError, build_table, default_direction

REPO = Path(__file__).resolve().parent.parent


def evaluate_manifest(shift: float = 0.0) -> dict:
    """Shaped like a real stage=evaluate manifest (experiment=smoke, evaluate.analyses=true)."""
    def cell(score, metric="sari", **kw):
        return {"score": score + shift, "n": 2, "malformed": 1, "metric": metric, **kw}

    return {
        "stage": "evaluate", "key": "k",
        "metrics": {
            "aligned": {"CoN": cell(10.0, "m2"), "AST": cell(30.0),
                        "GYAFC-EM": cell(40.0, "bleu", formality=0.5, signature="nrefs:1|case:mixed")},
            "sft": {"CoN": cell(5.0, "m2"), "AST": cell(20.0)},
        },
        "analyses": {
            "reward_model": {"heldout_accuracy": 0.75, "heldout_accuracy_ci": [0.5, 1.0], "heldout_pairs": 8,
                             "systems": {"aligned": {"mean_reward": 0.3 + shift, "mean_metric": 21.0},
                                         "sft": {"mean_reward": -0.1, "mean_metric": None}}},
            "faithfulness": {"aligned": {"overall": {"coverage": 0.5, "precision": None, "edits": 4},
                                         "per_task": {}},
                             "sft": None},
        },
    }


def pipeline_metrics(shift: float = 0.0) -> dict:
    align = {"metrics": {"train_loss": 1.5 - shift, "seconds": 3.0, "steps": 2, "loss_first": None,
                         "hparams": {"beta": 0.01, "lam": 0.8 + shift}, "loss": "mpo"}}
    found = {"pipeline": ({"metrics": {}}, Path("p")), "align": (align, Path("a")),
             "evaluate": (evaluate_manifest(shift), Path("e"))}
    return job_metrics("pipeline", found, {"stage": "pipeline", "metrics": {}})


def test_report_metrics_names_and_values():
    m = report_metrics(evaluate_manifest())
    assert m["aligned.CoN.score"] == 10.0 and m["aligned.GYAFC-EM.formality"] == 0.5
    assert m["aligned.ALL"] == pytest.approx(all_average(evaluate_manifest()["metrics"]["aligned"])) == 80 / 3
    assert m["sft.ALL"] == 12.5
    assert m["reward_model.heldout_accuracy"] == 0.75 and m["reward_model.heldout_pairs"] == 8
    assert m["aligned.mean_reward"] == 0.3 and m["sft.mean_reward"] == -0.1
    assert m["aligned.faithfulness.coverage"] == 0.5
    # N.A. stays out (never a 0 that would rank); strings (metric name, sacrebleu signature) too
    assert "sft.mean_metric" not in m and "aligned.faithfulness.precision" not in m
    assert not any(k.startswith("sft.faithfulness") for k in m)
    assert all(isinstance(v, (int, float)) for v in m.values())
    assert report_metrics(evaluate_manifest(), "evaluate.")["evaluate.aligned.ALL"] == m["aligned.ALL"]


def test_a_pipeline_job_carries_the_report_under_the_evaluate_prefix():
    m = pipeline_metrics()
    for name in ("evaluate.aligned.ALL", "evaluate.aligned.CoN.score", "evaluate.reward_model.heldout_accuracy",
                 "evaluate.aligned.mean_reward", "evaluate.aligned.faithfulness.coverage", "align.train_loss"):
        assert name in m, name


@pytest.mark.parametrize("name,direction", [
    ("evaluate.aligned.CoN.score", "max"), ("evaluate.aligned.GYAFC-EM.formality", "max"),
    ("evaluate.aligned.ALL", "max"), ("aligned.ALL", "max"), ("evaluate.reward_model.heldout_accuracy", "max"),
    ("heldout_accuracy", "max"), ("evaluate.aligned.mean_reward", "max"),
    ("evaluate.aligned.faithfulness.coverage", "max"), ("evaluate.aligned.faithfulness.precision", "max"),
    ("train_loss", "min"), ("align.train_loss", "min"),
    # bookkeeping: counts, sizes, times, echoed hyper-parameters
    ("evaluate.aligned.CoN.n", None), ("evaluate.aligned.CoN.malformed", None), ("seconds", None),
    ("align.seconds", None), ("align.steps", None), ("evaluate.reward_model.heldout_pairs", None),
    ("align.hparams.beta", None), ("align.loss_first", None), ("heldout_accuracy_before", None),
    # anchored: a known word inside another name is not that metric
    ("x_train_loss", None), ("train_loss_count", None), ("evaluate.aligned.ALL_columns", None),
    ("evaluate.gec.sari", None), ("evaluate.aligned.CoN.score_n", None),
])
def test_default_direction(name, direction):
    assert default_direction(name) == direction


def _sweep(tmp_path: Path, n: int = 3) -> Path:
    for i in range(n):
        d = tmp_path / str(i)
        d.mkdir(parents=True)
        d.joinpath("result.json").write_text(json.dumps({
            "status": "ok", "job": {"num": i}, "overrides": {"loss.lam": str(0.2 * (i + 1))},
            "override_list": [f"loss.lam={0.2 * (i + 1)}"], "metrics": pipeline_metrics(shift=float(i) * (i - 1))}))
    return tmp_path


def test_the_table_ranks_report_metrics_only(tmp_path):
    t = build_table(_sweep(tmp_path))  # shifts 0, 0, 2: job 2 best on scores and loss
    assert t.ranked["evaluate.aligned.ALL"] == "max" and t.best["evaluate.aligned.ALL"] == 2
    assert t.ranked["align.train_loss"] == "min" and t.best["align.train_loss"] == 2
    assert t.ranked["evaluate.aligned.mean_reward"] == "max"
    assert t.ranked["evaluate.reward_model.heldout_accuracy"] == "max"
    ranked_bookkeeping = [m for m in t.ranked if m.endswith((".n", ".malformed", "seconds", "steps", "_pairs"))]
    assert ranked_bookkeeping == []
    assert "evaluate.aligned.CoN.n" in t.metrics  # shown, not ranked
    assert not [c for c in t.metrics if "hparams" in c]  # the align manifest's echo of loss.*: not a column


def test_an_unknown_metric_is_an_error_listing_the_known_ones(tmp_path):
    sweep = _sweep(tmp_path)
    with pytest.raises(MetricError) as e:
        build_table(sweep, metrics=["evaluate.gec.sari:max"])
    msg = str(e.value)
    assert "unknown metric 'evaluate.gec.sari'" in msg and "evaluate.aligned.ALL" in msg
    assert "evaluate.aligned.CoN.n" in msg.split("not ranked by default")[1]
    with pytest.raises(MetricError, match="say which way is better"):
        build_table(sweep, metrics=["align.seconds"])  # bookkeeping: only with a direction
    assert build_table(sweep, metrics=["align.seconds:min"]).ranked == {"align.seconds": "min"}
    assert build_table(sweep, metrics=["evaluate.aligned.ALL"]).ranked == {"evaluate.aligned.ALL": "max"}


def test_aggregate_cli_ranks_a_printed_name_and_refuses_an_unknown_one(tmp_path):
    sweep = _sweep(tmp_path / "s")
    run = lambda *a: subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep),
                                     "--no-plots", "--out", str(tmp_path / "out"), *a],
                                    capture_output=True, text=True, check=False, cwd=REPO)
    ok = run("--metric", "evaluate.aligned.ALL")
    assert ok.returncode == 0, ok.stderr
    assert "Best (**bold**) per metric: evaluate.aligned.ALL (higher is better)" in ok.stdout
    bad = run("--metric", "evaluate.gec.sari")
    assert bad.returncode == 2 and "unknown metric 'evaluate.gec.sari'" in bad.stderr
    assert "evaluate.aligned.ALL" in bad.stderr and "Traceback" not in bad.stderr


def test_docs_name_metrics_that_exist():
    """Every metric a doc, preset comment or usage line passes to --metric or objective= is one a
    pipeline job really has (the names rationalign.job_metrics writes)."""
    names = set(pipeline_metrics())
    files = [*REPO.glob("docs/*.md"), REPO / "README.md", REPO / "experiments" / "aggregate.py",
             *REPO.glob("conf/**/*.yaml")]
    found = []
    for f in files:
        text = f.read_text()
        found += [(f.name, m) for m in re.findall(r"--metric[ =]([a-z][A-Za-z0-9_.:\-]*)", text)]
        found += [(f.name, m) for m in re.findall(r"objective=metrics\.([A-Za-z0-9_.:\-<>]+)", text)]
    assert found, "no metric named in the docs"
    wrong = [(f, m) for f, m in found if m.split(":")[0] not in names]
    assert wrong == []
