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


def check_group_options(overrides: list[str], conf: str | Path) -> None:
    """`group=option` on the command line names a file conf/<group>/<option>.yaml. Hydra ignores an
    unknown option of an optional group (`experiment=smok` ran the defaults); this refuses it, and any
    other unknown option, in one line with the closest names."""
    import difflib

    for arg in overrides:
        key, eq, value = arg.lstrip("+~").partition("=")
        group = Path(conf) / key
        if not eq or "." in key or key.startswith("hydra") or not group.is_dir():
            continue
        if any(c in value for c in "()[]{}$"):  # sweeps (choice(...), range(...)), interpolations
            continue
        known = sorted(p.stem for p in group.glob("*.yaml"))
        for option in value.split(","):  # a,b: a multirun over both
            if option in known or option == "null":
                continue
            close = difflib.get_close_matches(option, known, n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ConfigError(f"{key}={option}: no such {key} preset{hint}; known: {', '.join(known)}")


def validate(cfg: DictConfig, data: bool = True) -> None:
    """Every check that needs no model: schema (unknown keys, ranges, enums), registries, prompts,
    sources and, with `data`, what this machine must have for the run: every split file read record by
    record, the engine installed (vLLM), predict's texts. Raises ConfigError."""
    from rationalign.config import schema_errors
    from rationalign.stages.base import STAGES

    errors = schema_errors(cfg)
    if errors:
        raise ConfigError("; ".join(errors))
    from rationalign.data.eval_split import settle

    settle(cfg)  # evaluate.split=auto -> dev (multirun) or test, before any stage key is computed
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
    from rationalign.data.splits import SPLITS

    for name in SPLITS:
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
        check_engine(cfg)
        validate_data(cfg)
        check_predict_inputs(cfg)


def stages_to_run(cfg: DictConfig) -> list[str]:
    """The stage and everything upstream of it (some may be up to date and will not run)."""
    from rationalign.stages.base import STAGES

    seen: list[str] = []
    todo = [str(cfg.stage.name)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.append(name)
            todo.extend(STAGES.get(name).upstream_of(cfg))
    return seen


def check_engine(cfg: DictConfig) -> None:
    """engine=vllm without vLLM installed fails now, not after the stages before the first one that
    generates (the K-fold models would train first)."""
    if cfg.engine.name != "vllm":
        return
    from rationalign.stages.base import STAGES

    generating = [s for s in stages_to_run(cfg) if STAGES.get(s).generates_with(cfg)]
    if not generating:
        return
    from rationalign.engines.vllm import import_vllm

    try:
        import_vllm()
    except ImportError as e:
        raise ConfigError(f"{e}; needed by stage {', '.join(generating)}") from None


def check_predict_inputs(cfg: DictConfig) -> None:
    """stage=predict's texts, read and bounded (predict.max_chars) before the model loads."""
    if cfg.stage.name != "predict":
        return
    from rationalign.assistant import PredictInputError
    from rationalign.stages.predict import predict_items

    class PredictConfigError(ConfigError, PredictInputError):
        """Both: the CLI prints a ConfigError in one line; callers of run() catch PredictInputError."""

    try:
        predict_items(cfg)
    except PredictInputError as e:
        raise PredictConfigError(str(e)) from None


def validate_data(cfg: DictConfig) -> None:
    """Read every split the run needs in full, so a bad record in data.test fails now, not after
    training; a run that evaluates dev never opens the test files (eval_split.needed_splits).
    data=hub is read by its own stage-time builder (downloads) and skipped here."""
    from rationalign.data.eval_split import needed_splits
    from rationalign.data.records import DataConfigError, RecordError
    from rationalign.data.splits import load_split, split_files

    try:
        splits = needed_splits(cfg)  # a sweep without a dev split fails here
    except (RecordError, DataConfigError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from None
    if cfg.data.format == "hub":
        return
    stages = stages_to_run(cfg)
    needed = splits_read_by(cfg, stages)
    for split in splits:
        try:
            records = load_split(cfg, split)
        except (RecordError, DataConfigError, FileNotFoundError) as e:
            raise ConfigError(str(e)) from None
        if split in needed and not records:
            raise ConfigError(f"data.{split}: no records for task(s) {', '.join(cfg.task.names)} in "
                              f"{', '.join(split_files(cfg, (split,)))}, and stage {needed[split]} reads them")
        if split == "labeled" and "kfold" in stages and int(cfg.kfold.k) > len(records):
            raise ConfigError(f"kfold.k={cfg.kfold.k}: more folds than the {len(records)} labeled records the kfold "
                              f"stage gets (task={','.join(cfg.task.names)}, data.max_labeled_per_task="
                              f"{cfg.data.max_labeled_per_task}); lower kfold.k or add labeled records")


def splits_read_by(cfg: DictConfig, stages: list[str]) -> dict[str, str]:
    """{split: first of `stages` that reads it}: a stage reads the splits whose files key it."""
    from rationalign.data.splits import SPLITS, split_files
    from rationalign.stages.base import STAGES

    out: dict[str, str] = {}
    for name in stages:
        stage = STAGES.get(name)
        files = set(stage.input_files(cfg)) if stage.input_files else set()
        for split in SPLITS:
            if split not in out and files & set(split_files(cfg, (split,))):
                out[split] = name
    return out

