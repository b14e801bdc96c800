"""Shared upstream built once before a sweep's array starts (rationalign/sweep_upstream.py): which
jobs a sweep has, which stages all of them share, and the pre-step that builds exactly those. The
pre-step through a submitit launcher runs in tests/test_sweeps.py (slow) and `make slurm-check`."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from rationalign.runner import compose
from rationalign.sweep_upstream import build_shared, job_overrides, prebuild, shared_stages

REPO = Path(__file__).resolve().parent.parent
TINY_PIPELINE = ["model=tiny", "stage=pipeline", "evaluate.systems=[aligned]", "data.max_labeled_per_task=2"]


def _master(task: list[str], params: dict | None = None, launcher: str = "SlurmLauncher"):
    return OmegaConf.create({"hydra": {"overrides": {"task": task}, "sweeper": {"params": params},
                                       "launcher": {"_target_": f"hydra_plugins.x.{launcher}"},
                                       "sweep": {"dir": "/nonexistent"}}})


def test_job_overrides_expand_like_hydra():
    m = _master(["model=tiny", "loss.lam=0.4,0.8", "loss=mpo"], {"loss": "mpo,dpo", "loss.beta": "0.01,0.1"})
    assert job_overrides(m) == [
        ["loss=mpo", "loss.beta=0.01", "model=tiny", "loss.lam=0.4"],
        ["loss=mpo", "loss.beta=0.01", "model=tiny", "loss.lam=0.8"],
        ["loss=mpo", "loss.beta=0.1", "model=tiny", "loss.lam=0.4"],
        ["loss=mpo", "loss.beta=0.1", "model=tiny", "loss.lam=0.8"]]


def test_a_loss_grid_shares_everything_before_align(tmp_path):
    root = [f"paths.root={tmp_path}"]
    cfgs = [compose([*TINY_PIPELINE, *root, f"loss.lam={lam}"]) for lam in (0.4, 0.8)]
    shared = list(shared_stages(cfgs))
    assert set(shared) == {"rationalize", "kfold", "reward", "sft", "sample", "pairs"}
    assert shared[0] == "rationalize" and shared[-1] == "pairs"  # upstream first: built in this order
    # a grid over SFT's learning rate shares only what comes before SFT
    cfgs = [compose([*TINY_PIPELINE, *root, f"sft.train.lr={lr}"]) for lr in (1e-4, 2e-4)]
    assert list(shared_stages(cfgs)) == ["rationalize"]
    # different run_name: different dirs, nothing shared
    cfgs = [compose([*TINY_PIPELINE, *root, f"run_name={n}"]) for n in ("a", "b")]
    assert shared_stages(cfgs) == {}


def test_build_shared_leaves_out_a_bad_job_and_builds_nothing_when_nothing_is_shared(tmp_path):
    record = tmp_path / "shared_upstream.json"
    out = build_shared([["model=tiny", "stage=align", f"paths.root={tmp_path}", "loss.beta=-1"],
                        ["model=tiny", "stage=align", f"paths.root={tmp_path}", "loss.beta=0.1"]], str(record))
    assert out["composed"] == 1 and out["stages"] == {} and not (tmp_path / "default").exists()
    assert "loss.beta=-1.0: out of range" in out["left_out"][0]["error"]
    assert json.loads(record.read_text())["left_out"] == out["left_out"]


def test_no_pre_step_for_the_basic_launcher_a_single_job_or_a_continuous_search():
    assert prebuild(_master(["loss.lam=0.4,0.8"], launcher="BasicLauncher")) is None
    assert prebuild(_master(["loss.lam=0.4"])) is None
    optuna = _master(["model=tiny"], {"loss.lam": "interval(0.1, 1.0)", "loss.beta": "0.01,0.1"})
    assert job_overrides(optuna) is None and prebuild(optuna) is None
