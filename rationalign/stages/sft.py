"""stage=sft: the writing assistant on D_E (suggestion then rationale, order configurable)."""

from __future__ import annotations

import logging
from pathlib import Path

from rationalign.cfg_access import cache_dir
from rationalign.data.records import load_records
from rationalign.data.splits import labeled_files, load_split
from rationalign.io import atomic_write_json
from rationalign.stages.base import Context, register_stage
from rationalign.stages.common import completion, layout, user_message, with_rationale

log = logging.getLogger("rationalign")


def _uses_rationale(cfg) -> bool:
    return with_rationale(cfg)  # reads sft.use_rationale too (stages/common.py)


def sft_upstream(cfg):
    return ("rationalize",) if _uses_rationale(cfg) else ()


def sft_examples(cfg, records):
    from rationalign.training.sft import SFTExample

    use_r = _uses_rationale(cfg)
    out = []
    for r in records:
        rationale = r.rationale if use_r else None
        out.append(SFTExample(user_message(cfg, r, rationale=use_r), completion(cfg, r.target, rationale)))
    return out


@register_stage(
    "sft",
    collective=True,  # trains: every rank of accelerate launch takes part
    config_keys=("model", "task", "data", "prompts", "sft", "seed", "rationale.position"),
    upstream=sft_upstream,
    input_files=labeled_files,
)
def run_sft(ctx: Context, out: Path) -> dict:
    """Supervised fine-tuning of the writing assistant (LoRA adapter saved under adapter/)."""
    from rationalign.models import load_for_training, save_model
    from rationalign.training.sft import train_sft

    cfg = ctx.cfg
    if _uses_rationale(cfg):
        records = load_records(ctx.require("rationalize") / "d_e.jsonl")
    else:
        records = load_split(cfg, "labeled")
    records = [r for r in records if r.target is not None]
    if not records:
        raise ValueError("stage sft: no labeled records for tasks " + ", ".join(cfg.task.names))
    examples = sft_examples(cfg, records)
    model, tok = load_for_training(cfg.model, cache_dir(cfg))
    stats = train_sft(model, tok, examples, cfg.sft.train, out, max_length=int(cfg.model.max_length),
                      seed=int(cfg.seed), layout=layout(cfg), tracking=cfg.tracking, device=cfg.device,
                      loss_cfg=cfg.sft.loss)
    save_model(model, tok, out / "adapter", merge=bool(cfg.model.lora.merge))
    history = stats.pop("log_history")
    atomic_write_json(out / "train_log.json", history)
    return {"counts": {"records": len(records), "with_rationale": sum(1 for r in records if r.rationale)},
            "metrics": stats}
