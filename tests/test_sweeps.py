"""Sweeps: multirun on the tiny model, per-job result.json, failure capture, shared upstream,
aggregation, launcher presets, experiment presets, the submitit -> torch distributed env mapping.

The multiruns run as subprocesses (`python -m rationalign -m ...`), the way users run them, and
share one output root so the SFT adapter is trained once (that sharing is itself under test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rationalign.report_sweep import build_table, find_results, to_csv, to_markdown, write_summary
from rationalign.submitit_env import distributed_env, export_distributed_env
from rationalign.sweep import build_result, parse_overrides

REPO = Path(__file__).resolve().parent.parent
# Single-run presets (no grid): composed by the test below, not expanded into a sweep here.
SINGLE_RUN = {"asset", "demo", "mario_writing", "paper_rationalign_8b"}
PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml") if p.stem not in SINGLE_RUN)
# Passed explicitly so these tests hold whether or not conf/config.yaml selects it by default yet.
CALLBACK = "hydra/callbacks=job_result"


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweeps")
    labeled = [json.loads(line) for line in (REPO / "rationalign/data/demo/labeled.jsonl").open()][:6]
    pairs = root / "pairs.jsonl"
    with pairs.open("w") as f:
        for i, r in enumerate(labeled):
            f.write(json.dumps({"id": r["id"], "task": r["task"], "instruction": r["instruction"],
                                "source": r["source"], "chosen": r["target"] + " The edit fixes the grammar.",
                                "rejected": r["source"], "chosen_reward": 1.0 + 0.1 * i,
                                "rejected_reward": 0.2}) + "\n")
    common = ["stage=align", "model=tiny", f"paths.root={root / 'out'}", f"align.pairs={pairs}",
              "data.max_labeled_per_task=6", "sft.train.epochs=1", "sft.train.batch_size=8", CALLBACK]
    return SimpleNamespace(root=root, common=common)


def multirun(space, name: str, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    sweep_dir = space.root / "sweeps" / name
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "rationalign", "-m", *space.common, *args,
                           f"hydra.sweep.dir={sweep_dir}"], check=False, capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)
    return proc, sweep_dir


def results(sweep_dir: Path) -> list[dict]:
    rs = [json.loads(p.read_text()) for p in find_results(sweep_dir)]
    return sorted(rs, key=lambda r: int(r["job"]["num"]))


def check_grid(sweep_dir: Path, a: str, b: str) -> list[dict]:
    """A finished 2x2 grid over keys a, b: 4 ok results, one shared SFT, 4 distinct align dirs."""
    rs = results(sweep_dir)
    assert len(rs) == 4 and all(r["status"] == "ok" for r in rs), [r.get("error") for r in rs]
    assert len({(r["overrides"][a], r["overrides"][b]) for r in rs}) == 4
    assert all(r["stage"] == "align" and r["metrics"]["train_loss"] > 0 for r in rs)
    assert len({r["config_hash"] for r in rs}) == 4
    # Shared upstream: every job's align manifest names the same sft key, and only one sft dir exists.
    assert len({r["upstream"]["sft"] for r in rs}) == 1
    sft_dirs = [d for d in (Path(rs[0]["stage_dir"]).parents[1] / "sft").iterdir() if d.is_dir()]
    assert [d.name for d in sft_dirs] == [rs[0]["upstream"]["sft"]]
    assert len({r["stage_dir"] for r in rs}) == 4
    table = build_table(sweep_dir)
    assert len(table.rows) == 4 and set(table.swept) == {a, b} and not table.failed
    assert "train_loss" in table.ranked and table.ranked["train_loss"] == "min"
    best = min(range(4), key=lambda i: table.rows[i]["metrics"]["train_loss"])
    assert table.best["train_loss"] == best
    return rs


def test_grid_2x2_basic_launcher_records_every_job_and_shares_sft(space):
    proc, sweep_dir = multirun(space, "basic", "loss.lam=0.4,0.8", "loss.beta=0.01,0.1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_grid(sweep_dir, "loss.lam", "loss.beta")
    # The callback wrote the summary (with plots: no job failed, so on_multirun_end ran).
    md = (sweep_dir / "summary.md").read_text()
    bold_rows = [line for line in md.splitlines() if line.startswith("| ") and "**" in line]
    assert "4 jobs, 4 ok, 0 failed" in md and len(bold_rows) == 1  # one ranked metric, one best job
    assert (sweep_dir / "plots" / "loss_curves.png").exists()
    assert (sweep_dir / "plots" / "metric_vs_loss.lam.png").exists()

    # experiments/aggregate.py over the same dir, into a separate folder.
    out = space.root / "agg"
    agg = subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep_dir),
                          "--out", str(out), "--metric", "train_loss"], check=False, capture_output=True, text=True, cwd=REPO)
    assert agg.returncode == 0, agg.stderr
    csv_lines = (out / "summary.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 4 and csv_lines[0].startswith("job,status,loss.lam,loss.beta")
    assert sum(1 for line in csv_lines[1:] if line.split(",")[-2] == "train_loss") == 1
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "loss_curves.png", "metric_vs_loss.beta.png", "metric_vs_loss.lam.png"]


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(space):
    # Job 0 raises at run time (its pairs file is read when the stage runs); the loss.beta=-1 jobs
    # fail the config check (a ConfigError, which in a sweep fails the job, not the whole sweep).
    empty = space.root / "empty_pairs.jsonl"
    empty.write_text("\n")
    good = next(o for o in space.common if o.startswith("align.pairs=")).split("=", 1)[1]
    proc, sweep_dir = multirun(space, "failing", "loss.lam=0.6", f"align.pairs={empty},{good}", "loss.beta=0.05,-1")
    # Hydra re-raises the first failure after the last job: the sweep's exit status says so.
    assert proc.returncode != 0
    assert "empty_pairs.jsonl: no pairs" in proc.stderr
    rs = results(sweep_dir)
    assert [r["status"] for r in rs] == ["failed", "failed", "ok", "failed"]
    assert rs[0]["error"]["type"] == "PairsError" and "empty_pairs.jsonl: no pairs" in rs[0]["error"]["message"]
    assert "Traceback" in rs[0]["error"]["traceback"]
    for bad in (rs[1], rs[3]):
        assert bad["overrides"]["loss.beta"] == "-1"
        assert bad["error"]["type"] == "ConfigError" and "loss.beta=-1.0: out of range" in bad["error"]["message"]
    assert rs[2]["metrics"]["train_loss"] > 0 and rs[2]["overrides"]["align.pairs"] == good
    md = (sweep_dir / "summary.md").read_text()
    assert "4 jobs, 1 ok, 3 failed" in md and "## Failed jobs" in md
    assert "- job 0 (" in md and "empty_pairs.jsonl" in md and "- job 3 (" in md and "out of range" in md


@pytest.mark.slow
def test_grid_2x2_submitit_local_launcher(space):
    proc, sweep_dir = multirun(space, "submitit", "hydra/launcher=submitit_local", "loss.beta=0.05",
                               "loss.lam=0.4,0.8", "loss.gamma=0.5,1.0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rs = check_grid(sweep_dir, "loss.lam", "loss.gamma")
    assert any((sweep_dir / ".submitit").iterdir())  # the jobs really went through submitit
    assert "4 jobs, 4 ok, 0 failed" in (sweep_dir / "summary.md").read_text()
    # One pre-step job built the shared upstream (rationalign/sweep_upstream.py) before the jobs ran:
    # every job found SFT finished, none waited on its lock.
    shared = json.loads((sweep_dir / "shared_upstream.json").read_text())
    assert shared["stages"]["sft"] == rs[0]["upstream"]["sft"] and shared["composed"] == 4
    for r in rs:
        log = "".join(p.read_text() for p in (sweep_dir / str(r["job"]["num"])).glob("*.log"))
        assert "stage sft: up to date" in log and "another run holds" not in log


# --------------------------------------------------------------------------------------------
# presets


def _hydra_compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rationalign.config import conf_dir, register_configs, register_resolvers

    register_resolvers()
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("preset", sorted(SINGLE_RUN))
def test_single_run_presets_compose_and_validate(preset, tmp_path):
    from rationalign.components import import_components
    from rationalign.validate import validate

    text = (REPO / "conf" / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_")
    proc = subprocess.run([sys.executable, "-m", "rationalign", f"experiment={preset}", "model=tiny",
                           f"paths.root={tmp_path}", "--cfg", "job"],
                          check=False, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    import_components()
    validate(_hydra_compose([f"experiment={preset}", "model=tiny"]), data=False)  # machine checks (vLLM, data files) aside


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_its_grid_is_valid(preset, tmp_path):
    from omegaconf import OmegaConf

    from rationalign.components import import_components
    from rationalign.validate import validate

    assert len(PRESETS) >= 12
    text = (REPO / "conf" / "experiment" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_") and any(c in text for c in ("Fig.", "Table", "App.", "Eq.", "Sec."))
    proc = subprocess.run([sys.executable, "-m", "rationalign", f"experiment={preset}", "model=tiny",
                           f"paths.root={tmp_path}", "--cfg", "job"],
                          check=False, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    cfg = _hydra_compose([f"experiment={preset}", "model=tiny"])
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, f"{preset}: no hydra.sweeper.params"
    groups = {"loss", "rationale", "model", "task", "stage", "data", "engine"}
    import_components()
    # Compose and validate the grid's corners: every key exists, every value is accepted.
    for pick in (0, -1):
        combo = [f"{k}={str(v).split(',')[pick].strip()}" for k, v in params.items()]
        for k in params:
            assert k in groups or OmegaConf.select(cfg, k, default="<missing>") != "<missing>", f"{preset}: {k}"
        job = _hydra_compose([f"experiment={preset}", "model=tiny", *combo])
        validate(job)


def test_sweep_mpo_is_the_paper_grid():
    from omegaconf import OmegaConf

    cfg = _hydra_compose(["experiment=sweep_mpo"])
    p = OmegaConf.to_container(cfg.hydra.sweeper.params)
    grid = {k: [float(x) for x in v.split(",")] for k, v in p.items()}
    assert grid == {"loss.lam": [0.2, 0.4, 0.6, 0.8, 1.0], "loss.beta": [0.01, 0.05, 0.1],
                    "loss.gamma": [0.2, 0.4, 0.6, 0.8, 1.0]}
    assert cfg.loss.name == "mpo" and cfg.stage.name == "pipeline"
    assert cfg.tracking.group.startswith("sweep_mpo-")


def test_preset_sweep_dir_is_named_like_its_wandb_group():
    cfg = _hydra_compose(["experiment=sweep_mpo"])
    assert Path(cfg.hydra.sweep.dir).name == cfg.tracking.group  # runs group by sweep


@pytest.mark.parametrize("launcher,target", [
    ("local", "BasicLauncher"), ("submitit_local", "LocalLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_presets_compose(launcher, target):
    cfg = _hydra_compose([f"hydra/launcher={launcher}", "hydra.launcher.partition=gpu"]
                         if launcher == "slurm" else [f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":
        lc = cfg.hydra.launcher
        assert (lc.partition, lc.gpus_per_node, lc.tasks_per_node) == ("gpu", 1, 1)
        assert lc.array_parallelism > 0 and lc.timeout_min > 0


def test_optuna_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = _hydra_compose(["hydra/sweeper=optuna_tpe", "experiment=sweep_mpo"])
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.sampler._target_.endswith("TPESampler") and cfg.hydra.sweeper.params


def test_job_result_callback_is_on_by_default():
    cfg = _hydra_compose([])
    assert cfg.hydra.callbacks.job_result._target_ == "rationalign.sweep.JobResultCallback"


# --------------------------------------------------------------------------------------------
# units: result payload, table, distributed env


def test_failed_result_outside_hydra_and_secret_overrides(tmp_path):
    from rationalign.runner import compose

    cfg = compose(["model=tiny", f"paths.root={tmp_path}"])
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        res = build_result(cfg, e, ["loss.lam=0.4", "rationale.api_key=sk-123"])
    assert res["status"] == "failed" and res["error"]["message"] == "boom"
    assert "RuntimeError" in res["error"]["traceback"] and res["config_hash"]
    assert res["overrides"] == {"loss.lam": "0.4", "rationale.api_key": "***"}
    assert "sk-123" not in json.dumps(res)
    assert parse_overrides(["+experiment=x", "~foo"]) == {"experiment": "x", "foo": ""}


def _fake_result(d: Path, num: int, status: str, over: dict, metrics: dict, err: str | None = None):
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps({
        "status": status, "job": {"num": num}, "overrides": over, "metrics": metrics,
        "override_list": [f"{k}={v}" for k, v in over.items()],
        "error": {"type": "ValueError", "message": err} if err else None}))


def test_table_marks_best_per_metric_and_lists_failures(tmp_path):
    _fake_result(tmp_path / "0", 0, "ok", {"loss.beta": "0.1", "model": "tiny"},
                 {"evaluate.aligned.CoN.score": 40.0, "evaluate.aligned.CoN.n": 20, "train_loss": 2.0, "seconds": 1.0})
    _fake_result(tmp_path / "1", 1, "ok", {"loss.beta": "0.01", "model": "tiny"},
                 {"evaluate.aligned.CoN.score": 45.0, "evaluate.aligned.CoN.n": 10, "train_loss": 3.0, "seconds": 0.5})
    _fake_result(tmp_path / "10", 10, "failed", {"loss.beta": "0.5", "model": "tiny"}, {}, err="CUDA OOM")
    t = build_table(tmp_path)
    assert [r["job"]["num"] for r in t.rows] == [0, 1, 10]  # numeric order, not "0", "1", "10" lexically
    assert t.swept == ["loss.beta"] and t.constant == {"model": "tiny"}
    # seconds and the record count n are bookkeeping, not quality: never ranked by default
    assert t.ranked == {"evaluate.aligned.CoN.score": "max", "train_loss": "min"}
    assert t.best == {"evaluate.aligned.CoN.score": 1, "train_loss": 0}
    md = to_markdown(t)
    assert "**45**" in md and "**2**" in md and "- job 10 (loss.beta=0.5 model=tiny): ValueError: CUDA OOM" in md
    rows = to_csv(t).strip().splitlines()
    assert rows[-1].endswith("ValueError: CUDA OOM") and len(rows) == 4
    assert build_table(tmp_path, metrics=["seconds:min"]).best == {"seconds": 1}
    written = write_summary(tmp_path, tmp_path / "agg")
    assert (tmp_path / "agg" / "plots" / "metric_vs_loss.beta.png").exists() and len(written.rows) == 3


def test_distributed_env_from_a_submitit_job():
    job = SimpleNamespace(global_rank=3, local_rank=1, num_tasks=4, num_nodes=2,
                          hostnames=["gpu07", "gpu08"], job_id="991_2")
    env = distributed_env(job)
    assert env["RANK"] == "3" and env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "4"
    assert env["LOCAL_WORLD_SIZE"] == "2" and env["MASTER_ADDR"] == "gpu07"
    assert env["MASTER_PORT"] == distributed_env(job)["MASTER_PORT"]  # every task derives the same port
    environ: dict = {}
    assert export_distributed_env(job, environ) == env and environ == env
    assert export_distributed_env(job, {"WORLD_SIZE": "4"}) == {}  # torchrun already set it
    assert export_distributed_env(SimpleNamespace(**{**vars(job), "num_tasks": 1}), {}) == {}
    assert export_distributed_env(None, {}) == {}  # not under submitit


def test_distributed_env_from_slurm_variables(monkeypatch):
    pytest.importorskip("submitit")
    for k in [k for k in os.environ if k.startswith(("SLURM_", "SUBMITIT_")) or k in ("WORLD_SIZE", "RANK")]:
        monkeypatch.delenv(k)
    for k, v in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "123", "SLURM_PROCID": "1", "SLURM_LOCALID": "1",
                 "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_NODEID": "0",
                 "SLURM_JOB_NODELIST": "gpu[01-02]"}.items():
        monkeypatch.setenv(k, v)
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    env = export_distributed_env()
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"], env["MASTER_ADDR"]) == ("1", "1", "2", "gpu01")
    assert os.environ["WORLD_SIZE"] == "2"
