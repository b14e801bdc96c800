"""The one entrypoint: `rationalign [overrides]` (= python -m rationalign), a @hydra.main app.

Composition validates keys and types against the dataclasses in config.py; `validate()` then
checks the values that need the registries (stage, loss, tasks, metrics) — all before any model
loads, so a typo costs a second, not a model load.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from rationalign.config import conf_dir, register_configs, register_resolvers

log = logging.getLogger("rationalign")

CONF_DIR = conf_dir()  # the checkout's conf/, or rationalign/conf inside an installed wheel


class ConfigError(ValueError):
    pass


def import_components() -> None:
    """Import every module that registers a stage/loss/source, so the registries are complete."""
    import importlib
    import pkgutil

    import rationalign.rationale  # noqa: F401  (registers the sources)
    import rationalign.stages as stages_pkg

    for m in pkgutil.iter_modules(stages_pkg.__path__):
        importlib.import_module(f"rationalign.stages.{m.name}")


def validate(cfg: DictConfig, data: bool = True) -> None:
    """Every check that needs no model: schema (unknown keys, ranges, enums), registries, prompts,
    sources and, with `data`, every split file read record by record. Raises ConfigError."""
    from rationalign.config import schema_errors
    from rationalign.stages.base import STAGES

    errors = schema_errors(cfg)
    if errors:
        raise ConfigError("; ".join(errors))
    if cfg.stage.name not in STAGES:
        raise ConfigError(f"stage={cfg.stage.name}: unknown stage; known: {', '.join(STAGES.names())}")
    missing = [t for t in cfg.task.names if t not in cfg.task.specs]
    if missing:
        raise ConfigError(f"task.names: no spec for {missing}; known: {sorted(cfg.task.specs)}")
    try:
        from rationalign.losses import LOSSES
    except ImportError:  # losses module not built yet
        LOSSES = None
    if LOSSES is not None and cfg.loss.kind == "preference" and cfg.loss.name not in LOSSES:
        raise ConfigError(f"loss.name={cfg.loss.name}: unknown loss; known: {', '.join(sorted(LOSSES))}")
    if cfg.stage.name in ("align", "pipeline") and cfg.loss.kind != "preference":
        raise ConfigError(f"loss={cfg.loss.name} is not a preference loss (kind {cfg.loss.kind}); stage=align needs one "
                          f"of {', '.join(sorted(LOSSES or []))}" + ("; QUARK trains through stage=quark"
                                                                      if cfg.loss.kind == "quark" else ""))
    for name in ("labeled", "unlabeled", "test"):
        path = cfg.data.get(name)
        if cfg.data.format == "records" and path and not Path(path).exists():
            raise ConfigError(f"data.{name}: file not found: {path}")
        if cfg.data.format != "records":
            from rationalign.data.configured import configured_specs

            try:
                configured_specs(cfg, name)
            except (ValueError, FileNotFoundError, KeyError) as e:
                raise ConfigError(str(e)) from None
    from rationalign.prompts import PromptConfigError, validate_prompts

    try:
        validate_prompts(cfg.prompts)  # layout and template placeholders, before any model loads
    except PromptConfigError as e:
        raise ConfigError(str(e)) from None
    if cfg.model.source == "hf" and not cfg.model.path:
        raise ConfigError("model.path: required when model.source=hf (a hub id or a local directory)")
    rat = OmegaConf.to_container(cfg.rationale, resolve=True)
    if rat.get("position", "after") not in ("after", "before", "none"):
        raise ConfigError(f"rationale.position={rat.get('position')}: expected after, before or none")
    if rat.get("on_error", "fail") not in ("fail", "skip"):
        raise ConfigError(f"rationale.on_error={rat.get('on_error')}: expected fail or skip")
    from rationalign.rationale.base import SOURCES, parse_config

    if rat.get("name") not in SOURCES:
        raise ConfigError(f"rationale.name={rat.get('name')}: unknown source; known: {', '.join(sorted(SOURCES))}")
    try:
        parse_config(rat["name"], source_options(rat))
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    from rationalign.judge.config import parse_judge_config
    from rationalign.pair_rationale.config import parse_pair_rationale_config

    for key, parse in (("pair_rationale", parse_pair_rationale_config), ("judge", parse_judge_config)):
        try:
            parse(OmegaConf.to_container(cfg[key], resolve=True))
        except (ValueError, TypeError) as e:
            raise ConfigError(str(e)) from None
    if cfg.tracking.backend not in ("none", "wandb"):
        raise ConfigError(f"tracking.backend={cfg.tracking.backend}: expected none or wandb")
    if cfg.engine.name not in ("hf", "vllm"):
        raise ConfigError(f"engine.name={cfg.engine.name}: expected hf or vllm")
    for system in cfg.evaluate.systems:  # before base is generated, not after
        if system not in KNOWN_SYSTEMS and not str(system).startswith("path:"):
            raise ConfigError(f"evaluate.systems: unknown system '{system}' (known: {', '.join(KNOWN_SYSTEMS)}, "
                              "path:<adapter or model dir>)")
    if data:
        validate_data(cfg)


KNOWN_SYSTEMS = ("base", "sft", "sft_no_rationale", "aligned", "quark")


def validate_data(cfg: DictConfig) -> None:
    """Read every configured split in full, so a bad record in data.test fails now, not after
    training. data=hub is read by its own stage-time builder (downloads) and skipped here."""
    if cfg.data.format == "hub":
        return
    from rationalign.data.records import DataConfigError, RecordError
    from rationalign.data.splits import SPLITS, load_split

    for split in SPLITS:
        try:
            load_split(cfg, split)
        except (RecordError, DataConfigError, FileNotFoundError) as e:
            raise ConfigError(str(e)) from None


def source_options(rationale: dict) -> dict:
    """The rationale node minus the keys that belong to the stage, not the source."""
    return {k: v for k, v in rationale.items() if k not in ("position", "on_error")}


def run(cfg: DictConfig, validated: bool = False) -> dict:
    from rationalign.stages.base import STAGES, Context, run_stage
    from rationalign.tracking import start_tracking

    import_components()
    if not validated:
        validate(cfg)
    from rationalign.distributed import check_launch

    check_launch()
    workdir = Path(cfg.paths.workdir)
    ctx = Context(cfg=cfg, workdir=workdir)
    with start_tracking(cfg):
        manifest = run_stage(ctx, cfg.stage.name)
    report = manifest.get("report")
    if report and Path(report).exists():  # also on a rerun that skipped every stage
        print(Path(report).read_text())
    if STAGES.get(cfg.stage.name).artifacts:
        print(f"[rationalign] stage {cfg.stage.name} -> {ctx.stage_dir(cfg.stage.name)}")
    return manifest


register_resolvers()
register_configs()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    logging.getLogger("rationalign").setLevel(logging.INFO)
    try:
        import_components()
        validate(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        sys.exit(2)
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or _multirun():
        run(cfg, validated=True)  # the traceback (and, in a sweep, Hydra's per-job failure record)
        return
    try:
        run(cfg, validated=True)
    except Exception as e:  # one line naming what failed; the traceback behind HYDRA_FULL_ERROR=1
        log.debug("stage failed", exc_info=True)
        print(f"error: {one_line(e)}  (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, (ValueError, RuntimeError, OSError)) else f"{type(e).__name__}: {text}"


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def entrypoint() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rationalign.argv_guard import guard_argv

    guard_argv(sys.argv[1:])  # before Hydra writes .hydra/*.yaml
    from rationalign.distributed import relaunch_cpu_processes
    from rationalign.quark.schedule import group_overrides

    sys.argv[1:] = group_overrides(sys.argv[1:])  # quark.schedule=<name> selects the preset group
    relaunch_cpu_processes(sys.argv[1:])
    main()


if __name__ == "__main__":
    entrypoint()


def compose(overrides: list[str] | None = None) -> DictConfig:
    """The config `rationalign <overrides>` would see (for tests, notebooks and drivers)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        from rationalign.quark.schedule import group_overrides

        return hydra_compose(config_name="config", overrides=group_overrides(list(overrides or [])))
