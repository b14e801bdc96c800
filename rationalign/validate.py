"""Every check of a composed config that needs no model, run before any stage starts.

Composition already checks keys and types against the dataclasses in config.py; `validate()`
adds the checks that need the registries (stage, loss, tasks, sources, judges) and, optionally,
reads every data split record by record, so a typo costs a second, not a model load.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    pass


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
    from rationalign.losses import LOSSES, REWARD_LOSSES, TOKEN_LOSSES

    # Each loss node against its registry entry's dataclass: an unknown name lists the known ones, an
    # unknown key lists the loss's own keys (loss.lam for dpo is an error, not an option reaching no code).
    for key, registry in (("loss", LOSSES), ("sft.loss", TOKEN_LOSSES), ("reward.loss", REWARD_LOSSES)):
        node = OmegaConf.select(cfg, key)
        name = node.get("name") if isinstance(node, DictConfig) else None
        if name not in registry:
            raise ConfigError(f"{key}.name={name}: unknown {registry.kind}; known: {', '.join(registry.names())}")
        try:
            registry.typed(node, where=key)
        except ValueError as e:
            raise ConfigError(str(e)) from None
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
    from rationalign.rationale import SOURCES, parse_config, source_options

    if rat.get("name") not in SOURCES:
        raise ConfigError(f"rationale.name={rat.get('name')}: unknown source; known: {', '.join(sorted(SOURCES))}")
    try:
        parse_config(rat["name"], source_options(rat))
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    from rationalign.judge.config import parse_judge_config
    from rationalign.rationale.pairs import parse_pair_rationale_config

    for key, parse in (("pair_rationale", parse_pair_rationale_config), ("judge", parse_judge_config)):
        try:
            parse(OmegaConf.to_container(cfg[key], resolve=True))
        except (ValueError, TypeError) as e:
            raise ConfigError(str(e)) from None
    from rationalign.engines.factory import ENGINES
    from rationalign.tracking import TRACKERS

    for key, registry in (("tracking.backend", TRACKERS), ("engine.name", ENGINES)):
        value = OmegaConf.select(cfg, key)
        if value not in registry:
            raise ConfigError(f"{key}={value}: expected one of {', '.join(registry)}")
    from rationalign.stages.evaluate import SYSTEMS

    for system in cfg.evaluate.systems:  # before base is generated, not after
        if system not in SYSTEMS and not str(system).startswith("path:"):
            raise ConfigError(f"evaluate.systems: unknown system '{system}' (known: {', '.join(SYSTEMS)}, "
                              "path:<adapter or model dir>)")
    if data:
        validate_data(cfg)


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

