"""stage=pairs: score candidates' suggestions with the reward model, build D_H.

Paper Sec. 3.3: for every unlabeled input the best- and worst-rewarded candidates form a pair; only
the inputs whose winner reward r_w is in the top `pairs.keep_fraction` (20%) are kept. Every input
that yields no pair is counted with its reason.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from rationalign.cfg_access import cache_dir, device_of
from rationalign.io import atomic_write_jsonl
from rationalign.stages.base import Context, register_stage

log = logging.getLogger("rationalign")


def select_pairs(rows: list[dict], keep_fraction: float, min_gap: float = 0.0) -> tuple[list[dict], dict]:
    """rows carry candidates with a `reward`; returns (D_H rows, dropped-reason counts)."""
    dropped = {"fewer_than_two_well_formed": 0, "identical_suggestions": 0, "reward_gap_too_small": 0,
               "below_keep_fraction": 0}
    scored = []
    for row in rows:
        ok = [c for c in row["candidates"] if c["ok"] and c.get("reward") is not None]
        if len(ok) < 2:
            dropped["fewer_than_two_well_formed"] += 1
            continue
        if len({c["suggestion"] for c in ok}) < 2:
            dropped["identical_suggestions"] += 1
            continue
        # max/min with a stable tie-break on candidate order keeps reruns identical.
        w = max(ok, key=lambda c: c["reward"])
        lo = min(ok, key=lambda c: c["reward"])
        if w["reward"] - lo["reward"] <= min_gap or w["suggestion"] == lo["suggestion"]:
            dropped["reward_gap_too_small"] += 1
            continue
        scored.append({"id": row["id"], "task": row["task"], "instruction": row["instruction"],
                       "source": row["source"], "chosen": w["text"], "rejected": lo["text"],
                       "chosen_reward": w["reward"], "rejected_reward": lo["reward"],
                       "chosen_suggestion": w["suggestion"], "rejected_suggestion": lo["suggestion"]})
    n_keep = math.floor(keep_fraction * len(scored) + 0.5)
    scored.sort(key=lambda r: (-r["chosen_reward"], r["id"]))
    kept = sorted(scored[:n_keep], key=lambda r: r["id"])
    dropped["below_keep_fraction"] = len(scored) - len(kept)
    return kept, {"scored_inputs": len(scored), **dropped}


def d_h_statistics(d_h: list[dict]) -> dict:
    """What a researcher reads before trusting D_H: how many pairs, how far apart their rewards are
    (the MPO margin r_w - r_l), and how long winners and losers are (a length bias shows here)."""
    import numpy as np

    if not d_h:
        return {"pairs": 0}
    margin = np.array([p["chosen_reward"] - p["rejected_reward"] for p in d_h])
    q = lambda a: {k: float(np.quantile(a, v)) for k, v in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))}
    words = lambda key: float(np.mean([len(p[key].split()) for p in d_h]))
    return {"pairs": len(d_h), "margin": {"mean": float(margin.mean()), "min": float(margin.min()), **q(margin)},
            "chosen_reward_mean": float(np.mean([p["chosen_reward"] for p in d_h])),
            "rejected_reward_mean": float(np.mean([p["rejected_reward"] for p in d_h])),
            "chosen_words_mean": words("chosen_suggestion"), "rejected_words_mean": words("rejected_suggestion"),
            "source_words_mean": float(np.mean([len(p["source"].split()) for p in d_h]))}


def no_pairs_message(rows: list[dict], counts: dict, candidates: Path) -> str:
    """Why D_H is empty, in numbers, and what to change."""
    cands = [c for r in rows for c in r["candidates"]]
    malformed = sum(not c["ok"] for c in cands)
    reasons: dict[str, int] = {}
    for c in cands:
        if not c["ok"]:
            reasons[c.get("reason") or "malformed"] = reasons.get(c.get("reason") or "malformed", 0) + 1
    tied = counts["identical_suggestions"] + counts["reward_gap_too_small"]
    why = (f"{malformed} of {len(cands)} samples were malformed ({reasons or 'none'}), "
           f"{counts['fewer_than_two_well_formed']} of {len(rows)} inputs had fewer than two well-formed samples, "
           f"{tied} had tied samples (identical suggestions or reward gap <= pairs.min_reward_gap)")
    fix = ("train SFT longer (sft.train.epochs, sft.train.lr), sample more (sample.m, sample.max_new_tokens), "
           "sample hotter (engine.sampling.temperature) or add unlabeled inputs; "
           + ("rationale.position=none drops the rationale format the samples break; " if malformed else "")
           + f"the samples are in {candidates}")
    return f"stage pairs: no preference pairs from {len(rows)} inputs ({counts}): {why}. To get pairs: {fix}"


@register_stage(
    "pairs",
    config_keys=("pairs", "prompts", "task.names"),
    upstream=("sample", "reward"),
)
def run_pairs(ctx: Context, out: Path) -> dict:
    """Reward-score every well-formed suggestion; best vs worst per input; keep the top fraction."""
    from rationalign.training.reward import RewardScorer

    cfg = ctx.cfg
    rows = [json.loads(line) for line in (ctx.require("sample") / "candidates.jsonl").read_text().splitlines()]
    scorer = RewardScorer.load(ctx.require("reward") / "rm", cache_dir=cache_dir(cfg), device=device_of(cfg),
                               batch_size=int(cfg.engine.batch_size))
    items, where = [], []
    for i, row in enumerate(rows):
        for j, c in enumerate(row["candidates"]):
            if c["ok"]:
                items.append((row["task"], row["instruction"], row["source"], c["suggestion"]))
                where.append((i, j))
    rewards = scorer.score(items)
    for (i, j), r in zip(where, rewards):
        rows[i]["candidates"][j]["reward"] = float(r)
    atomic_write_jsonl(out / "scored.jsonl", rows)
    d_h, counts = select_pairs(rows, float(cfg.pairs.keep_fraction), float(cfg.pairs.min_reward_gap))
    if not d_h:
        raise ValueError(no_pairs_message(rows, counts, ctx.stage_dir("sample") / "candidates.jsonl"))
    atomic_write_jsonl(out / "d_h.jsonl", d_h)
    return {"counts": {"inputs": len(rows), "scored_candidates": len(items), "pairs": len(d_h), **counts},
            "d_h": d_h_statistics(d_h)}
