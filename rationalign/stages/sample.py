"""stage=sample: M responses (suggestion + rationale) per unlabeled input from the SFT model.

Work is cut into fixed shards of inputs, each written atomically and seeded by its own content,
so a run killed mid-way resumes at the first missing shard and ends with exactly the files an
uninterrupted run writes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rationalign.data.records import Record
from rationalign.data.splits import load_split, unlabeled_files
from rationalign.io import atomic_write_jsonl
from rationalign.stages.base import Context, register_stage
from rationalign.stages.common import response_position, user_message

log = logging.getLogger("rationalign")

def parse_candidates(cfg, texts: list[str]) -> list[dict]:
    from rationalign.prompts import parse_response

    pos = response_position(cfg)
    out = []
    for t in texts:
        p = parse_response(t, pos, cfg.prompts)
        out.append({"text": t, "suggestion": p.suggestion, "rationale": p.rationale, "ok": bool(p.ok),
                    "reason": p.reason})
    return out


def sample_records(ctx: Context, out: Path, records: list[Record], adapter_dir: Path, m: int) -> list[dict]:
    """Candidates for every record, shard by shard (resumable)."""
    cfg = ctx.cfg
    size = int(cfg.sample.shard_size)
    shards = [records[i: i + size] for i in range(0, len(records), size)]
    shard_dir = out / "shards"
    engine = None
    rows: list[dict] = []
    try:
        for s_idx, shard in enumerate(shards):
            path = shard_dir / f"{s_idx:05d}.jsonl"
            if not path.exists():
                if engine is None:
                    from rationalign.engines import build_engine

                    engine = build_engine(cfg, adapter=adapter_dir)
                s = cfg.engine.sampling
                texts = engine.sample([user_message(cfg, r) for r in shard], n=m, temperature=float(s.temperature),
                                      top_p=float(s.top_p), top_k=int(s.top_k),
                                      presence_penalty=float(s.presence_penalty),
                                      max_new_tokens=min(int(s.max_new_tokens), int(cfg.sample.max_new_tokens)),
                                      seed=int(cfg.seed) + s_idx)
                shard_rows = [{"id": r.id, "task": r.task, "instruction": r.instruction, "source": r.source,
                               "candidates": parse_candidates(cfg, t)} for r, t in zip(shard, texts)]
                atomic_write_jsonl(path, shard_rows)
                log.info("sample: shard %d/%d written", s_idx + 1, len(shards))
            rows.extend(json.loads(line) for line in path.read_text().splitlines())
    finally:
        if engine is not None:
            engine.close()
    return rows


@register_stage(
    "sample",
    generates=True,
    config_keys=("task.names", "data", "prompts", "sample", "engine.name", "engine.batch_size", "engine.prefill_once",
                 "engine.sampling", "seed", "rationale.position", "rationale.name", "sft.use_rationale"),
    upstream=("sft",),
    input_files=unlabeled_files,
)
def run_sample(ctx: Context, out: Path) -> dict:
    """Sample M candidates per unlabeled input and parse suggestion/rationale apart."""
    records = load_split(ctx.cfg, "unlabeled")
    if not records:
        raise ValueError("stage sample: no unlabeled inputs (data.unlabeled) for tasks "
                         + ", ".join(ctx.cfg.task.names))
    rows = sample_records(ctx, out, records, ctx.require("sft") / "adapter", int(ctx.cfg.sample.m))
    atomic_write_jsonl(out / "candidates.jsonl", rows)
    cands = [c for r in rows for c in r["candidates"]]
    reasons: dict[str, int] = {}
    for c in cands:
        if not c["ok"]:
            reasons[c["reason"] or "malformed"] = reasons.get(c["reason"] or "malformed", 0) + 1
    return {"counts": {"inputs": len(rows), "candidates": len(cands), "well_formed": sum(c["ok"] for c in cands),
                       "malformed": len(cands) - sum(c["ok"] for c in cands), "malformed_reasons": reasons}}
