"""stage=headroom: how much alignment could gain at most, measured on held-out inputs with gold.

Alignment distils the reward model's choice among the SFT model's samples into the policy. Before
believing (or blaming) an alignment result, compare on the dev split, for the SFT model:

- greedy: the SFT model's greedy suggestion (what evaluate scores);
- rm_best / rm_worst: among M samples per input (the sample stage's settings), the one the reward
  model scores highest / lowest: what D_H's winners and losers look like on inputs with gold;
- oracle_best: the sample with the best sentence metric against the gold (what a perfect reward
  model would pick: the ceiling of reranking);
- sample_mean: the corpus metric of the k-th sample, averaged over k (what sampling alone gives).

Each is the task's corpus metric on the same inputs, and `rm_best` is tested against `greedy` with
the report's significance test. rm_best well above greedy is headroom alignment can distil; rm_best
at or below greedy means D_H's winners are no better than what the policy already says.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rationalign.cfg_access import cache_dir, device_of
from rationalign.data.records import Record
from rationalign.data.splits import load_split, split_files
from rationalign.io import atomic_write_json
from rationalign.stages.base import Context, register_stage
from rationalign.stages.common import response_position, user_message

log = logging.getLogger("rationalign")


def headroom_records(cfg) -> list[Record]:
    split = str(cfg.headroom.split)
    records = [r for r in load_split(cfg, split) if r.gold]
    cap = cfg.headroom.max_inputs
    if cap is not None and len(records) > int(cap):
        records = sorted(records, key=lambda r: r.id)
        idx = np.random.default_rng(0).choice(len(records), int(cap), replace=False)
        records = [records[i] for i in sorted(idx)]
    return records


def headroom_table(cfg, records: list[Record], greedy: list[str], samples: list[list[str]],
                   rewards: list[list[float | None]]) -> dict:
    """Corpus metric per selection rule (module docstring); samples[i][k] and rewards[i][k] per input.
    A sample whose answer did not parse has reward None and falls back to the greedy suggestion."""
    from rationalign.scoring import sentence_score
    from rationalign.significance import compare
    from rationalign.stages.eval_stats import system_stats

    spec = lambda r: cfg.task.specs[r.task]

    def pick(i: int, key) -> str:
        ok = [k for k, rw in enumerate(rewards[i]) if rw is not None]
        return samples[i][key(ok, i)] if ok else greedy[i]

    choices = {
        "greedy": list(greedy),
        "rm_best": [pick(i, lambda ok, i: max(ok, key=lambda k: rewards[i][k])) for i in range(len(records))],
        "rm_worst": [pick(i, lambda ok, i: min(ok, key=lambda k: rewards[i][k])) for i in range(len(records))],
        "oracle_best": [max(samples[i] + [greedy[i]], key=lambda s: sentence_score(spec(r), r, s))
                        for i, r in enumerate(records)],
    }
    stats = {name: system_stats(cfg, records, _as_preds(records, sugg)) for name, sugg in choices.items()}
    m = len(samples[0]) if samples else 0
    per_k = [system_stats(cfg, records, _as_preds(records, [s[k] for s in samples])) for k in range(m)]
    out: dict = {"inputs": len(records), "samples_per_input": m, "columns": {}}
    for col in stats["greedy"]:
        cell = {name: st[col].score() for name, st in stats.items()}
        cell["sample_mean"] = float(np.mean([p[col].score() for p in per_k])) if per_k else None
        cell["metric"] = stats["greedy"][col].metric
        sig = cfg.evaluate.significance
        cell["rm_best_vs_greedy"] = compare(stats["rm_best"][col], stats["greedy"][col],
                                            int(sig.sign_test_resamples), int(sig.bootstrap_resamples),
                                            int(cfg.seed))
        out["columns"][col] = cell
    return out


def _as_preds(records: list[Record], suggestions: list[str]) -> dict[str, list[dict]]:
    return {"all": [{"id": r.id, "suggestion": s} for r, s in zip(records, suggestions)]}


@register_stage(
    "headroom",
    config_keys=("model", "task", "data", "prompts", "sample", "engine.sampling", "seed", "headroom",
                 "rationale.position", "rationale.name", "sft.use_rationale"),
    upstream=("sft", "reward"),
    input_files=lambda cfg: split_files(cfg, (str(cfg.headroom.split),)),
)
def run_headroom(ctx: Context, out: Path) -> dict:
    """Greedy vs reward-model best-of-M vs oracle best-of-M, corpus metric on the dev split."""
    from rationalign.engines import build_engine
    from rationalign.prompts import parse_response
    from rationalign.training.reward import RewardScorer

    cfg = ctx.cfg
    records = headroom_records(cfg)
    if not records:
        raise ValueError(f"stage headroom: no records with gold in split '{cfg.headroom.split}' "
                         f"for tasks {', '.join(cfg.task.names)}")
    pos = response_position(cfg)
    prompts = [user_message(cfg, r) for r in records]
    m, s = int(cfg.sample.m), cfg.engine.sampling
    with build_engine(cfg, adapter=ctx.require("sft") / "adapter") as engine:
        greedy_out = engine.generate(prompts, temperature=0, max_new_tokens=int(cfg.sample.max_new_tokens))
        sampled = engine.sample(prompts, n=m, temperature=float(s.temperature), top_p=float(s.top_p),
                                top_k=int(s.top_k), presence_penalty=float(s.presence_penalty),
                                max_new_tokens=min(int(s.max_new_tokens), int(cfg.sample.max_new_tokens)),
                                seed=int(cfg.seed))
    greedy = []
    for r, o in zip(records, greedy_out):
        p = parse_response(o, pos, cfg.prompts)
        greedy.append(p.suggestion or r.source)
    parsed = [[parse_response(o, pos, cfg.prompts) for o in outs] for outs in sampled]
    samples = [[p.suggestion or r.source for p in ps] for r, ps in zip(records, parsed)]
    scorer = RewardScorer.load(ctx.require("reward") / "rm", cache_dir=cache_dir(cfg), device=device_of(cfg),
                               batch_size=int(cfg.engine.batch_size))
    items = [(r.task, r.instruction, r.source, p.suggestion) for r, ps in zip(records, parsed) for p in ps if p.ok]
    flat = iter(scorer.score(items))
    rewards = [[float(next(flat)) if p.ok else None for p in ps] for ps in parsed]
    table = headroom_table(cfg, records, greedy, samples, rewards)
    table["split"] = str(cfg.headroom.split)
    atomic_write_json(out / "headroom.json", table)
    atomic_write_json(out / "samples.json", [{"id": r.id, "greedy": g, "samples": sm, "rewards": rw}
                                             for r, g, sm, rw in zip(records, greedy, samples, rewards)])
    return {"counts": {"inputs": len(records), "samples": sum(len(x) for x in samples),
                       "malformed": sum(not p.ok for ps in parsed for p in ps)}, "headroom": table}
