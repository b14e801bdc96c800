"""`make slurm-check`: the sweep workflow on a real (one-node, local) SLURM cluster.

    python experiments/slurm_check.py [--only a,c] [--out DIR] [--keep-cluster]

Starts the cluster of experiments/slurm_cluster.py (unless it runs already), submits through the
project's own launcher config (`hydra/launcher=slurm`, partition `local`) and checks:
  a. a 2x2 MPO grid (loss.lam x loss.beta) on model=tiny experiment=smoke with tracking=wandb
     (offline) runs as one job array after one job built the shared upstream: every result.json is
     ok and records its SLURM job, no job waited on a stage lock, aggregate.py builds the 4-row table
     and refuses an unknown --metric, and every job's offline wandb run holds its report in its
     summary under a distinct name;
  b. tasks_per_node=2 trains SFT data-parallel (2 processes, gloo): the manifest says world_size 2
     and the LoRA weights equal a 1-process run at twice the per-device batch;
  c. a job requeued (`scontrol requeue`) while align runs finishes on its second start, reusing
     every finished stage (its own pairs included), resuming align from its last complete
     checkpoint, and its artifacts equal an uninterrupted job's;
  d. a grid point with a bad override fails, reported in the summary with its error, while the
     other job finishes.
Prints one line per check, `sweep dir: <path>` of check a, and last `N/N SLURM checks passed`;
exits 1 unless all passed. Stops the cluster afterwards if it started it. Each command's output is
in <out>/logs/. Measured: 7.5 minutes on 2 cores shared with other work (load average 4-6, run
under nice 15); a 100 s, b 50 s, c 250 s, d 40 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))
import slurm_cluster  # a sibling script

LAUNCHER = ["hydra/launcher=slurm", f"hydra.launcher.partition={slurm_cluster.PARTITION}",
            "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=30"]
# experiment=smoke with one loss; the report with its analyses (RM accuracy, mean rewards). smoke's
# K-fold yields ~2 RM pairs: 3 samples per input and half of the inputs held out, so the RM's
# held-out accuracy has pairs to be measured on.
SMOKE = ["model=tiny", "experiment=smoke", "loss=mpo", "evaluate.systems=[aligned]", "evaluate.analyses=true",
         "tracking.mode=offline", "kfold.n_samples=3", "reward.heldout_fraction=0.5"]
# What every job of a loss.* grid on experiment=smoke shares (no rationalize: smoke trains without rationales).
UPSTREAM = ("kfold", "reward", "sft", "sample", "pairs")


class CheckFailed(AssertionError):
    pass


def require(cond: object, why: str) -> None:
    if not cond:
        raise CheckFailed(why)


@dataclass
class Ctx:
    out: Path
    env: dict

    @property
    def root(self) -> Path:  # paths.root shared by checks a, c and d (they reuse a's upstream)
        return self.out / "root"

    def log(self, name: str) -> Path:
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        return self.out / "logs" / f"{name}.log"

    def rationalign(self, name: str, args: list[str], timeout: int = 1800, background: bool = False):
        cmd = [sys.executable, "-m", "rationalign", *args]
        fh = self.log(name).open("w")
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT, text=True)
        if background:
            return proc
        try:
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            fh.close()
        return proc

    def tail(self, name: str, n: int = 25) -> str:
        lines = [ln for ln in self.log(name).read_text(errors="replace").splitlines()
                 if "sacct" not in ln and "accounting storage is disabled" not in ln]
        return "\n    ".join(lines[-n:])


def results(sweep: Path) -> list[dict]:
    rs = [json.loads(p.read_text()) for p in sweep.glob("*/result.json")]
    return sorted(rs, key=lambda r: int(r["job"]["num"]))


def job_log(sweep: Path, num: int) -> str:
    return "".join(p.read_text(errors="replace") for p in (sweep / str(num)).glob("*.log"))


def adapter(stage_dir: Path) -> dict:
    from safetensors.torch import load_file

    (f,) = (stage_dir / "adapter").glob("*.safetensors")
    return load_file(str(f))


def max_diff(a: dict, b: dict) -> float:
    require(a.keys() == b.keys(), f"adapters differ in tensors: {sorted(set(a) ^ set(b))[:4]}")
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def assert_close(a: dict, b: dict, what: str) -> float:
    """Same LoRA weights. fp32 training, a few dozen Adam steps of lr <= 5e-3: float noise of the
    summation order (threads, gloo's all-reduce) reaches ~1e-6 on weights; 2e-5 absolute slack as in
    tests/test_distributed.py, plus 1e-4 relative."""
    import torch

    diff = max_diff(a, b)
    for k, v in a.items():
        if not torch.allclose(v, b[k], rtol=1e-4, atol=2e-5):
            raise CheckFailed(f"{what}: {k} differs by up to {float((v - b[k]).abs().max()):.3g}")
    return diff


def stage_dir_of(result: dict, stage: str) -> Path:
    d = (result.get("stage_dirs") or {}).get(stage) or (result["stage_dir"] if result["stage"] == stage else None)
    require(d, f"job {result['job']['num']}: no finished {stage} dir in result.json")
    return Path(d)


# ---------------------------------------------------------------------------------------------


def check_a(ctx: Ctx) -> str:
    from rationalign.wandb_offline import read_offline_run

    sweep = ctx.out / "a_grid"
    proc = ctx.rationalign("a_grid", ["-m", *LAUNCHER, *SMOKE, "tracking=wandb", "loss.lam=0.4,0.8",
                                      "loss.beta=0.01,0.1", f"paths.root={ctx.root}", f"hydra.sweep.dir={sweep}"])
    require(proc.returncode == 0, f"the sweep exited {proc.returncode}:\n    {ctx.tail('a_grid')}")
    shared = json.loads((sweep / "shared_upstream.json").read_text())
    require(set(UPSTREAM) <= set(shared["stages"]), f"shared upstream built first: {sorted(shared['stages'])}")
    rs = results(sweep)
    require(len(rs) == 4 and all(r["status"] == "ok" for r in rs),
            f"{len(rs)} results, statuses {[r['status'] for r in rs]}: {[r.get('error') for r in rs]}")
    slurm = [r["job"].get("slurm") or {} for r in rs]
    require(all(str(s.get("job_id", "")).isdigit() for s in slurm), f"SLURM job ids: {slurm}")
    arrays = {s.get("array_job_id") for s in slurm}
    require(len(arrays) == 1 and sorted(s.get("array_task_id") for s in slurm) == ["0", "1", "2", "3"],
            f"not one array of 4 tasks: {slurm}")
    array = arrays.pop()
    require(all((sweep / ".submitit" / f"{array}_{i}").is_dir() for i in range(4)),
            f"submitit folders {array}_0..3 missing: {sorted(p.name for p in (sweep / '.submitit').iterdir())}")
    for r in rs:
        text = job_log(sweep, r["job"]["num"])
        require("another run holds" not in text, f"job {r['job']['num']} waited on a stage lock")
        # a stage is only visited when something downstream is missing: pairs is, the rest may not be
        rebuilt = [s for s in shared["stages"] if f"stage {s}: running" in text]
        require(not rebuilt and "stage pairs: up to date" in text, f"job {r['job']['num']} built {rebuilt} itself")
    agg = subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep), "--no-plots",
                          "--metric", "evaluate.aligned.ALL"], capture_output=True, text=True, check=False, cwd=REPO)
    require(agg.returncode == 0, f"aggregate.py: {agg.stderr[-2000:]}")
    rows = (sweep / "summary.csv").read_text().strip().splitlines()
    require(len(rows) == 5 and rows[0].startswith("job,status,loss.lam,loss.beta"), f"summary.csv: {rows[:2]}")
    bad = subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep), "--no-plots",
                          "--metric", "evaluate.gec.sari"], capture_output=True, text=True, check=False, cwd=REPO)
    require(bad.returncode == 2 and "evaluate.aligned.ALL" in bad.stderr, f"unknown metric accepted: {bad.stderr}")
    names, groups = set(), set()
    for r in rs:
        (run_dir,) = (sweep / str(r["job"]["num"]) / "wandb").glob("offline-run-*")
        run = read_offline_run(run_dir)
        o = r["overrides"]
        require(run["name"] == f"lam={o['loss.lam']} beta={o['loss.beta']}", f"run name {run['name']!r}")
        require(f"loss.lam={o['loss.lam']}" in run["tags"] and f"loss.beta={o['loss.beta']}" in run["tags"],
                f"tags {run['tags']}")
        require(run["config"]["loss"]["lam"] == float(o["loss.lam"]), "loss.lam not in the run's config")
        report = {k: v for k, v in r["metrics"].items() if k.startswith("evaluate.") and isinstance(v, (int, float))}
        for key in ("evaluate.aligned.ALL", "evaluate.reward_model.heldout_accuracy", "evaluate.aligned.mean_reward"):
            require(key in report, f"job {r['job']['num']}: {key} not in result.json")
        wrong = {k: (v, run["summary"].get(k)) for k, v in report.items() if run["summary"].get(k) != v}
        require(not wrong, f"job {r['job']['num']}: summary differs from result.json: {dict(list(wrong.items())[:3])}")
        names.add(run["name"])
        groups.add(run["group"])
    require(len(names) == 4 and len(groups) == 1, f"names {names}, groups {groups}")
    return (f"4/4 ok as SLURM array {array}; {len(shared['stages'])} shared stages built first; "
            f"wandb runs {sorted(names)} in group {groups.pop()}; aggregate ranks evaluate.aligned.ALL")


def check_b(ctx: Ctx) -> str:
    common = ["stage=sft", "model=tiny", "model.lora.dropout=0", "data.max_labeled_per_task=8", "sft.train.epochs=1",
              "sft.train.lr=5e-3", "sft.train.group_by_length=false", "sft.train.logging_steps=1"]
    sweep = ctx.out / "b_ddp"
    proc = ctx.rationalign("b_ddp", ["-m", *LAUNCHER, "hydra.launcher.tasks_per_node=2", *common,
                                     "sft.train.batch_size=2", f"paths.root={ctx.out / 'b_root2'}",
                                     f"hydra.sweep.dir={sweep}"])
    require(proc.returncode == 0, f"the SLURM job exited {proc.returncode}:\n    {ctx.tail('b_ddp')}")
    ref = ctx.rationalign("b_one_process", [*common, "sft.train.batch_size=4", f"paths.root={ctx.out / 'b_root1'}"])
    require(ref.returncode == 0, f"the 1-process run exited {ref.returncode}:\n    {ctx.tail('b_one_process')}")
    (r,) = results(sweep)
    require(r["status"] == "ok" and (r["job"].get("slurm") or {}).get("ntasks") == "2", f"result: {r['job']}")
    job = r["job"]["slurm"]["job_id"]
    logs = list((sweep / ".submitit").glob("*/*_1_log.out"))
    require(logs and "global_rank=1(2)" in logs[0].read_text(), "no second task (rank 1) ran under srun")
    two = Path(r["stage_dir"])
    (one,) = (ctx.out / "b_root1").glob("default/sft/*/manifest.json")
    m2, m1 = json.loads((two / "manifest.json").read_text()), json.loads(one.read_text())
    require(m2["world_size"] == 2 and m1["world_size"] == 1, f"world_size {m2['world_size']} / {m1['world_size']}")
    w2, w1 = adapter(two), adapter(one.parent)
    moved = max(float(v.abs().max()) for k, v in w1.items() if "lora_B" in k)
    require(moved > 1e-3, f"training did not move lora_B ({moved:.3g}): the comparison would be vacuous")
    diff = assert_close(w2, w1, "2 processes x batch 2 vs 1 process x batch 4")
    l2, l1 = m2["metrics"]["train_loss"], m1["metrics"]["train_loss"]
    require(abs(l2 - l1) <= 1e-4 * abs(l1) + 1e-5, f"train_loss {l2} vs {l1}")
    return (f"SLURM job {job}: 2 tasks (gloo), world_size 2; LoRA weights = 1 process x batch 4 "
            f"(max |diff| {diff:.2g}, lora_B moved up to {moved:.2g}); train_loss {l2:.5f} vs {l1:.5f}")


def _requeue_when_checkpointed(ctx: Ctx, sweep: Path, proc, timeout: float = 1200) -> dict:
    """Wait until the job's align stage has written a complete checkpoint, then requeue the job."""
    deadline = time.monotonic() + timeout
    align_dir = job_id = None
    while time.monotonic() < deadline and proc.poll() is None:
        text = job_log(sweep, 0)
        found = re.findall(r"stage align: running -> (\S+)", text)
        if found:
            align_dir = Path(found[0])
            done = sorted(p.parent.name for p in align_dir.glob("checkpoints/checkpoint-*/trainer_state.json"))
            if done:
                # a one-job sweep is a plain job (<id>), not an array (<id>_0)
                job_id = next(p.name for p in (sweep / ".submitit").iterdir() if re.fullmatch(r"\d+(_0)?", p.name))
                require(not (align_dir / "manifest.json").exists(), "align finished before it could be requeued")
                subprocess.run(["scontrol", "requeue", job_id], env=ctx.env, check=True, capture_output=True)
                # A requeued job becomes eligible only ~2 minutes later (SLURM's BeginTime); start it now.
                for _ in range(60):
                    if subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], env=ctx.env,
                                      capture_output=True, check=False).returncode == 0:
                        break
                    time.sleep(0.5)
                return {"job": job_id, "align_dir": align_dir, "checkpoints": done,
                        "pairs_done": (align_dir.parents[1] / "pairs").is_dir()}
        time.sleep(0.2)
    raise CheckFailed(f"never saw a complete align checkpoint to requeue at:\n    {ctx.tail('c_requeued')}")


def check_c(ctx: Ctx) -> str:
    args = [*SMOKE, "loss.lam=0.6", "loss.beta=0.05", "pairs.keep_fraction=0.75", "align.train.epochs=16",
            "align.train.save_steps=4", "align.train.logging_steps=1"]
    ref_root = ctx.out / "c_ref_root"
    for stage_dir in (ctx.root / "smoke").glob("*"):  # what check a built; pairs (new keep_fraction) on run here
        if stage_dir.name in ("pairs", "align", "evaluate", "pipeline"):
            continue
        for d in stage_dir.glob("*"):
            if (d / "manifest.json").exists():
                shutil.copytree(d, ref_root / "smoke" / stage_dir.name / d.name)
    ref_sweep, sweep = ctx.out / "c_uninterrupted", ctx.out / "c_requeued"
    ref = ctx.rationalign("c_uninterrupted", ["-m", *LAUNCHER, *args, f"paths.root={ref_root}",
                                              f"hydra.sweep.dir={ref_sweep}"])
    require(ref.returncode == 0, f"the uninterrupted job exited {ref.returncode}:\n    {ctx.tail('c_uninterrupted')}")
    proc = ctx.rationalign("c_requeued", ["-m", *LAUNCHER, *args, f"paths.root={ctx.root}",
                                          f"hydra.sweep.dir={sweep}"], background=True)
    try:
        cut = _requeue_when_checkpointed(ctx, sweep, proc)
        proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:
            proc.kill()
    require(proc.returncode == 0, f"the requeued sweep exited {proc.returncode}:\n    {ctx.tail('c_requeued')}")
    return verify_requeued(ctx, cut)


def verify_requeued(ctx: Ctx, cut: dict) -> str:
    """Check c's verdict on the finished sweeps c_requeued and c_uninterrupted."""
    ref_root, ref_sweep, sweep = ctx.out / "c_ref_root", ctx.out / "c_uninterrupted", ctx.out / "c_requeued"
    (r,), (rr,) = results(sweep), results(ref_sweep)
    require(r["status"] == "ok" and (r["job"].get("slurm") or {}).get("restart_count") == "1",
            f"status {r['status']}, SLURM {r['job'].get('slurm')}")
    text = job_log(sweep, 0)
    starts = text.split("stage align: running")
    require(len(starts) == 3, f"align started {len(starts) - 1} times, expected 2 (before and after the requeue)")
    second = starts[1]  # from the first align start to the second: the requeued job's replay of the upstream
    rerun = re.findall(r"stage (\w+): running", second + starts[2])
    require(set(rerun) <= {"align", "evaluate", "pipeline"}, f"the requeued job reran finished stages: {rerun}")
    require("stage pairs: up to date" in second and text.count("stage pairs: running") == 1,
            "pairs (built by the first start) was not reused")
    require("stage align: done" not in second, "align finished before the requeue took effect: nothing was cut")
    # SLURM kills KillWait seconds after the requeue: align may have saved a later checkpoint meanwhile
    resumed = [int(n) for n in re.findall(r"resuming from \S+/checkpoint-(\d+)", starts[2])]
    steps = json.loads((stage_dir_of(r, "align") / "manifest.json").read_text())["metrics"]["steps"]
    first = int(cut["checkpoints"][0].rsplit("-", 1)[-1])
    require(resumed and first <= resumed[0] < steps,
            f"align did not resume from a checkpoint between step {first} and its last step {steps}: {resumed}")
    align_a, align_b = stage_dir_of(r, "align"), stage_dir_of(rr, "align")
    pairs_key = json.loads((align_a / "manifest.json").read_text())["upstream"]["pairs"]
    compared = {"pairs": (ctx.root / "smoke" / "pairs" / pairs_key, ref_root / "smoke" / "pairs" / pairs_key),
                "align": (align_a, align_b), "evaluate": (stage_dir_of(r, "evaluate"), stage_dir_of(rr, "evaluate"))}
    for stage, (a, b) in compared.items():
        require(a.name == b.name and (a / "manifest.json").exists() and (b / "manifest.json").exists(),
                f"{stage}: {a} vs {b}")
        for f in sorted(p.relative_to(b) for p in b.rglob("*.jsonl")):
            require((a / f).read_bytes() == (b / f).read_bytes(), f"{stage}/{f} differs from the uninterrupted job's")
    diff = assert_close(adapter(align_a), adapter(align_b), "align adapter, requeued vs uninterrupted")
    ma, mb = r["metrics"], rr["metrics"]
    report = [k for k in mb if k.startswith("evaluate.") and isinstance(mb[k], (int, float))]
    require(report and all(ma.get(k) == mb[k] for k in report), "the reports differ")
    return (f"SLURM job {cut['job']} requeued in align, restarted once, resumed at step {resumed[0]}/{steps}; "
            f"no finished stage rerun (pairs, built by its first start, reused); pairs, predictions and report equal the "
            f"uninterrupted job's, align weights to {diff:.2g}")


def check_d(ctx: Ctx) -> str:
    sweep = ctx.out / "d_failing"
    proc = ctx.rationalign("d_failing", ["-m", *LAUNCHER, *SMOKE, "stage=align", "loss.lam=0.5", "loss.beta=0.05,-1",
                                         f"paths.root={ctx.root}", f"hydra.sweep.dir={sweep}"])
    require(proc.returncode != 0, "the sweep with a failed job exited 0")
    rs = results(sweep)
    require([r["status"] for r in rs] == ["ok", "failed"], f"statuses {[r['status'] for r in rs]}")
    ok, bad = rs
    require(ok["metrics"].get("train_loss", 0) > 0, "the good job has no train_loss")
    err = bad["error"] or {}
    require(err.get("type") == "ConfigError" and "loss.beta=-1.0: out of range" in err.get("message", ""),
            f"error recorded: {err.get('type')}: {err.get('message')}")
    require(all((r["job"].get("slurm") or {}).get("job_id") for r in rs), "a job did not run under SLURM")
    md = (sweep / "summary.md").read_text()
    require("2 jobs, 1 ok, 1 failed" in md and "## Failed jobs" in md and "out of range" in md, "summary.md")
    return f"loss.beta=-1 failed with ConfigError ({err['message'][:60]}...), loss.beta=0.05 finished; summary lists it"


CHECKS = {"a": ("2x2 MPO grid as one job array, wandb runs that compare", check_a),
          "b": ("tasks_per_node=2: SFT data parallel over gloo", check_b),
          "c": ("preempted (requeued) mid-stage, resumed", check_c),
          "d": ("a failing grid point", check_d)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="abcd", help="which checks, e.g. ac")
    ap.add_argument("--out", type=Path, default=REPO / "outputs" / "slurm_check" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    ap.add_argument("--state-dir", type=Path, default=slurm_cluster.DEFAULT_DIR)
    ap.add_argument("--keep-cluster", action="store_true", help="leave the cluster running afterwards")
    args = ap.parse_args(argv)
    state = args.state_dir.resolve()
    t0 = time.time()
    was_up = all(slurm_cluster.our_pid(state, d) for d in slurm_cluster.DAEMONS)
    try:
        slurm_cluster.start(state)
    except slurm_cluster.ClusterError as e:
        print(f"could not start the SLURM cluster: {e}\n0/{len(args.only)} SLURM checks passed")
        return 1
    env = {k: v for k, v in slurm_cluster.client_env(state).items() if not k.startswith("WANDB_")}
    env.update(TOKENIZERS_PARALLELISM="false", HYDRA_FULL_ERROR="1")
    ctx = Ctx(out=args.out.resolve(), env=env)
    ctx.out.mkdir(parents=True, exist_ok=True)
    passed = 0
    try:
        for key in args.only:
            title, fn = CHECKS[key]
            t = time.time()
            try:
                detail = fn(ctx)
                passed += 1
                print(f"[PASS] {key}. {title}: {detail} ({time.time() - t:.0f}s)", flush=True)
            except CheckFailed as e:
                print(f"[FAIL] {key}. {title}: {e} ({time.time() - t:.0f}s)", flush=True)
            except Exception as e:  # noqa: BLE001 - a crash of the check is a failed check, with its trace
                print(f"[FAIL] {key}. {title}: {type(e).__name__}: {e}\n{traceback.format_exc()}", flush=True)
            if key == "a":
                print(f"sweep dir: {ctx.out / 'a_grid'}", flush=True)
    finally:
        if not was_up and not args.keep_cluster:
            slurm_cluster.stop(state)
        else:  # a check that failed half-way may leave its jobs queued: cancel them (this cluster's only)
            subprocess.run(["scancel", "--user", str(os.geteuid())], env=env, capture_output=True, check=False)
    print(f"logs: {ctx.out / 'logs'}   total {time.time() - t0:.0f}s")
    print(f"{passed}/{len(args.only)} SLURM checks passed")
    return 0 if passed == len(args.only) else 1


if __name__ == "__main__":
    sys.exit(main())
