"""stage=evaluate: greedy generation on the evaluated split (evaluate.split: test, or dev in a sweep)
for each system, suggestion-only scoring, and the Table 1 report. Predictions are saved per system and task, so rescoring never regenerates.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rationalign.cfg_access import cache_dir, device_of
from rationalign.data.eval_split import eval_files, evaluated_split
from rationalign.data.records import Record
from rationalign.data.splits import load_split
from rationalign.io import atomic_write_jsonl
from rationalign.stages import eval_stats
from rationalign.stages.base import Context, register_stage
from rationalign.stages.common import no_rationale_ctx, response_position, user_message
from rationalign.stages.eval_stats import column_of, metric_inputs

log = logging.getLogger("rationalign")


# Systems trained without rationale: the stage that makes each, run under rationale.position=none.
NO_RATIONALE_SYSTEMS = {"sft_no_rationale": "sft", "aligned_no_rationale": "align"}
SYSTEMS = ("base", "sft_no_rationale", "sft", "aligned_no_rationale", "aligned", "quark")


def _system_stage(name: str) -> str | None:
    return {"sft": "sft", "aligned": "align", "quark": "quark"}.get(name)


def evaluate_upstream(cfg) -> tuple[str, ...]:
    from rationalign.stages.diagnostics import diagnostics_upstream

    ups = [s for s in (_system_stage(n) for n in cfg.evaluate.systems) if s]
    if cfg.evaluate.diagnostics:
        ups += diagnostics_upstream(cfg.evaluate.systems)
    if cfg.evaluate.analyses and "reward" not in ups and any(n != "base" for n in cfg.evaluate.systems):
        ups.append("reward")
    return tuple(dict.fromkeys(ups))


def no_rationale_keys(ctx: Context) -> dict[str, str]:
    """Stage keys of the systems trained without rationale (their own configuration), so a change
    that retrains them also gives evaluate a new key."""
    names = [n for n in ctx.cfg.evaluate.systems if n in NO_RATIONALE_SYSTEMS]
    if ctx.cfg.evaluate.diagnostics and "sft_no_rationale" in names:
        names.append("headroom")
    if not names:
        return {}
    sub = no_rationale_ctx(ctx)
    return {n: sub.key(NO_RATIONALE_SYSTEMS.get(n, n)) for n in names}


def resolve_system(ctx: Context, name: str) -> tuple[Path | None, Any]:
    """(adapter or model dir, config whose prompt format the system was trained with)."""
    if name == "base":
        return None, ctx.cfg
    if name in NO_RATIONALE_SYSTEMS:  # the same pipeline with rationale.position=none (own stage keys)
        sub = no_rationale_ctx(ctx)
        return sub.require(NO_RATIONALE_SYSTEMS[name]) / "adapter", sub.cfg
    if name.startswith("path:"):
        return Path(name[5:]), ctx.cfg
    stage = _system_stage(name)
    if stage is None:
        raise ValueError(f"evaluate.systems: unknown system '{name}' ({', '.join(SYSTEMS)}, path:<dir>)")
    return ctx.require(stage) / "adapter", ctx.cfg


def describe_system(cfg, name: str) -> str:
    """One line saying what a report row is, so comparison rows (MPO vs QUARK, ...) read unambiguously."""
    if name == "base":
        return f"{cfg.model.name}, zero-shot"
    if name == "sft_no_rationale":
        return "SFT on suggestions only (rationale.position=none)"
    if name == "aligned_no_rationale":
        return (f"SFT on suggestions only + preference optimisation (loss={cfg.loss.name}) on pairs sampled from "
                "it and scored by the same reward model (rationale.position=none)")
    if name == "sft":
        return f"SFT, rationale {response_position(cfg)}"
    if name == "aligned":
        return f"SFT + preference optimisation, loss={cfg.loss.name}"
    if name == "quark":
        q = cfg.quark
        return (f"SFT + QUARK multi-reward ({q.variant}, {q.rounds} rounds, rewards {', '.join(q.rewards)}), "
                "conditioned on the best bins")
    return f"model dir {name[5:]}" if name.startswith("path:") else name


def generate_predictions(ctx: Context, out: Path, system: str, records: list[Record]) -> dict[str, list[dict]]:
    """{task: [{id, output, suggestion, rationale, ok}]}; per-task files are reused when present."""
    from rationalign.prompts import parse_response
    from rationalign.responses import parse_stopped_response

    by_task: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_task[r.task].append(r)
    result, todo = {}, []
    for task, recs in by_task.items():
        path = out / "predictions" / system / f"{task}.jsonl"
        if path.exists():
            result[task] = [json.loads(line) for line in path.read_text().splitlines()]
        else:
            todo.append(task)
    if not todo:
        return result
    from rationalign.engines import build_engine
    from rationalign.quark.control import inference_prefix, is_quark_dir

    model_dir, sys_cfg = resolve_system(ctx, system)
    # QUARK policies answer conditioned on the best bin of every reward; prefix is "" otherwise.
    prefix = inference_prefix(model_dir) if is_quark_dir(model_dir) else ""
    pos = response_position(sys_cfg)
    marker = OmegaConf.select(ctx.cfg, "prompts.response.rationale_marker") or "Explanation:"
    stopped = bool(ctx.cfg.evaluate.stop_at_rationale) and pos == "after"
    stop = [marker] if stopped else None
    with build_engine(ctx.cfg, adapter=model_dir) as engine:
        for task in todo:
            recs = by_task[task]
            prompts = [prefix + user_message(sys_cfg, r) for r in recs]

            def free_rows(recs=recs, prompts=prompts) -> list[dict]:
                outs = engine.generate(prompts, temperature=0, max_new_tokens=int(ctx.cfg.evaluate.max_new_tokens),
                                       stop=stop)
                rows = []
                for r, o in zip(recs, outs):
                    # Stopped at the marker, a well-formed answer ends "<suggestion>\n<marker>" (no rationale).
                    p = parse_stopped_response(o, ctx.cfg.prompts) if stopped else parse_response(o, pos, ctx.cfg.prompts)
                    # A malformed answer is still scored on what it proposes (the text before any marker);
                    # an empty suggestion scores as "no change" rather than being dropped.
                    suggestion = p.suggestion if p.suggestion else r.source
                    rows.append({"id": r.id, "output": o, "suggestion": suggestion, "rationale": p.rationale,
                                 "ok": bool(p.ok), "reason": p.reason})
                return rows

            if ctx.cfg.evaluate.rationale_decoding == "grounded":  # rationales from the suggestion's edits
                from rationalign.stages.evaluate_grounded import grounded_rows

                rows = grounded_rows(ctx, engine, system, task, recs, prompts, pos, free_rows)
            else:
                rows = free_rows()
            atomic_write_jsonl(out / "predictions" / system / f"{task}.jsonl", rows)
            result[task] = rows
    return result


def score_column(metric_names: list[str], recs: list[Record], preds: list[str]) -> dict:
    from rationalign.metrics import get_metric

    cell: dict[str, Any] = {"n": len(recs)}
    for i, m in enumerate(metric_names):
        if m == "formality":
            cell["formality"] = float(get_metric("formality")(None, preds)["score"])
            continue
        res = get_metric(m)(*metric_inputs(m, recs, preds))
        if i == 0:
            cell["score"] = float(res["score"])
            cell["metric"] = m
            if "signature" in res:
                cell["signature"] = res["signature"]
        else:
            cell[m] = float(res["score"])
    return cell


def m2_tokenization(cfg, records: list[Record]) -> dict[str, dict]:
    """Per report column read from M2: how the model's input was detokenised and its output
    retokenised before M2 scoring (the M2 reader's options, rationalign.tokenization)."""
    out: dict[str, dict] = {}
    for r in records:
        tk = (r.meta or {}).get("m2_tokenization")
        if tk:
            out.setdefault(column_of(cfg.task.specs[r.task], r),
                           {k: v for k, v in tk.items() if k != "source_tokens"})
    return out


def score_system(cfg, records: list[Record], preds: dict[str, list[dict]]) -> dict[str, dict]:
    by_id = {p["id"]: p for rows in preds.values() for p in rows}
    cells = {}
    for col, recs in eval_stats.column_groups(cfg, records).items():
        spec = cfg.task.specs[recs[0].task]
        names = list(spec.report_metrics) or [spec.metric]
        cells[col] = score_column(names, recs, [by_id[r.id]["suggestion"] for r in recs])
        cells[col]["malformed"] = sum(1 for r in recs if not by_id[r.id]["ok"])
    return cells


def sentence_scores(cfg, records: list[Record], all_preds: dict[str, dict]) -> dict[str, dict[str, float]]:
    """system -> record id -> the task's primary metric of that system's suggestion (scoring.py)."""
    from rationalign.scoring import sentence_score

    memo: dict[tuple[str, str], float] = {}
    out: dict[str, dict[str, float]] = {}
    for system, preds in all_preds.items():
        by_id = {p["id"]: p["suggestion"] for rows in preds.values() for p in rows}
        out[system] = {}
        for r in records:
            key = (r.id, by_id[r.id])
            if key not in memo:
                memo[key] = sentence_score(cfg.task.specs[r.task], r, by_id[r.id])
            out[system][r.id] = memo[key]
    return out


def _pearson_or_none(x: list[float], y: list[float]) -> float | None:
    from rationalign.metrics.stats import pearson

    try:
        return pearson(x, y)
    except ValueError:  # fewer than 2 points or a constant side: undefined, reported as N.A.
        return None


def reward_model_analysis(ctx: Context, records: list[Record], all_preds: dict[str, dict],
                          metric: dict[str, dict[str, float]]) -> dict | None:
    """The RM against the metric on the test split (paper Sec. 5), plus its held-out accuracy.

    Held-out: the reward stage's pairwise accuracy on K-fold pairs from inputs the RM never trained
    on. Test outputs: every distinct suggestion of the trained systems per input; base zero-shot
    outputs (a different distribution: long, lowest metric) are left out of these figures and shown
    apart through each system's mean reward. Pearson is per task (metrics differ in scale), then
    averaged over tasks.
    """
    from rationalign.stages.base import MANIFEST
    from rationalign.training.reward import RewardScorer

    rm_dir = ctx.stage_dir("reward") / "rm"
    if not rm_dir.exists():
        return None
    manifest = ctx.stage_dir("reward") / MANIFEST
    heldout = (json.loads(manifest.read_text()).get("heldout") if manifest.exists() else None) or {}
    scorer = RewardScorer.load(rm_dir, cache_dir=cache_dir(ctx.cfg), device=device_of(ctx.cfg))
    by_id = {r.id: r for r in records}
    sugg = {s: {p["id"]: p["suggestion"] for rows in preds.values() for p in rows} for s, preds in all_preds.items()}
    keys = list(dict.fromkeys((r.id, sugg[s][r.id]) for s in all_preds for r in records))
    rewards = dict(zip(keys, scorer.score([(by_id[i].task, by_id[i].instruction, by_id[i].source, x)
                                           for i, x in keys])))
    systems = {s: {"mean_reward": sum(rewards[(r.id, sugg[s][r.id])] for r in records) / len(records),
                   "mean_metric": sum(metric[s][r.id] for r in records) / len(records)} for s in all_preds}

    trained = [s for s in all_preds if s != "base"]
    agree = ties = inputs = 0
    points: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in records:
        pts = {sugg[s][r.id]: (rewards[(r.id, sugg[s][r.id])], metric[s][r.id]) for s in trained}
        for rw, mt in pts.values():
            points[r.task][0].append(rw)
            points[r.task][1].append(mt)
        if len(pts) < 2:
            continue
        w, lo = max(pts.values()), min(pts.values())
        if w[1] == lo[1] or w[0] == lo[0]:
            ties += 1
            continue
        inputs += 1
        agree += w[1] > lo[1]
    per_task = {t: _pearson_or_none(*xy) for t, xy in sorted(points.items())}
    defined = [v for v in per_task.values() if v is not None]
    return {
        "heldout_accuracy": heldout.get("accuracy"), "heldout_accuracy_ci": heldout.get("ci"),
        "heldout_pairs": heldout.get("pairs", 0), "heldout_inputs": heldout.get("inputs", 0),
        "heldout_ci_method": heldout.get("ci_method"), "heldout_min_metric_gap": heldout.get("min_metric_gap", 0.0),
        "test_outputs": {"systems": trained, "inputs": inputs, "ties": ties,
                         "agreement": agree / inputs if inputs else None,
                         "points": sum(len(x) for x, _ in points.values()),
                         "pearson_per_task": per_task,
                         "pearson_mean": sum(defined) / len(defined) if defined else None},
        "systems": systems,
    }


def edit_analysis(records: list[Record], all_preds: dict[str, dict]) -> dict:
    """Edits each system proposes (errant) and their precision against the gold edits."""
    from rationalign.metrics.errant_f import score as errant_score

    out = {}
    recs = [r for r in records if r.gold]
    for system, preds in all_preds.items():
        by_id = {p["id"]: p for rows in preds.values() for p in rows}
        res = errant_score([r.source for r in recs], [by_id[r.id]["suggestion"] for r in recs],
                           [r.gold for r in recs])
        out[system] = {"proposed": int(res["tp"] + res["fp"]), "tp": int(res["tp"]),
                       "precision": (res["tp"] / (res["tp"] + res["fp"])) if res["tp"] + res["fp"] else None}
    return out


def faithfulness_analysis(records: list[Record], all_preds: dict[str, dict]) -> dict:
    """Edit coverage and rationale precision of each system's rationales, per task and overall
    (rationalign.metrics.faithfulness); None for a system that stored no rationale."""
    from rationalign.metrics.faithfulness import corpus_faithfulness

    out: dict[str, Any] = {}
    for system, preds in all_preds.items():
        by_id = {p["id"]: p for rows in preds.values() for p in rows}
        rows = [(r, by_id[r.id]) for r in records]
        if not any(p.get("rationale") for _, p in rows):
            out[system] = None
            continue
        out[system] = corpus_faithfulness([r.task for r, _ in rows], [r.source for r, _ in rows],
                                          [p["suggestion"] for _, p in rows], [p.get("rationale") for _, p in rows])
    return out


@register_stage(
    "evaluate",
    generates=True,
    # Not engine.name: greedy decoding of the same prompt ids is meant to give the same text on hf and
    # vllm, so switching engine reuses finished predictions (engines/__init__.py).
    config_keys=("model", "task", "data", "prompts", "sft", "evaluate", "seed", "rationale.position"),
    upstream=evaluate_upstream,
    related_keys=no_rationale_keys,
    input_files=eval_files,  # only the evaluated split's files: a dev run's key never hashes test
)
def run_evaluate(ctx: Context, out: Path) -> dict:
    """Greedy generation on the evaluated split (dev or test), scoring, and the Table 1 report."""
    from rationalign.report import write_report

    cfg = ctx.cfg
    split, test_missing = evaluated_split(cfg)
    if test_missing:
        log.warning("evaluate: %s; evaluating the dev split instead", test_missing)
    records = [r for r in load_split(cfg, split) if r.gold or (r.meta and r.meta.get("m2"))]
    if not records:
        raise ValueError(f"stage evaluate: no {split} records with gold revisions (data.{split})")
    results, all_preds = {}, {}
    for system in cfg.evaluate.systems:
        log.info("evaluate: system %s", system)
        preds = generate_predictions(ctx, out, system, records)
        all_preds[system] = preds
        results[system] = score_system(cfg, records, preds)
    extra: dict[str, Any] = {"systems": {s: describe_system(cfg, s) for s in cfg.evaluate.systems},
                             "rationale_decoding": str(cfg.evaluate.rationale_decoding)}
    if split != "test":  # a test report stays as it was; any other names what it shows
        extra.update(evaluated_split=split, **({"test_missing_reason": test_missing} if test_missing else {}))
    tokenization = m2_tokenization(cfg, records)
    if tokenization:
        extra["m2_tokenization"] = tokenization
    stats = eval_stats.all_stats(cfg, records, all_preds)
    eval_stats.save_stats(out, stats, {c: [r.id for r in recs] for c, recs in eval_stats.column_groups(cfg, records).items()})
    extra["significance"] = eval_stats.significance(cfg, stats)
    if cfg.evaluate.diagnostics:
        from rationalign.stages.diagnostics import alignment_diagnostics

        extra["diagnostics"] = alignment_diagnostics(ctx, list(cfg.evaluate.systems))
    if cfg.evaluate.analyses:
        extra["edits"] = edit_analysis(records, all_preds)
        extra["faithfulness"] = faithfulness_analysis(records, all_preds)
        if "reward" in evaluate_upstream(cfg):
            metric = sentence_scores(cfg, records, all_preds)
            rm = reward_model_analysis(ctx, records, all_preds, metric)
            if rm:
                extra["reward_model"] = rm
    write_report(out, cfg.evaluate.report_name, results, extra)  # the CLI prints it
    return {"evaluated_split": split, **({"test_missing_reason": test_missing} if test_missing else {}),
            "counts": {f"{split}_records": len(records), "systems": len(results)}, "metrics": results,
            "rationale_decoding": str(cfg.evaluate.rationale_decoding),
            "analyses": extra, "report": str(out / f"{cfg.evaluate.report_name}.md")}
