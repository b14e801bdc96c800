"""stage=align: preference optimisation of the writing assistant on D_H (mpo, dpo, cpo, simpo, ...)."""

from __future__ import annotations

import logging
from pathlib import Path

from rationalign.cfg_access import cache_dir
from rationalign.io import atomic_write_json, sha256_file, sha256_json
from rationalign.stages.base import Context, register_stage
from rationalign.stages.common import layout, with_rationale

log = logging.getLogger("rationalign")


def _init(cfg) -> str:
    init = str(cfg.align.get("init", "sft"))
    if init not in ("sft", "base"):
        raise ValueError(f"align.init={init!r}: expected 'sft' or 'base'")
    return init


def _pairs_stage(cfg) -> str:
    """A loss that needs the preference rationale (rdpo, rorpo) trains on D_H enriched by stage pair_rationales."""
    from rationalign.losses import LOSSES

    return "pair_rationales" if LOSSES.entry(str(cfg.loss.name)).needs_rationale else "pairs"


def align_upstream(cfg):
    ups = ("sft",) if _init(cfg) == "sft" else ()
    return ups if cfg.align.get("pairs") else ups + (_pairs_stage(cfg),)


def align_inputs(cfg) -> list[str]:
    return [cfg.align.pairs] if cfg.align.get("pairs") else []


def user_messages(cfg, pairs, path: Path) -> list[str]:
    """The WA's prompt per pair: the raw prompt (user layout) or the task's rendered Table 8 prompt."""
    from rationalign.prompts import render_prompt

    out = []
    for p in pairs:
        if p.prompt is not None:
            out.append(p.prompt)
            continue
        if p.task not in cfg.task.specs:
            raise ValueError(f"{path}: pair {p.id}: field 'task': {p.task!r} has no spec in task.specs "
                             f"(known: {sorted(cfg.task.specs)})")
        rec = {"id": p.id, "source": p.source, "instruction": p.instruction}
        out.append(render_prompt(cfg.prompts, cfg.task.specs[p.task], rec, with_rationale=with_rationale(cfg)))
    return out


def _adapter_identity(adapter_dir: Path) -> str:
    """Content hash of a saved adapter: the reference cache follows the weights, not the path."""
    files = sorted(p for p in adapter_dir.glob("*.safetensors")) or sorted(adapter_dir.glob("*.bin"))
    return sha256_json([sha256_file(f) for f in files])


@register_stage(
    "align",
    collective=True,  # trains: every rank of accelerate launch takes part
    config_keys=("model", "task", "prompts", "loss", "align", "seed", "rationale.position", "rationale.name",
                 "sft.use_rationale"),
    upstream=align_upstream,
    input_files=align_inputs,
)
def run_align(ctx: Context, out: Path) -> dict:
    """Preference optimisation from the SFT adapter with cfg.loss; adapter saved under adapter/."""
    from omegaconf import OmegaConf

    from rationalign.models import load_for_training, save_model
    from rationalign.training.pairs_io import load_pref_pairs
    from rationalign.training.preference import DEFAULT_RATIONALE_TEMPLATE, setup_for, train_preference

    cfg = ctx.cfg
    setup = setup_for(cfg.loss)
    path = Path(cfg.align.pairs) if cfg.align.get("pairs") else ctx.require(_pairs_stage(cfg)) / "d_h.jsonl"
    pairs = load_pref_pairs(path, need_rewards=setup.with_rewards, need_rationale=setup.with_rationale)
    messages = user_messages(cfg, pairs, path)

    init_adapter = None
    identity = {"model": OmegaConf.to_container(cfg.model, resolve=True)}
    if _init(cfg) == "sft":
        init_adapter = ctx.require("sft") / "adapter"
        if not (init_adapter / "adapter_config.json").exists():
            raise ValueError(f"{init_adapter}: align needs the SFT LoRA adapter (model.lora.merge=false in sft)")
        identity["init"] = _adapter_identity(init_adapter)
    model, tok = load_for_training(cfg.model, cache_dir(cfg), init_adapter=init_adapter)

    ref_cache = cache_dir(cfg) / "reference_logps" if cfg.align.cache_reference else None
    stats = train_preference(
        model, tok, pairs, messages, cfg.loss, cfg.align.train, out,
        max_length=int(cfg.model.max_length), seed=int(cfg.seed), tracking=cfg.tracking, device=cfg.device,
        reference_cache=ref_cache, model_identity=identity, reference_mode=str(cfg.align.reference),
        rationale_template=cfg.align.rationale_template or DEFAULT_RATIONALE_TEMPLATE, layout=layout(cfg),
        shared_prompt=bool(cfg.align.get("shared_prompt", True)), logits_chunk=int(cfg.align.get("logits_chunk", 0)),
    )
    save_model(model, tok, out / "adapter", merge=bool(cfg.model.lora.merge))
    atomic_write_json(out / "train_log.json", stats.pop("log_history"))
    counts = {"pairs": len(pairs), "with_rationale": sum(1 for p in pairs if p.rationale),
              "with_rewards": sum(1 for p in pairs if p.chosen_reward is not None)}
    return {"counts": counts, "metrics": stats, "pairs_file": str(path)}
