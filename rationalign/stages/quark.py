"""stage=quark: QUARK-style multi-reward training of the writing assistant (MaRio, arXiv 2311.02805).

Round r: sample from the current policy on the labeled inputs (conditioned on the best bins of the
rewards it was trained with), score each sample with every configured reward, add the samples to
the pool, quantise the active rewards over the whole pool, and train on the pool with one control
token per active reward prepended to the input (CE + KL to the reference - entropy bonus).
Variants: canonical (all rewards from round 1) and additive (reward k joins in round k).

All rounds share one optimizer and one LR schedule (quark.sample_interval steps per round, one
linear schedule over quark.total_steps, as MaRio). Each finished round leaves
round_<r>/{pool_added.jsonl, adapter/, optimizer.pt, round.json}; a rerun resumes after the last
finished round with the same optimizer state and schedule. quark_rounds.json and the manifest carry the per-round report.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rationalign.cfg_access import cache_dir, device_of
from rationalign.data.records import load_records
from rationalign.data.splits import load_split, split_files
from rationalign.distributed import main_then_broadcast
from rationalign.io import atomic_write_json, atomic_write_jsonl
from rationalign.stages.base import Context, register_stage, seed_everything
from rationalign.stages.common import layout, with_rationale
from rationalign.stages.quark_policy import build_policy, save_policy
from rationalign.stages.quark_rounds import (
    contrast_check,
    evaluate_round,
    gold_rows,
    reward_means,
    sample_round,
    score_rows,
    train_prompt,
)

log = logging.getLogger("rationalign")

VARIANTS = ("canonical", "additive")


def active_rewards(variant: str, rewards: list[str], round_idx: int) -> list[str]:
    """Rewards whose control tokens condition training in round `round_idx` (1-based)."""
    if variant == "canonical":
        return list(rewards)
    if variant == "additive":
        return list(rewards[:max(1, min(round_idx, len(rewards)))])
    raise ValueError(f"quark.variant={variant!r}: expected one of {VARIANTS}")


def token_order(q) -> list[str]:
    rewards = list(q.rewards)
    order = list(q.token_order) if q.get("token_order") else rewards
    if sorted(order) != sorted(rewards):
        raise ValueError(f"quark.token_order={order}: must be a permutation of quark.rewards={rewards}")
    return order


def check_params(q) -> None:
    from rationalign.quark.rewards import REWARDS

    if q.variant not in VARIANTS:
        raise ValueError(f"quark.variant={q.variant!r}: expected one of {VARIANTS}")
    if not q.rewards or len(set(q.rewards)) != len(q.rewards):
        raise ValueError(f"quark.rewards={list(q.rewards)}: need distinct reward names")
    for r in q.rewards:
        if r not in REWARDS:
            raise ValueError(f"quark.rewards: unknown reward {r!r}; known: {', '.join(REWARDS.names())}")
    unknown = sorted(set(q.reward_options or {}) - set(q.rewards))
    if unknown:
        raise ValueError(f"quark.reward_options: {unknown} are not in quark.rewards")
    if int(q.rounds) < 1 or int(q.n_bins) < 1 or int(q.samples_per_input) < 1:
        raise ValueError("quark.rounds, quark.n_bins and quark.samples_per_input must be >= 1")
    from rationalign.quark.schedule import round_steps

    round_steps(q)
    if q.binning not in ("rank", "quantile"):
        raise ValueError(f"quark.binning={q.binning!r}: expected rank or quantile")
    if int(q.train.max_steps) > 0:
        raise ValueError(f"quark.train.max_steps={q.train.max_steps}: QUARK rounds train quark.sample_interval steps "
                         "each on one schedule of quark.total_steps; set those instead")
    if q.init not in ("sft", "base"):
        raise ValueError(f"quark.init={q.init!r}: expected sft or base")
    token_order(q)


def _needs_rm(cfg) -> bool:
    from rationalign.quark.rewards import REWARDS

    return any(r in REWARDS and REWARDS.get(r).needs_rm for r in cfg.quark.rewards)


def _seeds_gold(cfg) -> bool:
    return bool(cfg.quark.seed_pool_with_gold) and with_rationale(cfg)


def quark_upstream(cfg) -> tuple[str, ...]:
    import rationalign.quark.rewards  # noqa: F401  (the registry answers needs_rm)

    ups = []
    if cfg.quark.init == "sft":
        ups.append("sft")
    if _seeds_gold(cfg):
        ups.append("rationalize")
    if _needs_rm(cfg) and not cfg.quark.get("reward_dir"):
        ups.append("reward")
    return tuple(ups)


def quark_inputs(cfg) -> list[str]:
    """The labeled split it trains on and the split it evaluates each round on."""
    q = str(cfg.quark.eval_split)
    return split_files(cfg, ("labeled",) if q in ("none", "labeled") else ("labeled", q))


@register_stage(
    "quark",
    collective=True,  # trains: every rank of accelerate launch takes part
    generates=True,
    config_keys=("model", "task", "data", "prompts", "quark", "engine.name", "engine.batch_size",
                 "engine.prefill_once", "seed", "rationale.position", "rationale.name"),
    upstream=quark_upstream,
    input_files=quark_inputs,
)
def run_quark(ctx: Context, out: Path) -> dict:
    """QUARK multi-reward training rounds; the final policy in adapter/ (+ quark.json), report in quark_rounds.json."""
    from rationalign.quark.control import all_control_tokens, best_prefix, load_quark_policy
    from rationalign.quark.quantize import Pool
    from rationalign.quark.rewards import RewardEnv, build_reward
    from rationalign.quark.schedule import STATE, build_optimizer, load_state, round_steps, save_state, total_steps
    from rationalign.quark.trainer import QuarkExample, frozen_reference, train_quark

    cfg = ctx.cfg
    q = cfg.quark
    check_params(q)
    rewards_list, order, n_bins = list(q.rewards), token_order(q), int(q.n_bins)
    records = [r for r in load_split(cfg, "labeled") if r.target is not None]
    if not records:
        raise ValueError("stage quark: no labeled records for tasks " + ", ".join(cfg.task.names))
    by_id = {r.id: r for r in records}
    eval_records = [r for r in load_split(cfg, str(q.eval_split)) if r.gold] if q.eval_split != "none" else []

    rm_dir = None
    if _needs_rm(cfg):
        rm_dir = Path(q.reward_dir) if q.get("reward_dir") else ctx.require("reward") / "rm"
    env = RewardEnv(specs=cfg.task.specs, rm_dir=rm_dir, cache_dir=cache_dir(cfg), device=device_of(cfg))
    opts = {k: dict(v) for k, v in (q.reward_options or {}).items()}
    rewards = {name: build_reward(name, env, opts.get(name)) for name in rewards_list}

    # Resume after the last finished round.
    done = 0
    while (out / f"round_{done + 1}" / "round.json").exists() and done < int(q.rounds):
        done += 1
    tokens = all_control_tokens(rewards_list, n_bins)
    if done:
        model, tok = load_quark_policy(cfg.model, out / f"round_{done}" / "adapter", cache_dir(cfg), trainable=True)
        init_adapter = json.loads((out / f"round_{done}" / "adapter" / "quark.json").read_text())["init_adapter"]
        log.info("quark: resuming after round %d", done)
    else:
        model, tok, init_adapter = build_policy(cfg, ctx, tokens)
    reference = frozen_reference(model) if not done else None
    if reference is None and not hasattr(model, "disable_adapter"):
        raise ValueError("quark: resuming a full fine-tuning run loses its reference; use LoRA (model.lora.enabled)")
    model.to(device_of(cfg))
    if reference is not None:
        reference.to(device_of(cfg))
    # One optimiser and one LR schedule for every round (MaRio); a resumed run reloads both.
    steps = round_steps(q)
    opt, sched = build_optimizer(model, q)
    if done:
        load_state(out / f"round_{done}" / STATE, model, opt, sched)

    pool = Pool(dedup=bool(q.dedup))
    summaries = []
    for r in range(1, done + 1):
        pool.add(json.loads(x) for x in (out / f"round_{r}" / "pool_added.jsonl").read_text().splitlines())
        summaries.append(json.loads((out / f"round_{r}" / "round.json").read_text()))

    for r in range(done + 1, int(q.rounds) + 1):
        seed_everything(int(cfg.seed) + r)
        rdir = out / f"round_{r}"
        active = active_rewards(q.variant, rewards_list, r)
        # Round 1 samples the start policy unconditioned (it has never seen the tokens); later rounds
        # condition on the best bins of what the policy was trained with last round.
        prefix = "" if r == 1 else best_prefix(active_rewards(q.variant, rewards_list, r - 1), order, n_bins)
        seeded = gold_rows(cfg, load_records(ctx.require("rationalize") / "d_e.jsonl")) \
            if r == 1 and _seeds_gold(cfg) else []
        seeded = [x for x in seeded if x["id"] in by_id]

        def sample_and_score(prefix=prefix, r=r, seeded=seeded):
            new = sample_round(cfg, model, tok, records, prefix, r)
            kept = [x for x in new if x["completion"].strip()]
            score_rows(rewards, kept + seeded, by_id)
            return kept, seeded, len(new)

        # Under accelerate launch rank 0 samples and scores; every rank trains on the same pool.
        new, seeded, n_raw = main_then_broadcast(sample_and_score)
        # Pool hygiene (MaRio main_n_new.py:355-358 keeps only parsable answers; data_pool_n.py:181
        # keys the pool by (prompt, response)). The report still counts the policy's own samples.
        offered = seeded + [x for x in new if x["ok"] or not q.drop_malformed]
        size_before = len(pool)
        merged = pool.add(offered)
        atomic_write_jsonl(rdir / "pool_added.jsonl", offered)  # replayed through the same dedup on resume

        if not len(pool):
            raise ValueError(f"stage quark, round {r}: the pool is empty ({n_raw} samples: {n_raw - len(new)} empty, "
                             f"{len(new) - len(offered) + len(seeded)} malformed and dropped); seed it with the "
                             "training data (quark.seed_pool_with_gold=true) or keep malformed answers "
                             "(quark.drop_malformed=false)")
        bins, edges = pool.quantize(active, n_bins, method=str(q.binning), seed=int(cfg.seed))
        examples = [QuarkExample(train_prompt(x, b, order), x["user_message"], x["completion"])
                    for x, b in zip(pool.rows, bins)]
        stats = train_quark(model, tok, examples, q.train, rdir, steps=steps[r - 1], optimizers=(opt, sched),
                            kl_coef=float(q.kl_coef), entropy_coef=float(q.entropy_coef),
                            max_length=int(cfg.model.max_length), seed=int(cfg.seed) + r, reference=reference,
                            layout=layout(cfg), tracking=cfg.tracking, device=cfg.device)
        stats["schedule_step"] = int(sched.last_epoch)  # optimizer steps since round 1 began
        atomic_write_json(rdir / "train_log.json", stats.pop("log_history"))
        save_state(rdir / STATE, model, opt, sched)
        meta = {"rewards": rewards_list, "active_rewards": active, "token_order": order, "n_bins": n_bins,
                "variant": str(q.variant), "round": r, "init_adapter": init_adapter, "tokens": tokens}
        save_policy(model, tok, rdir / "adapter", meta)
        eval_prefix = best_prefix(active, order, n_bins)
        ev = main_then_broadcast(lambda p=eval_prefix: evaluate_round(cfg, model, tok, eval_records, p))
        contrast = main_then_broadcast(
            lambda a=active, r=r: contrast_check(cfg, model, tok, rewards, records, a, order, n_bins, r)) \
            if int(q.contrast_inputs) > 0 else None
        k = int(q.log_samples)
        summary = {
            "round": r, "active_rewards": active, "sampling_prefix": prefix, "eval_prefix": eval_prefix,
            "reward_means": reward_means(new, rewards_list),  # the policy's own samples this round (not gold)
            "gold_reward_means": reward_means(seeded, rewards_list),
            "pool_size": len(pool), "new_samples": len(new), "empty_outputs": n_raw - len(new),
            "malformed": sum(1 for x in new if not x["ok"]),
            "dropped_malformed": len(seeded) + len(new) - len(offered),
            "duplicates_merged": merged, "pool_added": len(pool) - size_before,
            "bins": edges, "schedule": {"name": str(q.schedule), "round_steps": steps[r - 1],
                                        "total_steps": total_steps(q), "warmup_steps": int(q.warmup_steps)},
            "train_prompt_example": examples[-1].prompt if examples else None,
            "train": stats, f"task_metric_{q.eval_split}": ev, "contrast": contrast,
            "samples": [{"id": x["id"], "suggestion": x["suggestion"], "rationale": x["rationale"],
                         "rewards": x["rewards"]} for x in new[:k]],
        }
        atomic_write_json(rdir / "round.json", summary)
        summaries.append(summary)
        log.info("quark round %d: rewards %s, pool %d, %s %s", r, summary["reward_means"], len(pool),
                 q.eval_split, ev.get("mean"))
        if contrast:
            log.info("quark round %d control-token contrast: best bins %s, worst bins %s", r,
                     contrast["best"], contrast["worst"])
        for s in summary["samples"]:
            log.info("quark round %d sample %s: %s", r, s["id"], (s["rationale"] or "")[:200])

    last = out / f"round_{int(q.rounds)}" / "adapter"
    save_policy(model, tok, out / "adapter", json.loads((last / "quark.json").read_text()))
    atomic_write_json(out / "quark_rounds.json", summaries)
    return {"counts": {"inputs": len(records), "rounds": len(summaries), "pool_size": len(pool),
                       "eval_records": len(eval_records),
                       "dropped_malformed": sum(s.get("dropped_malformed", 0) for s in summaries),
                       "duplicates_merged": sum(s.get("duplicates_merged", 0) for s in summaries)},
            "metrics": {"rounds": [{k: s.get(k) for k in ("round", "active_rewards", "reward_means", "pool_size",
                                                           f"task_metric_{q.eval_split}", "contrast")}
                                   for s in summaries]},
            "samples": {s["round"]: s["samples"] for s in summaries}}
