"""Experiment tracking: wandb (offline unless the user opts in) or nothing.

`tracking.backend` picks a tracker from TRACKERS: a context manager cfg -> run (or None).

The config sent to wandb goes through `redact`, so anything that looks like a secret never
leaves the process; API keys themselves are only ever read from the environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rationalign.registry import Registry
from rationalign.run_identity import identity, loss_tags
from rationalign.secrets import SECRET_KEY as _SECRET_KEY  # the one shared list

TRACKERS: Registry = Registry("tracker")  # tracking.backend -> contextmanager(cfg) yielding a run or None


def redact(obj: Any) -> Any:
    """Copy of a config container with secret-looking values masked (names ending _env are kept)."""
    if isinstance(obj, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) and v else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def tags_for(cfg: DictConfig) -> list[str]:
    return [f"loss:{cfg.loss.name}", f"task:{'+'.join(cfg.task.names)}", f"model:{cfg.model.name}",
            f"rationale:{cfg.rationale.name}", *loss_tags(cfg), *list(cfg.tracking.tags)]


WANDB_TAG_MAX = 64  # wandb refuses a run whose tags are empty or longer


def valid_tag(tag: str) -> str:
    """A wandb tag (1-64 characters) for any tag: a longer one keeps its start and gets a hash of the
    whole, so two long tags stay apart (task=all's 'task:gec+fluency+...' is 85 characters)."""
    import hashlib

    tag = str(tag).strip() or "-"
    if len(tag) <= WANDB_TAG_MAX:
        return tag
    digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
    return f"{tag[:WANDB_TAG_MAX - 9]}~{digest}"


def log_summary(run: Any, metrics: dict[str, Any]) -> None:
    """The run's final numbers (rationalign.report_metrics names) into its summary, where the
    dashboard's run table and sweep views compare runs; numbers only."""
    if run is None:
        return
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        run.summary.update(numbers)


@contextlib.contextmanager
def start_tracking(cfg: DictConfig) -> Iterator[Any]:
    """The configured tracker's run (None without one), opened on rank 0 only: one run per job."""
    from rationalign.distributed import is_main

    if not is_main():
        yield None
        return
    with TRACKERS.get(str(cfg.tracking.backend))(cfg) as run:
        yield run


@TRACKERS.register("none")
@contextlib.contextmanager
def _no_tracker(cfg: DictConfig) -> Iterator[None]:
    yield None


@TRACKERS.register("wandb")
@contextlib.contextmanager
def _wandb_tracker(cfg: DictConfig) -> Iterator[Any]:
    import wandb

    os.environ.setdefault("WANDB_MODE", cfg.tracking.mode)
    os.environ["WANDB_PROJECT"] = cfg.tracking.project
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("task", None)  # long prompt texts; the task names are in the tags
    who = identity(cfg)  # in a sweep: named by its swept overrides, grouped by its sweep
    run = wandb.init(project=cfg.tracking.project, entity=cfg.tracking.entity, group=who["group"],
                     mode=cfg.tracking.mode, config=redact(container), tags=[valid_tag(t) for t in tags_for(cfg)],
                     name=who["name"], reinit="finish_previous",
                     dir=None if os.environ.get("WANDB_DIR") else who["dir"])
    try:
        yield run
    finally:
        run.finish()
