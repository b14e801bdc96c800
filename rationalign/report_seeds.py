"""Seeds as the paper reports them (Sec. 4.1: "the average scores of three runs"): a multirun over
`seed`, alone or crossed with other keys, read back per setting.

A setting is the jobs whose overrides differ only in `seed`. Per setting, system and report column
(the Table 1 columns of each job's evaluate report, and ALL): the mean over seeds, the sample
standard deviation (n - 1) and a 95% confidence interval for the mean from Student's
t-distribution with n - 1 degrees of freedom (mean +- t * sd / sqrt(n); none with one seed).

Significance: per seed, each job's report.json `significance.<column>.<label>` entry (a, b, n, p,
p_lower) as its evaluate stage computed it; pooled over seeds: `pooled_test` below
(rationalign.significance.compare on all seeds' per-sentence statistics, one p out).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rationalign.report import COLUMNS, build_table

SEED_KEY = "seed"
LEVEL = 0.95


def evaluate_report(result: dict) -> dict | None:
    """The report.json of a job's evaluate stage (through its manifest), or None."""
    dirs = dict(result.get("stage_dirs") or {})
    if result.get("stage") == "evaluate" and result.get("stage_dir"):
        dirs.setdefault("evaluate", result["stage_dir"])
    d = dirs.get("evaluate")
    manifest = Path(d) / "manifest.json" if d else None
    if manifest is None or not manifest.exists():
        return None
    report = json.loads(manifest.read_text()).get("report")
    path = Path(report).with_suffix(".json") if report else None
    if path is None or not path.exists():
        return None
    out = json.loads(path.read_text())
    out["_dir"] = str(d)
    out["_evaluated_split"] = json.loads(manifest.read_text()).get("evaluated_split", "test")
    return out


def setting_of(result: dict, seed_key: str = SEED_KEY) -> tuple[tuple[str, str], ...]:
    """The job's overrides without the seed: equal for the jobs of one setting."""
    return tuple(sorted((k, str(v)) for k, v in (result.get("overrides") or {}).items() if k != seed_key))


def t_interval(values: list[float], level: float = LEVEL) -> dict[str, Any]:
    """Mean, sample sd and the t-distribution CI of the mean (None where undefined: n < 2)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "ci": None}
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci": [mean - half, mean + half]}


def _scores(report: dict) -> dict[str, dict[str, float]]:
    """system -> column -> score, ALL included (as the report's Table 1 computes it)."""
    out: dict[str, dict[str, float]] = {}
    for row in build_table(report.get("results") or {}):
        cells = {c: row[c]["score"] for c in COLUMNS if row.get(c)}
        if row.get("ALL") is not None:
            cells["ALL"] = row["ALL"]
        out[row["system"]] = cells
    return out


def pooled_test(column: str, label: str, per_seed: list[dict]) -> dict | None:
    """The significance test pooled over seeds: rationalign.significance.compare on every seed's
    per-sentence statistics (the evaluate stage's sentence_stats.json), each resample scoring a
    system by its mean corpus metric over the seeds. Seeds must have scored the same sentences
    (experiment data is carved with a seed of its own). None where a seed has no statistics for
    the column (ALL, or a report from before they were saved), shown as "n/a"."""
    from rationalign.significance import compare
    from rationalign.stages.eval_stats import STATS_FILE, load_stats

    a_runs, b_runs, ids = [], [], None
    for entry in per_seed:
        path = Path(entry["dir"]) / STATS_FILE
        if not path.is_file():
            return None
        stats, columns = load_stats(path)
        a, b = stats.get(entry["a"], {}).get(column), stats.get(entry["b"], {}).get(column)
        if a is None or b is None:
            return None
        if ids is None:
            ids = columns.get(column)
        elif columns.get(column) != ids:
            raise ValueError(f"{path}: seed {entry['seed']} scored other {column} sentences than seed "
                             f"{per_seed[0]['seed']}: a pooled test needs the same test set in every seed")
        a_runs.append(a)
        b_runs.append(b)
    if not a_runs:
        return None
    result = compare(a_runs, b_runs)
    return {**result, "method": "one-tailed sign test over bootstrap resamples, mean corpus metric over seeds"}


def seed_groups(results: list[dict], seed_key: str = SEED_KEY) -> list[dict]:
    """One entry per setting of a seed sweep: {"setting", "seeds", "jobs", "cells", "significance"}.

    cells[system][column] = t_interval over the seeds that have that cell (plus "values");
    significance[column][label] = {"a", "b", "per_seed": {seed: {"p", "p_lower", "n"}}, "pooled"}.
    """
    groups: dict[tuple, list[tuple[str, dict, dict]]] = {}
    for r in results:
        if r.get("status") != "ok":
            continue
        report = evaluate_report(r)
        if report is None:
            continue
        seed = str((r.get("overrides") or {}).get(seed_key, ""))
        groups.setdefault(setting_of(r, seed_key), []).append((seed, r, report))
    out = []
    for setting, jobs in groups.items():
        jobs.sort(key=lambda j: (not j[0].lstrip("-").isdigit(), int(j[0]) if j[0].lstrip("-").isdigit() else j[0]))
        scores = [_scores(rep) for _, _, rep in jobs]
        cells: dict[str, dict[str, dict]] = {}
        for system in dict.fromkeys(s for sc in scores for s in sc):
            for col in [*COLUMNS, "ALL"]:
                vals = [sc[system][col] for sc in scores if col in sc.get(system, {})]
                if vals:
                    cells.setdefault(system, {})[col] = {**t_interval(vals), "values": vals}
        out.append({"setting": dict(setting), "seeds": [s for s, _, _ in jobs],
                    "jobs": [r["job"]["num"] for _, r, _ in jobs],
                    "evaluated_splits": sorted({rep["_evaluated_split"] for _, _, rep in jobs}),
                    "cells": cells, "significance": _significance(jobs)})
    return out


def _significance(jobs: list[tuple[str, dict, dict]]) -> dict:
    sig: dict[str, dict[str, dict]] = {}
    for seed, _, rep in jobs:
        for col, comparisons in (rep.get("significance") or {}).items():
            for label, e in comparisons.items():
                slot = sig.setdefault(col, {}).setdefault(label, {"a": e.get("a"), "b": e.get("b"), "per_seed": {},
                                                                  "_inputs": []})
                slot["per_seed"][seed] = {k: e.get(k) for k in ("p", "p_lower", "n")}
                slot["_inputs"].append({"seed": seed, "dir": rep["_dir"], "a": e.get("a"), "b": e.get("b"),
                                        "entry": e})
    for col, comparisons in sig.items():
        for label, slot in comparisons.items():
            slot["pooled"] = pooled_test(col, label, slot.pop("_inputs"))
    return sig


# ----------------------------------------------------------------------------- rendering


def _num(v: float | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _p(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def to_markdown(groups: list[dict], swept: list[str]) -> str:
    """Per setting: mean +- sd [95% CI] per system and column; then p per seed and pooled."""
    lines = [f"## Seeds: mean, sd and {int(LEVEL * 100)}% CI over seeds (Student's t, n - 1 dof)", ""]
    for g in groups:
        shown = {k: v for k, v in g["setting"].items() if k in swept} or g["setting"]
        name = ", ".join(f"{k}={v}" for k, v in shown.items()) or "(one setting)"
        lines += [f"### {name}", "",
                  (f"seeds {', '.join(g['seeds'])} (jobs {', '.join(map(str, g['jobs']))}); "
                  f"evaluated on {' and '.join(g['evaluated_splits'])}"), ""]
        cols = [c for c in [*COLUMNS, "ALL"] if any(c in cs for cs in g["cells"].values())]
        lines += ["| system | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for system, cs in g["cells"].items():
            row = []
            for c in cols:
                cell = cs.get(c)
                if cell is None:
                    row.append("N.A.")
                elif cell["sd"] is None:
                    row.append(f"{_num(cell['mean'])} (1 seed)")
                else:
                    row.append(f"{_num(cell['mean'])} ± {_num(cell['sd'])} [{_num(cell['ci'][0])}, "
                               f"{_num(cell['ci'][1])}]")
            lines.append(f"| {system} | " + " | ".join(row) + " |")
        lines.append("")
        if g["significance"]:
            lines += ["| column | comparison | " + " | ".join(f"p (seed {s})" for s in g["seeds"]) +
                      " | pooled p |", "|---|---|" + "---|" * (len(g["seeds"]) + 1)]
            for col, comparisons in g["significance"].items():
                for label, slot in comparisons.items():
                    per = [_p((slot["per_seed"].get(s) or {}).get("p")) for s in g["seeds"]]
                    pooled = "n/a" if slot["pooled"] is None else _p(slot["pooled"].get("p"))
                    lines.append(f"| {col} | {label} | " + " | ".join(per) + f" | {pooled} |")
            lines += ["", ("p: one-tailed sign test over bootstrap resamples, for 'a better than b', as each "
                      "seed's report computed it; pooled: the same test on every seed's outputs, a system "
                      "scored by its mean corpus metric over the seeds on each resample "
                      "(rationalign.report_seeds.pooled_test)."), ""]
    return "\n".join(lines) + "\n"
