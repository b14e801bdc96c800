"""Sweep plumbing: every job leaves a self-describing `result.json`, failures included.

Hydra's `run_job` already catches an `Exception` raised by the task function and marks the job
FAILED; the basic and submitit launchers then run the remaining jobs of the batch, and the sweeper
re-raises the first failure only after the batch (so the process exits non-zero at the end).
What Hydra does not do is write down, per job, what ran and what came out. `JobResultCallback`
(conf/hydra/callbacks/job_result.yaml) does that in `on_job_end`, which runs in the job's own
process (also under submitit), and refreshes the sweep's summary table after every job, because
`on_multirun_end` is skipped when the sweeper re-raises a failure.

The callback's `on_job_start` also exports the torch distributed variables of a submitit
multi-task job (rationalign/submitit_env.py), and its `on_multirun_start` builds the upstream
stages all jobs share once, before a submitit launcher starts them (rationalign/sweep_upstream.py).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rationalign.io import atomic_write_json, sha256_json
from rationalign.job_metrics import flatten, job_metrics, stage_manifests
from rationalign.report_sweep import RESULT
from rationalign.run_identity import identity
from rationalign.secrets import SECRET_KEY as _SECRET  # the one shared list
from rationalign.submitit_env import export_distributed_env, slurm_job
from rationalign.tracking import tags_for, valid_tag

log = logging.getLogger("rationalign")



# ---------------------------------------------------------------------------------------------
# result.json


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """['loss.lam=0.4', '+experiment=x'] -> {'loss.lam': '0.4', 'experiment': 'x'}; secrets masked."""
    out: dict[str, str] = {}
    for o in overrides:
        key, sep, value = str(o).partition("=")
        key = key.lstrip("+~")
        if _SECRET.search(key.rsplit(".", 1)[-1]):
            value = "***"
        out[key] = value if sep else ""
    return out


def config_hash(cfg: DictConfig) -> str:
    """Hash of the resolved job config (without the hydra node): equal hash, equal job."""
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return sha256_json(container)[:12]


def build_result(cfg: DictConfig, outcome: Any, overrides: list[str] | None = None,
                 job: dict | None = None) -> dict:
    """result.json payload for a job whose task returned `outcome` (a manifest, None, or an exception)."""
    failed = isinstance(outcome, BaseException)
    res: dict[str, Any] = {
        "status": "failed" if failed else "ok",
        "error": None,
        "overrides": parse_overrides(list(overrides or [])),
        "override_list": [o if not _SECRET.search(str(o).partition("=")[0]) else
                          str(o).partition("=")[0] + "=***" for o in (overrides or [])],
        "config_hash": None,
        "stage": None,
        "stage_dir": None,
        "stage_key": None,
        "upstream": {},
        "metrics": {},
        "counts": {},
        "seconds": None,
        "job": job or {},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if failed:
        res["error"] = {"type": type(outcome).__name__, "message": str(outcome),
                        "traceback": "".join(traceback.format_exception(type(outcome), outcome,
                                                                        outcome.__traceback__))[-8000:]}
    try:
        res["config_hash"] = config_hash(cfg)
        res["stage"] = str(cfg.stage.name)
    except Exception as e:  # noqa: BLE001 - a broken config must still leave a result
        res.setdefault("notes", []).append(f"config: {type(e).__name__}: {e}")
    try:
        who = identity(cfg)
        res["tracking"] = {"name": who["name"], "group": who["group"], "tags": [valid_tag(t) for t in tags_for(cfg)]}
    except Exception as e:  # noqa: BLE001 - an unresolvable group must not lose the result
        res.setdefault("notes", []).append(f"tracking: {type(e).__name__}: {e}")
    manifest = outcome if isinstance(outcome, Mapping) and "stage" in outcome else None
    found: dict[str, tuple[dict | None, Path]] = {}
    try:
        found = stage_manifests(cfg)
    except Exception as e:  # noqa: BLE001 - e.g. the config error that failed the job itself
        if not failed:
            res.setdefault("notes", []).append(f"stage dir: {type(e).__name__}: {e}")
    if res["stage"] in found:
        res["stage_dir"] = str(found[res["stage"]][1])
        manifest = manifest or found[res["stage"]][0]
    res["stage_dirs"] = {k: str(d) for k, (m, d) in found.items() if m is not None}
    if manifest:
        res["stage_key"] = manifest.get("key")
        res["upstream"] = dict(manifest.get("upstream") or {})
        res["counts"] = flatten(manifest.get("counts") or {})
        res["seconds"] = manifest.get("seconds")
    res["metrics"] = job_metrics(res["stage"], found, manifest)
    return res


def write_job_result(cfg: DictConfig, outcome: Any, output_dir: str | Path | None = None,
                     overrides: list[str] | None = None, job: dict | None = None) -> Path:
    """Write `<job output dir>/result.json` for a manifest (success) or an exception (failure).

    Outside a callback, `output_dir` and `overrides` default to what HydraConfig knows.
    """
    if output_dir is None or overrides is None:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        output_dir = output_dir or hc.runtime.output_dir
        overrides = list(hc.overrides.task) if overrides is None else overrides
    path = Path(output_dir) / RESULT
    atomic_write_json(path, build_result(cfg, outcome, overrides, job))
    return path


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


try:  # Hydra >= 1.1
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class JobResultCallback(_HydraCallback):
    """Hydra callback: result.json per job, sweep summary, distributed env, optional objective.

    objective: dotted path into result.json (e.g. `metrics.train_loss`); when set, the job's return
    value becomes that float, which is what the Optuna sweeper optimises (the task function itself
    returns None or a manifest).
    summary: refresh `<sweep dir>/summary.{md,csv}` after every job of a multirun.
    shared_upstream: under a submitit launcher (SLURM, submitit_local), build the stages every job
    shares in one job before the array starts (rationalign/sweep_upstream.py).
    """

    def __init__(self, objective: str | None = None, summary: bool = True, plots: bool = True,
                 shared_upstream: bool = True) -> None:
        self.objective = objective
        self.summary = summary
        self.plots = plots
        self.shared_upstream = shared_upstream

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.shared_upstream:  # submitit launchers: one job builds what every job shares, first
            from rationalign.sweep_upstream import prebuild

            prebuild(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        export_distributed_env()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        if not _is_rank_zero():
            return
        outcome = job_return._return_value  # the manifest, or the exception on failure (no re-raise)
        task_cfg = job_return.cfg if job_return.cfg is not None else config
        hc = config.hydra
        job = {"num": _get(hc, "job.num"), "id": _get(hc, "job.id"), "name": _get(hc, "job.name"),
               "output_dir": _get(hc, "runtime.output_dir"), "mode": str(_get(hc, "mode")),
               "slurm": slurm_job()}  # ids, array index, requeues: which SLURM job ran it
        try:
            path = write_job_result(task_cfg, outcome, job["output_dir"], list(job_return.overrides or []), job)
        except Exception:
            log.exception("could not write %s", RESULT)
            return
        if job_return.status == JobStatus.FAILED:
            log.error("job %s failed: %s: %s (recorded in %s)", job["num"], type(outcome).__name__, outcome, path)
        if self.objective and job_return.status == JobStatus.COMPLETED:
            import json

            value = _dig(json.loads(path.read_text()), self.objective)
            if value is None:
                job_return.status = JobStatus.FAILED
                job_return.return_value = KeyError(f"objective {self.objective!r} not found in {path}")
            else:
                job_return.return_value = float(value)
        if self.summary and "MULTIRUN" in job["mode"]:
            self._summarise(Path(str(_get(hc, "sweep.dir"))), plots=False)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.summary:
            self._summarise(Path(str(config.hydra.sweep.dir)), plots=self.plots)

    @staticmethod
    def _summarise(sweep_dir: Path, plots: bool) -> None:
        from rationalign.report_sweep import write_summary  # matplotlib only when a summary is due

        try:
            write_summary(sweep_dir, plots=plots)
        except Exception:
            log.exception("could not write the sweep summary under %s", sweep_dir)


def _get(cfg: DictConfig, dotted: str) -> Any:
    try:
        return OmegaConf.select(cfg, dotted, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - e.g. an unresolvable interpolation
        return None


def _dig(obj: Any, dotted: str) -> Any:
    """'metrics.train_loss' -> obj['metrics']['train_loss'] (metric names may contain dots)."""
    head, _, rest = dotted.partition(".")
    if not isinstance(obj, Mapping) or head not in obj:
        return None
    node = obj[head]
    if not rest:
        return node
    if isinstance(node, Mapping) and rest in node:
        return node[rest]
    return _dig(node, rest)
