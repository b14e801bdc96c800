"""Which split stage=evaluate reads (evaluate.split), and which splits a run reads at all.

    auto  test in a single run, dev under Hydra multirun: a sweep chooses settings, so it must not
          see the test set (docs/sweeps.md); the chosen setting is then evaluated on test alone
    dev   the held-out dev split (data.dev, data.local.dev, data.hub.dev)
    test  the test split; when the config names no test data at all, dev is evaluated instead,
          with a logged note and `test_missing_reason` in the evaluate manifest

`settle(cfg)` writes the resolved value into cfg.evaluate.split before any stage key is computed
(rationalign.validate calls it), so a single run's `auto` and an explicit `test` share one
evaluate stage dir, and the manifest and result.json say which split was evaluated.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from rationalign.data.records import DataConfigError

log = logging.getLogger("rationalign")


def is_multirun() -> bool:
    """True inside a job of `rationalign -m ...` (any launcher, any sweeper)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return False
    return HydraConfig.get().mode == RunMode.MULTIRUN


def requested_split(cfg: DictConfig) -> str:
    """evaluate.split with auto resolved: dev under multirun, test otherwise."""
    split = str(OmegaConf.select(cfg, "evaluate.split", default="auto"))
    if split == "auto":
        return "dev" if is_multirun() else "test"
    return split


def settle(cfg: DictConfig) -> str:
    """Resolve evaluate.split=auto in place (once per run, before stage keys); returns it."""
    split = requested_split(cfg)
    if OmegaConf.select(cfg, "evaluate.split") != split:
        OmegaConf.update(cfg, "evaluate.split", split)
    return split


def has_split(cfg: DictConfig, split: str) -> bool:
    """Whether the config names any data for `split` (for the selected tasks); reads no file."""
    if cfg.data.format == "records":
        return bool(cfg.data.get(split))
    from rationalign.data.configured import configured_specs

    return bool(configured_specs(cfg, split))


def evaluated_split(cfg: DictConfig) -> tuple[str, str | None]:
    """(the split stage=evaluate reads, why the test set is missing or None)."""
    split = requested_split(cfg)
    where = {"records": "data.{s}", "local": "data.local.{s}", "hub": "data.hub.{s}"}[str(cfg.data.format)]
    if split == "dev" and not has_split(cfg, "dev"):
        why = ("a multirun evaluates dev (evaluate.split=auto or dev under -m)" if is_multirun()
               else "evaluate.split=dev")
        raise DataConfigError(f"{where.format(s='dev')}: no dev split is configured, and {why}; give one "
                              f"(docs/sweeps.md), or set evaluate.split=test to evaluate on the test set on purpose")
    if split == "test" and not has_split(cfg, "test"):
        named = ("is not set" if cfg.data.format == "records"
                 else f"gives no data for tasks {list(cfg.task.names)}")
        reason = f"no test set was given ({where.format(s='test')} {named})"
        if not has_split(cfg, "dev"):
            raise DataConfigError(f"{where.format(s='test')}: {reason}, and no dev split either: nothing to evaluate")
        return "dev", reason
    return split, None


def eval_files(cfg: DictConfig) -> list[str]:
    """The files of the split stage=evaluate reads: the only data its stage key hashes."""
    from rationalign.data.splits import split_files

    return split_files(cfg, (evaluated_split(cfg)[0],))


def evaluates(cfg: DictConfig) -> bool:
    """Whether this run's stage is, or builds, stage=evaluate (the pipeline ends with it; judge
    reads its predictions)."""
    return str(cfg.stage.name) in ("evaluate", "pipeline", "judge")


def needed_splits(cfg: DictConfig) -> tuple[str, ...]:
    """The splits a run reads (what rationalign.validate reads in full): labeled and unlabeled, plus
    the evaluated split; a run that evaluates test also reads dev when one is configured (kept
    apart, for a dev section beside the test report). Under dev the test split is never read,
    unless a stage is told to read it (quark.eval_split=test, show_prompts.split=test,
    headroom.split=test)."""
    splits = ["labeled", "unlabeled"]
    if evaluates(cfg):
        evaluated = evaluated_split(cfg)[0]  # a missing dev split fails here, before any model loads
    else:  # the split a later evaluate would read, when there is one (a bad record fails early)
        evaluated = requested_split(cfg) if has_split(cfg, requested_split(cfg)) else None
    if evaluated == "test" and has_split(cfg, "dev"):
        splits.append("dev")
    if evaluated:
        splits.append(evaluated)
    asked = {str(cfg.quark.eval_split)} if _runs_quark(cfg) else set()
    if str(cfg.stage.name) == "show_prompts":
        asked.add(str(cfg.show_prompts.split))
    if str(cfg.stage.name) == "headroom" or (evaluates(cfg) and cfg.evaluate.diagnostics):
        asked.add(str(cfg.headroom.split))  # the reranking headroom's inputs (stages/headroom.py)
    splits += [s for s in ("dev", "test") if s in asked]
    return tuple(dict.fromkeys(splits))


def _runs_quark(cfg: DictConfig) -> bool:
    return str(cfg.stage.name) == "quark" or "quark" in list(cfg.evaluate.systems)
