"""stage=evaluate with `evaluate.rationale_decoding=grounded`: each system's predictions with
rationales that explain the edits its suggestion makes (rationalign/rationale/grounded.py).

The suggestion is the one free decoding gives (greedy, same prompt), so when the free run of the same
config has already written a task's predictions they are read instead of decoded again; only the
reasons are decoded. A system that writes no rationale (sft_no_rationale) keeps its free predictions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import OmegaConf

from rationalign.data.records import Record
from rationalign.stages.base import Context

log = logging.getLogger("rationalign")


def free_context(ctx: Context) -> Context:
    """The same run with free decoding (and the grounded-only option at its default): its evaluate dir."""
    from rationalign.config import EvaluateParams

    cfg = OmegaConf.create(OmegaConf.to_container(ctx.cfg, resolve=False))
    OmegaConf.update(cfg, "evaluate.rationale_decoding", "free")
    OmegaConf.update(cfg, "evaluate.reason_max_new_tokens", EvaluateParams.reason_max_new_tokens)
    return Context(cfg=cfg, workdir=ctx.workdir)


def free_predictions(ctx: Context, system: str, task: str) -> tuple[Path, list[dict]] | None:
    """The free run's predictions of one system and task, when that file exists (written atomically)."""
    path = free_context(ctx).stage_dir("evaluate") / "predictions" / system / f"{task}.jsonl"
    if not path.exists():
        return None
    return path, [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def grounded_rows(ctx: Context, engine, system: str, task: str, records: list[Record], prompts: list[str],
                  position: str, free_rows: Callable[[], list[dict]]) -> list[dict]:
    """Prediction rows {id, output, suggestion, rationale, ok, reason, ...} of one system and task.
    `free_rows()` decodes them freely (used for systems without a rationale, when no free run exists)."""
    from rationalign.rationale.grounded import grounded_answers

    found = free_predictions(ctx, system, task)
    by_id = {}
    if found is not None:
        path, rows = found
        by_id = {r["id"]: r for r in rows}
        if any(r.id not in by_id for r in records):
            by_id = {}
        else:
            log.info("evaluate: %s/%s suggestions read from the free run %s", system, task, path)
    if position == "none":
        return [by_id[r.id] for r in records] if by_id else free_rows()
    e = ctx.cfg.evaluate
    answers = grounded_answers(engine, prompts, [r.source for r in records], [r.task for r in records],
                               [r.instruction for r in records], position=position, prompts_cfg=ctx.cfg.prompts,
                               max_new_tokens=int(e.max_new_tokens), reason_max_new_tokens=int(e.reason_max_new_tokens),
                               outputs=[by_id[r.id]["output"] for r in records] if by_id else None)
    return [{"id": r.id, "output": a.output, "suggestion": a.suggestion, "rationale": a.rationale, "ok": a.ok,
             "reason": a.reason, "suggestion_output": a.suggestion_output, "suggestion_reused": bool(by_id),
             "rationale_items": [s.to_dict() for s in a.sentences]} for r, a in zip(records, answers)]
