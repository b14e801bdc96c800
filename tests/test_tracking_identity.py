"""Runs that compare in wandb: each sweep job's run is named by its swept overrides, grouped by its
sweep, tagged with the loss hyper-parameters, and holds the final report in its summary. Checked on
the offline run's own transaction log (rationalign.wandb_offline), i.e. what `wandb sync` would send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.run_identity import MAX_TAG, loss_tags, run_name, swept_keys
from rationalign.runner import compose
from rationalign.wandb_offline import read_offline_run, records

REPO = Path(__file__).resolve().parent.parent


def _multirun_yaml(d: Path, task: list[str], params: dict | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": task}, "sweeper": {"params": params}}}),
                   d / "multirun.yaml")
    return d


def test_swept_keys_follow_hydra_basic_sweeper(tmp_path):
    d = _multirun_yaml(tmp_path, ["model=tiny", "loss.lam=0.4,0.8", "loss=mpo", "loss.beta=range(1,3)",
                                  "+extra=a,b"], {"loss": "mpo,dpo", "seed": "1,2"})
    # the preset's loss grid is fixed by the command line's loss=mpo; range() and + keys are sweeps too
    assert swept_keys(d) == ["seed", "loss.lam", "loss.beta", "extra"]
    assert swept_keys(tmp_path / "nowhere") is None and swept_keys(None) is None
    # Optuna's continuous ranges cannot be listed, but are swept
    assert swept_keys(_multirun_yaml(tmp_path / "optuna", ["model=tiny"], {"loss.lam": "interval(0.1, 1.0)"})) == \
        ["loss.lam"]


def test_run_name_from_the_swept_overrides():
    cfg = compose(["model=tiny"])
    job = ["model=tiny", "loss.lam=0.4", "loss.beta=0.01", "sft.train.lr=1e-4", "align.train.lr=2e-5"]
    assert run_name(cfg, job, ["loss.lam", "loss.beta"]) == "lam=0.4 beta=0.01"
    # two swept keys ending alike keep their full names
    assert run_name(cfg, job, ["sft.train.lr", "align.train.lr", "loss.lam"]) == \
        "sft.train.lr=1e-4 align.train.lr=2e-5 lam=0.4"
    assert run_name(cfg, job, None) == "model=tiny lam=0.4 beta=0.01 sft.train.lr=1e-4 align.train.lr=2e-5"
    assert run_name(cfg, ["model=tiny"], []) == "sft-mpo"  # nothing swept: the single-run name


def test_loss_tags_are_the_scalar_options_and_fit_wandb():
    cfg = compose(["model=tiny", "loss=mpo", "loss.lam=0.4"])
    tags = loss_tags(cfg)
    assert {"loss.lam=0.4", "loss.beta=0.01", "loss.gamma=1.0", "loss.margin_scale=inside"} <= set(tags)
    assert all(len(t) <= MAX_TAG for t in tags)
    from rationalign.tracking import tags_for

    assert "loss:mpo" in tags_for(cfg) and "loss.lam=0.4" in tags_for(cfg)


def test_offline_log_reader_refuses_other_files(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a log")
    with pytest.raises(ValueError, match="not a wandb transaction log"):
        records(bad)


def _evaluate_manifest(key: str, shift: float) -> dict:
    """A finished stage=evaluate manifest, shaped like the real one (see tests/test_sweep_metrics.py)."""
    cell = lambda s, **kw: {"score": s + shift, "n": 1, "malformed": 0, "metric": "sari", **kw}
    # "outputs": {}: a finished stage lists its files (stages/artifacts.py); this one has none to verify
    return {"stage": "evaluate", "key": key, "upstream": {}, "outputs": {},
            "metrics": {"aligned": {"CoN": cell(10.0), "AST": cell(20.0), "GYAFC-EM": cell(30.0, formality=0.5)}},
            "analyses": {"reward_model": {"heldout_accuracy": 0.75, "heldout_pairs": 4,
                                          "systems": {"aligned": {"mean_reward": 0.1 + shift, "mean_metric": 12.0}}},
                         "faithfulness": {"aligned": {"overall": {"coverage": 0.5, "precision": 0.25}}}}}


def test_each_sweep_job_has_its_report_in_a_distinct_offline_wandb_run(tmp_path):
    from rationalign.components import import_components
    from rationalign.stages.base import MANIFEST, Context

    import_components()
    # evaluate.split=dev: what a sweep evaluates by default, named so the stage keys composed here match
    common = ["stage=evaluate", "model=tiny", "loss=mpo", "evaluate.systems=[aligned]", "evaluate.split=dev",
              "tracking=wandb", f"paths.root={tmp_path / 'out'}", "hydra/callbacks=job_result"]
    lams = {"0.4": 0.0, "0.8": 5.0}
    for lam, shift in lams.items():  # each job finds its evaluate stage finished and goes on to tracking
        cfg = compose([*common[:-1], f"loss.lam={lam}"])
        ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
        ctx.stage_dir("evaluate").mkdir(parents=True)
        (ctx.stage_dir("evaluate") / MANIFEST).write_text(json.dumps(_evaluate_manifest(ctx.key("evaluate"), shift)))
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    proc = subprocess.run([sys.executable, "-m", "rationalign", "-m", *common, f"loss.lam={','.join(lams)}",
                           f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env={**env, "WANDB_SILENT": "true"},
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "wandb").exists()  # each run lies in its job's dir, not in the cwd
    names = set()
    for num, (lam, shift) in enumerate(lams.items()):
        runs = list((sweep / str(num) / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs
        run = read_offline_run(runs[0])
        names.add(run["name"])
        assert run["name"] == f"lam={lam}" and run["group"] == f"default-{sweep.name}"
        assert f"loss.lam={lam}" in run["tags"] and "loss.beta=0.01" in run["tags"] and "loss:mpo" in run["tags"]
        assert run["config"]["loss"]["lam"] == float(lam) and run["config"]["loss"]["gamma"] == 1.0
        s = run["summary"]
        assert s["aligned.CoN.score"] == 10.0 + shift and s["aligned.GYAFC-EM.formality"] == 0.5
        assert s["aligned.ALL"] == pytest.approx(20.0 + shift)
        assert s["reward_model.heldout_accuracy"] == 0.75 and s["aligned.mean_reward"] == pytest.approx(0.1 + shift)
        assert s["aligned.faithfulness.coverage"] == 0.5 and s["aligned.faithfulness.precision"] == 0.25
        result = json.loads((sweep / str(num) / "result.json").read_text())
        assert result["tracking"]["name"] == run["name"] and result["tracking"]["group"] == run["group"]
        assert result["metrics"]["aligned.ALL"] == s["aligned.ALL"]  # the names aggregate.py ranks
    assert len(names) == 2
    agg = subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep), "--no-plots",
                          "--metric", "aligned.ALL"], capture_output=True, text=True, check=False, cwd=REPO)
    assert agg.returncode == 0 and "aligned.ALL (higher is better)" in agg.stdout, agg.stderr
