"""Shared upstream built once, before a sweep's jobs start.

The jobs of a grid over `loss.*` share rationalize/kfold/reward/sft/sample/pairs (content-addressed
stage dirs, rationalign/stages/base.py). Launched together (an SLURM array, submitit_local), every
job would reach the first shared stage at once: one builds it while the others wait on its lock,
each holding the GPU its job was given. So when a sweep goes through a submitit launcher, the
job_result callback's `on_multirun_start` (`hydra.callbacks.job_result.shared_upstream: true`, the
default) first runs *one* job, with the sweep's own launcher parameters (partition, account,
GPUs, setup lines, ...), that builds every stage all jobs share, waits for it, and only then lets
the sweeper submit the array; the array's jobs find those stages finished and skip them.

What is shared is decided in that job, on the composed configs: a stage is shared when its content
key is the same in every job (the key covers its config slice and its upstream's keys). A job whose
config does not compose or validate is left out here; it fails on its own and is reported as failed.
The outcome is recorded in `<sweep dir>/shared_upstream.json`. Nothing is shared: nothing is built.
The basic launcher runs jobs one after another, where nothing waits on a lock: no pre-step there.
"""

from __future__ import annotations

import itertools
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rationalign.io import atomic_write_json
from rationalign.run_identity import sweep_grid

log = logging.getLogger("rationalign")

RECORD = "shared_upstream.json"
SUBMITIT_LAUNCHERS = {"SlurmLauncher": "slurm", "LocalLauncher": "local"}


def job_overrides(master: DictConfig) -> list[list[str]] | None:
    """Every job's overrides, in the sweeper's order (the Cartesian product of sweep_grid); None when
    the sweep is not a list of jobs known beforehand (a continuous range searched by Optuna)."""
    grid = sweep_grid(master)
    if any(v is None for v in grid.values()):
        return None
    return [list(job) for job in itertools.product(*grid.values())]


def closure(cfg: DictConfig, name: str, seen: list[str] | None = None) -> list[str]:
    """`name` and every stage it builds on, upstream first (topological order)."""
    from rationalign.stages.base import STAGES

    seen = [] if seen is None else seen
    for up in STAGES.get(name).upstream_of(cfg):
        if up not in seen:
            closure(cfg, up, seen)
    if name not in seen:
        seen.append(name)
    return seen


def shared_stages(cfgs: list[DictConfig]) -> dict[str, str]:
    """{stage: key} of the stages every job runs with the same key, upstream first."""
    from rationalign.components import import_components
    from rationalign.stages.base import STAGES, Context

    import_components()
    ctxs = [Context(cfg=c, workdir=Path(c.paths.workdir)) for c in cfgs]
    runs = [set(closure(c, str(c.stage.name))) for c in cfgs]
    out = {}
    for name in closure(cfgs[0], str(cfgs[0].stage.name)):
        if not STAGES.get(name).artifacts or not all(name in r for r in runs):
            continue
        try:
            dirs = {c.stage_dir(name) for c in ctxs}
        except Exception as e:  # noqa: BLE001 - e.g. a data file one job names does not exist
            log.warning("shared upstream: cannot compare stage %s across jobs (%s: %s)", name, type(e).__name__, e)
            continue
        if len(dirs) == 1:
            out[name] = ctxs[0].key(name)
    return out


def build_shared(jobs: list[list[str]], record: str | None = None) -> dict[str, Any]:
    """Run in the pre-step job: compose every job's config, build the stages all of them share."""
    from rationalign.components import import_components
    from rationalign.runner import compose
    from rationalign.stages.base import Context, run_stage
    from rationalign.submitit_env import export_distributed_env
    from rationalign.validate import validate

    export_distributed_env()  # a multi-task job (tasks_per_node > 1) trains as its jobs would
    import_components()
    start = time.time()
    cfgs, left_out = [], []
    for overrides in jobs:
        try:
            cfg = compose(overrides)
            validate(cfg)
            cfgs.append(cfg)
        except Exception as e:  # noqa: BLE001 - that job will fail by itself and say why
            left_out.append({"overrides": overrides, "error": f"{type(e).__name__}: {e}"})
    shared = shared_stages(cfgs) if len(cfgs) > 1 else {}
    if shared:
        # Built like any job would build them, but not tracked: the pre-step is not a run of the sweep
        # (its numbers are in the stages' manifests and train_log.json).
        cfg = cfgs[0]
        with open_dict(cfg):
            cfg.tracking.backend = "none"
        ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
        for name in shared:
            run_stage(ctx, name)
    out = {"jobs": len(jobs), "composed": len(cfgs), "left_out": left_out, "stages": shared,
           "dirs": {n: str(Path(cfgs[0].paths.workdir) / n / k) for n, k in shared.items()},
           "seconds": round(time.time() - start, 2)}
    if record:
        from rationalign.distributed import is_main

        if is_main():
            atomic_write_json(Path(record), out)
    return out


def _executor(launcher: dict[str, Any]):
    """A submitit executor with the sweep launcher's parameters, mapped as hydra-submitit-launcher
    maps them (BaseSubmititLauncher.launch), so the pre-step gets the array jobs' resources."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    kind = SUBMITIT_LAUNCHERS[str(launcher["_target_"]).rsplit(".", 1)[-1]]
    params = {k: v for k, v in launcher.items() if k not in ("_target_", "submitit_folder", "max_num_timeout")}
    init = {"folder": launcher["submitit_folder"]}
    if "max_num_timeout" in launcher:
        init[f"{kind}_max_num_timeout"] = launcher["max_num_timeout"]
    executor = submitit.AutoExecutor(cluster=kind, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else kind + "_" + k: v for k, v in params.items()})
    executor.update_parameters(name=f"{params.get('name') or 'rationalign'}-shared-upstream")
    return executor


def prebuild(master: DictConfig) -> dict[str, Any] | None:
    """In the sweep's own process, before any job: submit the pre-step and wait for it. None when the
    launcher is not a submitit one, the sweep has a single job, or its jobs are not listable. Raises when the pre-step fails (every
    job would fail the same way, each after waiting for a GPU)."""
    target = str(OmegaConf.select(master, "hydra.launcher._target_") or "")
    if target.rsplit(".", 1)[-1] not in SUBMITIT_LAUNCHERS:
        return None
    jobs = job_overrides(master)
    if jobs is None:
        log.info("shared upstream: the sweep's jobs are not known beforehand (a continuous search space); "
                 "no pre-step, its first jobs build the shared stages")
        return None
    if len(jobs) < 2:
        return None
    sweep_dir = Path(str(master.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    launcher = OmegaConf.to_container(master.hydra.launcher, resolve=True)
    job = _executor(launcher).submit(build_shared, jobs, str(sweep_dir / RECORD))
    log.info("shared upstream of %d jobs: building it once first (job %s, logs %s)", len(jobs), job.job_id,
             job.paths.stdout)
    try:
        out = job.result()
    except Exception as e:
        raise RuntimeError(f"the sweep's shared-upstream job {job.job_id} failed, so no job was launched: "
                           f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__} "
                           f"(log: {job.paths.stderr})") from e
    log.info("shared upstream built in %.0fs: %s", out["seconds"], ", ".join(out["stages"]) or "nothing shared")
    return out
