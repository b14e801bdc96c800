"""Per-sentence statistics of every evaluated system on every report column, and the significance
tests the report prints (rationalign.significance).

The statistics are written beside the predictions (`sentence_stats.json`: system -> column ->
{metric, options, rows}) so that several runs (seeds) can be compared pooled afterwards
(experiments/aggregate.py) without re-reading data or re-scoring text.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from rationalign.data.records import Record
from rationalign.io import atomic_write_json
from rationalign.metrics.resample import ColumnStats, column_stats

STATS_FILE = "sentence_stats.json"


def column_of(spec: Any, record: Record) -> str:
    from rationalign.prompts import task_columns

    cols = task_columns(spec)
    col = record.meta.get("column") if record.meta else None
    return col if col in cols else cols[0]


def metric_inputs(metric: str, recs: list[Record], preds: list[str]) -> tuple[list[str], list[str], Any]:
    """(sources, hypotheses, references) as `metric` takes them: CoNLL-style M2 gold when every record
    carries it (suggestions tokenised like the gold), else each record's gold revisions."""
    if metric == "m2" and all(r.meta.get("m2") for r in recs):
        from rationalign.tokenization import m2_hypothesis

        refs: Any = "\n\n".join(r.meta["m2"].strip() for r in recs) + "\n"
        return [r.source for r in recs], [m2_hypothesis(r.meta, p) for r, p in zip(recs, preds)], refs
    return [r.source for r in recs], list(preds), [r.gold for r in recs]


def column_groups(cfg, records: list[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[column_of(cfg.task.specs[r.task], r)].append(r)
    return dict(groups)


def primary_metric(cfg, recs: list[Record]) -> str:
    """The metric of the column's printed score (the first report metric, as score_column uses)."""
    spec = cfg.task.specs[recs[0].task]
    names = [m for m in (list(spec.report_metrics) or [spec.metric]) if m != "formality"]
    return names[0] if names else "formality"


def system_stats(cfg, records: list[Record], preds: dict[str, list[dict]]) -> dict[str, ColumnStats]:
    """column -> the statistics of one system's suggestions on that column's sentences."""
    by_id = {p["id"]: p for rows in preds.values() for p in rows}
    out = {}
    for col, recs in column_groups(cfg, records).items():
        metric = primary_metric(cfg, recs)
        sugg = [by_id[r.id]["suggestion"] for r in recs]
        if metric == "formality":
            out[col] = column_stats("formality", None, sugg, None)
        else:
            out[col] = column_stats(metric, *metric_inputs(metric, recs, sugg))
    return out


def all_stats(cfg, records: list[Record], all_preds: dict[str, dict]) -> dict[str, dict[str, ColumnStats]]:
    return {system: system_stats(cfg, records, preds) for system, preds in all_preds.items()}


def save_stats(out: Path, stats: dict[str, dict[str, ColumnStats]], record_ids: dict[str, list[str]]) -> Path:
    path = out / STATS_FILE
    atomic_write_json(path, {"columns": record_ids,
                             "systems": {s: {c: st.to_json() for c, st in cols.items()} for s, cols in stats.items()}})
    return path


def load_stats(path: Path) -> tuple[dict[str, dict[str, ColumnStats]], dict[str, list[str]]]:
    """(system -> column -> ColumnStats, column -> record ids in row order)."""
    d = json.loads(Path(path).read_text())
    systems = {s: {c: ColumnStats.from_json(v) for c, v in cols.items()} for s, cols in d["systems"].items()}
    return systems, d["columns"]


def significance(cfg, stats: dict[str, dict[str, ColumnStats]]) -> dict[str, Any]:
    from rationalign.significance import column_pvalues

    sig = cfg.evaluate.significance
    return column_pvalues(stats, sign_resamples=int(sig.sign_test_resamples),
                          bootstrap_resamples=int(sig.bootstrap_resamples), seed=int(cfg.seed))
