"""A job's metrics, flat, under the names every consumer shares: result.json (rationalign.sweep), the
tracker's run summary (rationalign.runner -> rationalign.tracking) and the sweep table
(rationalign.report_sweep). The stage's manifest gives its own numbers; a pipeline job adds those of
its align and evaluate stages (prefixed), and an evaluate manifest adds the report's numbers
(rationalign.report_metrics: ALL, RM held-out accuracy, mean rewards, faithfulness).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rationalign.report_metrics import report_metrics


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': scalar}; lists and None are dropped (a table cell holds one number)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, name + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[name] = v
    return out


# A pipeline's own manifest may only list what it ran; its numbers live in these stages' manifests.
EXTRA_STAGES = {"pipeline": ("align", "evaluate")}


def stage_manifests(cfg: DictConfig) -> dict[str, tuple[dict | None, Path]]:
    """{stage: (manifest or None if unfinished, dir)} for the job's stage and its EXTRA_STAGES,
    found by content address, so it works whatever the task function returned."""
    from rationalign.components import import_components
    from rationalign.stages.base import MANIFEST, STAGES, Context

    import_components()
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    out = {}
    for name in (cfg.stage.name, *EXTRA_STAGES.get(cfg.stage.name, ())):
        if name != cfg.stage.name and name not in STAGES:
            continue
        d = ctx.stage_dir(name)
        m = d / MANIFEST
        out[name] = (json.loads(m.read_text()) if m.exists() else None), d
    return out


def job_metrics(stage: str | None, found: dict[str, tuple[dict | None, Path]], manifest: dict | None) -> dict:
    """A job's metrics, flat: its stage manifest's (no prefix), those of its EXTRA_STAGES (prefixed
    `<stage>.`), and for an evaluate manifest the report's numbers (rationalign.report_metrics: ALL,
    RM accuracy, mean rewards, faithfulness). The same dict goes to result.json and the wandb summary."""
    metrics = flatten(manifest.get("metrics") or {}) if manifest else {}
    if manifest and stage == "evaluate":
        metrics.update(report_metrics(manifest))
    for name, (m, _) in found.items():
        if name != stage and m:
            metrics.update(flatten(m.get("metrics") or {}, f"{name}."))
            if name == "evaluate":
                metrics.update(report_metrics(m, "evaluate."))
    return metrics


def final_metrics(cfg: DictConfig, manifest: dict | None) -> dict:
    """job_metrics of the job `cfg` after its stage returned `manifest` (for the tracker's summary)."""
    found = stage_manifests(cfg)
    stage = str(cfg.stage.name)
    return job_metrics(stage, found, manifest or (found.get(stage) or (None,))[0])
