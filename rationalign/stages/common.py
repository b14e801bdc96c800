"""Helpers shared by stages: prompts for records, model loading from config, tracking."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from rationalign.data.records import Record

log = logging.getLogger("rationalign")


def position(cfg: DictConfig) -> str:
    return str(cfg.rationale.get("position", "after"))


def with_rationale(cfg: DictConfig) -> bool:
    """Whether the writing assistant was trained to write a rationale: the one switch that SFT,
    sampling, alignment and evaluation all read, so every stage prompts and parses in the mode SFT
    trained with (sft.use_rationale=false trains, and so prompts, without one)."""
    sft = cfg.get("sft")
    use = True if sft is None else bool(sft.get("use_rationale", True))
    return use and cfg.rationale.name != "none" and position(cfg) != "none"


def response_position(cfg: DictConfig) -> str:
    """Where the rationale sits in the model's answer, "none" when it writes none (parse mode)."""
    return position(cfg) if with_rationale(cfg) else "none"


def layout(cfg: DictConfig):
    """How rendered prompts reach the model (prompts.layout: plain Table 8 text or the chat template)."""
    from rationalign.training.chat import Layout

    return Layout.from_cfg(cfg.prompts)


def user_message(cfg: DictConfig, record: Record, rationale: bool | None = None) -> str:
    """The writing assistant's rendered prompt for a record (Table 8 + Table 12 under prompts=paper)."""
    from rationalign.prompts import render_prompt

    rationale = with_rationale(cfg) if rationale is None else rationale
    return render_prompt(cfg.prompts, cfg.task.specs[record.task], record, with_rationale=rationale)


def completion(cfg: DictConfig, suggestion: str, rationale: str | None) -> str:
    from rationalign.prompts import format_response

    pos = position(cfg) if rationale else "none"
    return format_response(suggestion, rationale, pos, cfg.prompts)


def no_rationale_ctx(ctx):
    """The same run with rationale.position=none: the systems trained without rationale
    (sft_no_rationale, aligned_no_rationale) live under its stage keys."""
    from omegaconf import OmegaConf

    from rationalign.stages.base import Context

    cfg = OmegaConf.create(OmegaConf.to_container(ctx.cfg, resolve=False))
    OmegaConf.update(cfg, "rationale.position", "none")
    return Context(cfg=cfg, workdir=ctx.workdir)
