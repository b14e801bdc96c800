"""Run a composed config: `compose(overrides)` gives the config `rationalign <overrides>` would
see, `run(cfg)` validates it and runs its stage (with upstream stages built as needed).

The command line (rationalign/cli.py), tests, notebooks and drivers all go through these two.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rationalign.components import import_components
from rationalign.config import conf_dir, register_configs, register_resolvers
from rationalign.validate import check_group_options, validate


def run(cfg: DictConfig, validated: bool = False) -> dict:
    from rationalign.job_metrics import final_metrics
    from rationalign.stages.base import STAGES, Context, run_stage
    from rationalign.tracking import log_summary, start_tracking

    import_components()
    if not validated:
        validate(cfg)
    from rationalign.distributed import check_launch

    check_launch()
    workdir = Path(cfg.paths.workdir)
    ctx = Context(cfg=cfg, workdir=workdir)
    with start_tracking(cfg) as tracker:
        manifest = run_stage(ctx, cfg.stage.name)
        if tracker is not None:  # the final report in the run's summary, named as in result.json
            log_summary(tracker, final_metrics(cfg, manifest))
    report = manifest.get("report")
    if report and Path(report).exists():  # also on a rerun that skipped every stage
        print(Path(report).read_text())
    if STAGES.get(cfg.stage.name).artifacts:
        print(f"[rationalign] stage {cfg.stage.name} -> {ctx.stage_dir(cfg.stage.name)}")
    return manifest


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config `rationalign <overrides>` would see (for tests, notebooks and drivers)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        from rationalign.quark.schedule import group_overrides

        overrides = group_overrides(list(overrides or []))
        check_group_options(overrides, conf_dir())
        return hydra_compose(config_name="config", overrides=overrides)
