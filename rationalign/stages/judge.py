"""stage=judge: LLM-judge evaluation of the evaluate stage's predictions (or any directory laid out
like one): pairwise win rate with confidence intervals, 1-5 rubric scores, rationale accuracy.

Every judgement is stored with its prompt and raw answer(s) under judgements/; unparseable answers
are re-asked a bounded number of times and then counted, never guessed. Tables: judge.md, judge.json.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf

from rationalign.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from rationalign.stages.base import Context, register_stage

log = logging.getLogger("rationalign")


def judge_options(cfg) -> dict:
    node = cfg.get("judge")
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def judge_upstream(cfg) -> tuple[str, ...]:
    return () if judge_options(cfg).get("predictions_dir") else ("evaluate",)


def judge_inputs(cfg) -> list[str]:
    d = judge_options(cfg).get("predictions_dir")
    return [str(p) for p in sorted(Path(d).expanduser().glob("predictions/*/*.jsonl"))] if d else []


def _systems(cfg, jc) -> list[str]:
    systems = list(jc.systems) if jc.systems else list(cfg.evaluate.systems)
    for a, b in jc.comparisons or []:
        systems += [s for s in (a, b) if s not in systems]
    return systems


def _comparisons(jc, systems: list[str]) -> list[tuple[str, str]]:
    if jc.comparisons:
        return [(a, b) for a, b in jc.comparisons]
    return [(systems[-1], s) for s in systems[:-1]]


def _items(cfg, jc, preds: dict[str, dict[str, dict]]):
    from rationalign.data.eval_split import evaluated_split
    from rationalign.data.splits import load_split
    from rationalign.judge.items import Item

    split = evaluated_split(cfg)[0]  # the split stage=evaluate predicted
    common = set.intersection(*(set(p) for p in preds.values()))
    records = [r for r in load_split(cfg, split) if r.id in common]
    missing = common - {r.id for r in records}
    if missing:
        raise ValueError(f"judge: {len(missing)} predicted id(s) are not in the {split} split "
                         f"(data.{split}), e.g. {sorted(missing)[:3]}")
    from rationalign.prompts import choose_instruction

    by_task = defaultdict(list)
    for r in sorted(records, key=lambda r: r.id):
        # The task as the writing assistants were given it (the spec's instruction without the request
        # for an explanation, so systems with and without rationales are judged on the same task).
        instruction = choose_instruction(cfg.task.specs[r.task], r.id, with_rationale=False, fallback=r.instruction)
        by_task[r.task].append(Item(r.id, r.task, instruction, r.source))
    cap = jc.max_items
    return [it for items in by_task.values() for it in (items[:cap] if cap else items)]


@register_stage("judge", config_keys=("judge", "data", "task.names", "task.specs", "evaluate.systems", "seed"),
                upstream=judge_upstream, input_files=judge_inputs)
def run_judge(ctx: Context, out: Path) -> dict:
    """Pairwise win rate (k shuffled judgements), rubric scores and rationale accuracy by an LLM judge."""
    from rationalign.judge import accuracy, pairwise, rubric
    from rationalign.judge.config import parse_judge_config
    from rationalign.judge.parsing import parse_accuracy, parse_pairwise, parse_rubric
    from rationalign.judge.tables import render
    from rationalign.llm.asker import Asker

    cfg = ctx.cfg
    jc = parse_judge_config(judge_options(cfg))
    seed = int(cfg.seed)
    root = Path(jc.predictions_dir).expanduser() if jc.predictions_dir else ctx.require("evaluate")
    from rationalign.judge.items import load_predictions

    systems = _systems(cfg, jc)
    preds = {s: load_predictions(root / "predictions", s) for s in systems}
    items = _items(cfg, jc, preds)
    if not items:
        raise ValueError(f"judge: no inputs predicted by every system {systems} under {root / 'predictions'}")
    asker = Asker(jc, parse_retries=jc.parse_retries)
    lvl, nb = float(jc.ci_level), int(jc.bootstrap_samples)
    results: dict = {}
    all_rows: dict[str, list[dict]] = {}

    if jc.pairwise:
        results["pairwise"], rows = [], []
        for a, b in _comparisons(jc, systems):
            qs, metas, decided = pairwise.build(jc, a, b, items, preds, seed)
            got = pairwise.rows_of(asker.ask_all(qs, parse_pairwise, jc.repair_prompt, desc=f"judge {a} vs {b}"),
                                   metas) + decided
            rows += got
            results["pairwise"].append({"a": a, "b": b, **pairwise.aggregate(got, lvl, nb, seed)})
        all_rows["pairwise"] = rows
    if jc.rubric:
        results["rubric"], rows = {}, []
        aspects = list(jc.aspects)
        for s in systems:
            qs, metas = rubric.build(jc, s, items, preds[s])
            got = rubric.rows_of(asker.ask_all(qs, lambda t: parse_rubric(t, aspects), jc.repair_prompt,
                                               desc=f"rubric {s}"), metas)
            rows += got
            results["rubric"][s] = rubric.aggregate(got, aspects, lvl, nb, seed)
        all_rows["rubric"] = rows
    if jc.rationale_accuracy:
        results["rationale_accuracy"], rows = {}, []
        for s in systems:
            qs, metas, skipped = accuracy.build(jc, s, items, preds[s])
            got = accuracy.rows_of(asker.ask_all(qs, parse_accuracy, jc.repair_prompt, desc=f"accuracy {s}"), metas)
            rows += got
            results["rationale_accuracy"][s] = accuracy.aggregate(got, skipped, lvl)
        all_rows["rationale_accuracy"] = rows

    for kind, rows in all_rows.items():
        atomic_write_jsonl(out / "judgements" / f"{kind}.jsonl", rows)
    meta = {"model": jc.model, "base_url": jc.base_url, "k": jc.k, "ci_level": lvl, "aspects": list(jc.aspects),
            "field": jc.field, "systems": systems, "items": len(items), "predictions": str(root / "predictions")}
    atomic_write_json(out / "judge.json", {"meta": meta, "results": results})
    md = render(results, meta)
    atomic_write_text(out / "judge.md", md + "\n")
    print(md)
    counts = {"items": len(items), "systems": len(systems)}
    for kind, rows in all_rows.items():
        asked = [r for r in rows if not r.get("identical")]
        counts[kind] = {"judgements": len(asked), "unparsed": sum(1 for r in asked if (r["error"] or "").startswith("unparseable")),
                        "failed": sum(1 for r in asked if (r["error"] or "").startswith("request failed")),
                        "re_asked": sum(1 for r in asked if r.get("attempts", 0) > 1)}
    return {"counts": counts, "metrics": results, "report": str(out / "judge.md")}
