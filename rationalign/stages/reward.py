"""stage=reward: the Bradley-Terry reward model r_phi on the K-fold RM pairs (paper Sec. 3.2)."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from rationalign.cfg_access import cache_dir
from rationalign.io import atomic_write_json, atomic_write_jsonl
from rationalign.stages.base import Context, register_stage

log = logging.getLogger("rationalign")


def reward_upstream(cfg):
    # An explicit pairs file replaces the kfold stage entirely.
    return () if cfg.reward.get("pairs") else ("kfold",)


def reward_inputs(cfg) -> list[str]:
    return [cfg.reward.pairs] if cfg.reward.get("pairs") else []


def _pairs_path(ctx: Context) -> Path:
    if ctx.cfg.reward.get("pairs"):
        return Path(ctx.cfg.reward.pairs)
    return ctx.require("kfold") / "rm_pairs.jsonl"


def no_rm_pairs_message(ctx: Context) -> str:
    """Why the K-fold stage gave the reward model nothing to learn from, and what to change."""
    import json

    kdir = ctx.stage_dir("kfold")
    counts = json.loads((kdir / "manifest.json").read_text()).get("counts", {})
    return (f"stage reward: the kfold stage made no reward-model pairs from {counts.get('labeled', '?')} labeled "
            f"records (dropped: {counts.get('dropped')}): every record's samples were malformed or tied on the task "
            "metric. To get pairs: more labeled records (data.max_labeled_per_task), more samples "
            "(kfold.n_samples), longer K-fold training (kfold.train.epochs, kfold.train.lr), or a pairs file "
            f"(reward.pairs=...); the samples are in {kdir}/fold_*/samples.jsonl")


@register_stage(
    "reward",
    collective=True,  # trains: every rank of accelerate launch takes part
    config_keys=("model", "task", "prompts", "reward", "seed"),
    upstream=reward_upstream,
    input_files=reward_inputs,
)
def run_reward(ctx: Context, out: Path) -> dict:
    """Reward model (1-logit head + LoRA, BT loss); saved under rm/, held-out pairwise accuracy in metrics."""
    from rationalign.models import load_for_training, save_model
    from rationalign.training.pairs_io import load_rm_pairs
    from rationalign.training.reward import RMTemplate, split_heldout, train_reward, write_meta

    cfg = ctx.cfg
    path = _pairs_path(ctx)
    if not cfg.reward.get("pairs") and not path.read_text().strip():
        raise ValueError(no_rm_pairs_message(ctx))
    pairs = load_rm_pairs(path)
    unknown = sorted({p.task for p in pairs if p.task is not None and p.task not in cfg.task.specs})
    if unknown:
        raise ValueError(f"{path}: field 'task': {unknown} have no spec in task.specs "
                         f"(known: {sorted(cfg.task.specs)}); compose with the matching task=")
    template = RMTemplate.from_cfg(cfg.prompts, cfg.task)
    pairs, below_gap = apply_min_gap(pairs, float(cfg.reward.min_metric_gap), path)
    train_pairs, held = split_heldout(pairs, float(cfg.reward.heldout_fraction), int(cfg.seed))
    max_length = int(cfg.model.max_length)
    rm_dir = out / "rm"

    # One adapter per task (App. B.4) or one shared RM ("*").
    if cfg.reward.per_task_adapters:
        groups = sorted({p.task or "*" for p in pairs})
    else:
        groups = ["*"]
    metrics, adapters, outcomes = {}, {}, []
    for g in groups:
        tr = [p for p in train_pairs if g == "*" or (p.task or "*") == g]
        he = [p for p in held if g == "*" or (p.task or "*") == g]
        model, tok = load_for_training(cfg.model, cache_dir(cfg), head="score")
        sub = "adapter" if g == "*" else f"adapter-{g}"
        stats = train_reward(model, tok, tr, he, template, cfg.reward.train, out / sub,
                             max_length=max_length, seed=int(cfg.seed), tracking=cfg.tracking, device=cfg.device,
                             loss_cfg=cfg.reward.loss)
        atomic_write_json(out / f"train_log{'' if g == '*' else '-' + g}.json", stats.pop("log_history"))
        outcomes += [{"id": p.id, "task": p.task, "source": p.source if p.source is not None else p.prompt,
                      "correct": c} for p, c in zip(he, stats.pop("heldout_correct"))]
        save_model(model, tok, rm_dir / sub, merge=bool(cfg.model.lora.merge))
        adapters[g] = sub
        metrics[g] = stats
    write_meta(rm_dir, cfg.model, template, adapters, max_length)
    atomic_write_jsonl(out / "heldout.jsonl", outcomes)
    heldout = {**heldout_summary(outcomes, int(cfg.seed)), "min_metric_gap": float(cfg.reward.min_metric_gap)}
    counts = {"pairs": len(pairs), "below_min_metric_gap": below_gap, "train_pairs": len(train_pairs), "heldout_pairs": len(held),
              "by_task": dict(Counter(p.task or "*" for p in pairs)), "adapters": len(adapters)}
    log.info("reward: %s; held-out %s", {g: (m["train_loss"], m["heldout_accuracy"]) for g, m in metrics.items()},
             heldout)
    return {"counts": counts, "metrics": metrics["*"] if groups == ["*"] else metrics, "heldout": heldout,
            "pairs_file": str(path)}


def apply_min_gap(pairs: list, gap: float, path: Path) -> tuple[list, int]:
    """Pairs whose chosen and rejected metric scores differ by more than `gap`, and how many were not."""
    if gap <= 0:
        return pairs, 0
    unscored = [i for i, p in enumerate(pairs) if p.chosen_score is None or p.rejected_score is None]
    if unscored:
        raise ValueError(f"{path}: line {unscored[0] + 1}: reward.min_metric_gap={gap} needs 'chosen_score' and "
                         "'rejected_score' on every pair")
    kept = [p for p in pairs if p.chosen_score - p.rejected_score > gap]
    return kept, len(pairs) - len(kept)


def heldout_summary(outcomes: list[dict], seed: int) -> dict:
    """Pairwise accuracy of the trained RM on pairs from inputs it never trained on (split_heldout
    splits by input), all adapters pooled, with a 95% bootstrap interval that resamples inputs."""
    from rationalign.metrics.stats import bootstrap_ci

    if not outcomes:
        return {"accuracy": None, "ci": None, "pairs": 0, "inputs": 0}
    correct = [1.0 if o["correct"] else 0.0 for o in outcomes]
    inputs = [(o["task"], o["source"]) for o in outcomes]  # pairs of one input share its source
    lo, hi = bootstrap_ci(correct, groups=inputs, seed=seed)
    return {"accuracy": sum(correct) / len(correct), "ci": [lo, hi], "pairs": len(correct),
            "inputs": len(set(inputs)), "ci_method": "percentile bootstrap over inputs, 10000 resamples"}
