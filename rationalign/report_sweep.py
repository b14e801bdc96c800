"""Tables and plots for one multirun: every job's result.json -> summary.md, summary.csv, plots/.

Columns: job number, status, the overrides whose value differs between jobs (the swept ones;
the constant ones are listed once above the table), then the stage's metrics. For every ranked
metric the best finished job is marked (`**` in Markdown, the `best` column in CSV). Failed
jobs stay in the table with their error, and are listed again under the table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rationalign.io import atomic_write_text

RESULT = "result.json"  # one per job, written by the sweep callback (rationalign/sweep.py)
# The metrics ranked by default, and which way is better: matched against the *whole* name (after
# optional stage prefixes such as `evaluate.` or `align.`), so `malformed`, `n`, counts, seconds,
# steps and echoed hyper-parameters are never ranked by accident. Names: rationalign/report_metrics.py.
_PREFIX = r"(?:[A-Za-z_]+\.)*"
RANKED_PATTERNS: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(_PREFIX + p), d) for p, d in (
    (r"[^.]+\.[^.]+\.score", "max"),              # <system>.<column>.score: SARI, F0.5, BLEU (Table 1 cell)
    (r"[^.]+\.[^.]+\.formality", "max"),          # GYAFC formality accuracy
    (r"[^.]+\.ALL", "max"),                       # mean over the report's columns
    (r"(?:reward_model\.)?heldout_accuracy", "max"),  # RM pairwise accuracy on unseen K-fold pairs
    (r"heldout_margin", "max"),
    (r"[^.]+\.mean_reward", "max"),
    (r"[^.]+\.mean_metric", "max"),
    (r"[^.]+\.faithfulness\.(?:coverage|precision)", "max"),
    (r"(?:train|eval)_loss", "min"),
    (r"train_accuracy", "max"),
))


class MetricError(ValueError):
    """A metric asked for by name that the sweep does not have, or whose direction is unknown."""


def default_direction(name: str) -> str | None:
    """'max' / 'min' for a metric ranked by default, None for bookkeeping and unknown names."""
    for pattern, direction in RANKED_PATTERNS:
        if pattern.fullmatch(name):
            return direction
    return None


@dataclass
class SweepTable:
    rows: list[dict]                      # result.json payloads, sorted by job number
    swept: list[str]                      # override keys that vary between jobs
    constant: dict[str, str]              # override keys with one value in every job
    metrics: list[str]                    # metric columns (union over jobs)
    ranked: dict[str, str] = field(default_factory=dict)  # metric -> "max" | "min"
    best: dict[str, int] = field(default_factory=dict)    # metric -> index into rows

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r.get("status") != "ok"]


def find_results(sweep_dir: str | Path) -> list[Path]:
    """result.json files of the sweep's jobs (`<sweep>/<subdir>/result.json`, any depth, no .submitit)."""
    root = Path(sweep_dir)
    return sorted(p for p in root.rglob(RESULT) if ".submitit" not in p.parts and p.parent != root)


def _job_num(r: dict, path: Path) -> Any:
    num = (r.get("job") or {}).get("num")
    if num is None:
        num = path.parent.name
    r.setdefault("job", {})["num"] = num
    return (0, int(num)) if str(num).isdigit() else (1, str(num))


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _constant_text(col: str, rows: list[dict]) -> bool:
    vals = {str(r.get("metrics", {}).get(col)) for r in rows if r.get("status") == "ok"}
    non_numeric = all(_number(r.get("metrics", {}).get(col)) is None for r in rows)
    return len(vals) <= 1 and (non_numeric or ".hparams." in f".{col}" or col.startswith("hparams."))


def parse_metric_spec(spec: str) -> tuple[str, str | None]:
    """'evaluate.aligned.ALL:max' -> ('evaluate.aligned.ALL', 'max'); no suffix -> (name, None)."""
    name, _, direction = spec.partition(":")
    if direction and direction not in ("max", "min"):
        raise MetricError(f"metric {spec!r}: direction must be max or min")
    return name, direction or None


def numeric_columns(rows: list[dict], cols: list[str]) -> list[str]:
    return [c for c in cols if any(_number(r.get("metrics", {}).get(c)) is not None for r in rows)]


def ranking(rows: list[dict], cols: list[str], requested: list[str] | None) -> dict[str, str]:
    """{metric: 'max' | 'min'} to rank. By default every numeric column with a known direction
    (default_direction); asked-for names must be numeric columns of this sweep (else a ValueError
    listing them: MetricError), and need `:max` / `:min` when their direction is not known."""
    numeric = numeric_columns(rows, cols)
    if not requested:
        return {c: d for c in numeric if (d := default_direction(c))}
    out = {}
    for spec in requested:
        name, direction = parse_metric_spec(spec)
        if name not in numeric:
            known = [c for c in numeric if default_direction(c)]
            other = [c for c in numeric if not default_direction(c)]
            raise MetricError(f"unknown metric {name!r}: this sweep's metrics are {', '.join(known) or '(none)'}"
                             + (f"; not ranked by default (give :max or :min): {', '.join(other)}" if other else ""))
        direction = direction or default_direction(name)
        if direction is None:
            raise MetricError(f"metric {name!r} is not ranked by default (bookkeeping or an unknown kind): "
                             f"say which way is better, {name}:max or {name}:min")
        out[name] = direction
    return out


def build_table(sweep_dir: str | Path, metrics: list[str] | None = None) -> SweepTable:
    paths = find_results(sweep_dir)
    loaded = []
    for p in paths:
        r = json.loads(p.read_text())
        r["_path"] = str(p)
        loaded.append((_job_num(r, p), r))
    rows = [r for _, r in sorted(loaded, key=lambda t: t[0])]
    keys: list[str] = []
    for r in rows:  # command-line order (result.json's dict is key-sorted)
        ordered = [o.partition("=")[0].lstrip("+~") for o in r.get("override_list", [])]
        for k in [*ordered, *r.get("overrides", {})]:
            if k not in keys:
                keys.append(k)
    values = {k: {str(r.get("overrides", {}).get(k, "")) for r in rows} for k in keys}
    swept = [k for k in keys if len(values[k]) > 1]
    constant = {k: next(iter(values[k])) for k in keys if len(values[k]) == 1}
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r.get("metrics", {}) if k not in cols]
    # A column that is the same text in every job (loss name, echoed hparams) says nothing per row.
    cols = [c for c in cols if not _constant_text(c, rows)]
    # The align manifest echoes the loss hyper-parameters; drop the echo of a swept loss.* key.
    # (`hparams.lam` of a stage=align job, `align.hparams.lam` of a pipeline job)
    cols = [c for c in cols if not ((m := re.search(r"(?:^|\.)hparams\.(.+)$", c)) and f"loss.{m.group(1)}" in keys)]
    table = SweepTable(rows=rows, swept=swept, constant=constant, metrics=cols)
    table.ranked = ranking(rows, cols, metrics)
    for m, direction in table.ranked.items():
        scored = [(i, _number(r.get("metrics", {}).get(m))) for i, r in enumerate(rows) if r.get("status") == "ok"]
        scored = [(i, v) for i, v in scored if v is not None]
        if scored:
            pick = max if direction == "max" else min
            table.best[m] = pick(scored, key=lambda t: t[1])[0]
    return table


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _error_line(r: dict) -> str:
    e = r.get("error") or {}
    return f"{e.get('type', '')}: {e.get('message', '')}".strip(": ").replace("\n", " ")[:300]


def to_rows(table: SweepTable, markdown: bool) -> tuple[list[str], list[list[str]]]:
    header = ["job", "status", *table.swept, *table.metrics, "best", "error"]
    out = []
    for i, r in enumerate(table.rows):
        cells = [str(r["job"]["num"]), r.get("status", "?")]
        cells += [str(r.get("overrides", {}).get(k, "")) for k in table.swept]
        for m in table.metrics:
            cell = _fmt(r.get("metrics", {}).get(m))
            if markdown and table.best.get(m) == i:
                cell = f"**{cell}**"
            cells.append(cell)
        cells.append(" ".join(m for m, j in table.best.items() if j == i))
        cells.append(_error_line(r) if r.get("status") != "ok" else "")
        out.append(cells)
    return header, out


def to_markdown(table: SweepTable, title: str = "Sweep") -> str:
    header, rows = to_rows(table, markdown=True)
    esc = lambda s: s.replace("|", "\\|")
    n_ok = len(table.rows) - len(table.failed)
    lines = [f"# {title}", "", f"{len(table.rows)} jobs, {n_ok} ok, {len(table.failed)} failed."]
    if table.constant:
        lines += ["", "Fixed overrides: " + " ".join(f"`{k}={v}`" for k, v in table.constant.items())]
    if table.ranked:
        lines += ["", "Best (**bold**) per metric: " + ", ".join(
            f"{m} ({'higher' if d == 'max' else 'lower'} is better)" for m, d in table.ranked.items())]
    lines += ["", "| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    if table.failed:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- job {r['job']['num']} ({' '.join(r.get('override_list', []))}): {_error_line(r)}"
                  for r in table.failed]
    return "\n".join(lines) + "\n"


def to_csv(table: SweepTable) -> str:
    header, rows = to_rows(table, markdown=False)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# plots


def _loss_curve(r: dict) -> tuple[list[float], list[float]]:
    """(steps, losses) from the job's stage dir train_log.json (Trainer log_history)."""
    dirs = [r.get("stage_dir"), *(r.get("stage_dirs") or {}).values()]
    logs = [Path(d) / "train_log.json" for d in dirs if d and (Path(d) / "train_log.json").exists()]
    if not logs:
        return [], []
    p = logs[0]
    hist = json.loads(p.read_text())
    pts = [(h.get("step"), h.get("loss")) for h in hist if _number(h.get("loss")) is not None]
    if not pts:  # a run shorter than logging_steps only logs the final mean
        pts = [(h.get("step"), h.get("train_loss")) for h in hist if _number(h.get("train_loss")) is not None]
    return [float(s or 0) for s, _ in pts], [float(v) for _, v in pts]


def write_plots(table: SweepTable, out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ok = [r for r in table.rows if r.get("status") == "ok"]
    metrics = list(table.ranked)[:8]  # one panel per ranked metric; more is unreadable
    for key in table.swept:
        if not metrics or not ok:
            break
        raw = [r.get("overrides", {}).get(key, "") for r in ok]
        nums = [_number(v) for v in raw]
        numeric = all(v is not None for v in nums)
        cats = sorted(set(raw), key=lambda v: (_number(v) is None, _number(v) or 0, v))
        xs = nums if numeric else [cats.index(v) for v in raw]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            ys = [_number(r.get("metrics", {}).get(m)) for r in ok]
            pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], alpha=0.7)
                # mean over the other swept keys at each value: the marginal effect of this key
                groups: dict[float, list[float]] = {}
                for x, y in pts:
                    groups.setdefault(x, []).append(y)
                gx = sorted(groups)
                ax.plot(gx, [sum(groups[x]) / len(groups[x]) for x in gx], "-", color="C1", label="mean")
            ax.set_xlabel(key)
            ax.set_ylabel(m)
            if not numeric:
                ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
        fig.tight_layout()
        p = out_dir / f"metric_vs_{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    curves = [(r, *_loss_curve(r)) for r in ok]
    curves = [c for c in curves if c[1]]
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r, steps, losses in curves:
            label = f"{r['job']['num']}: " + " ".join(f"{k}={r['overrides'].get(k, '')}" for k in table.swept)
            ax.plot(steps, losses, marker="o" if len(steps) == 1 else None, label=label[:60])
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
        fig.tight_layout()
        p = out_dir / "loss_curves.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written


def write_summary(sweep_dir: str | Path, out_dir: str | Path | None = None, metrics: list[str] | None = None,
                  plots: bool = True) -> SweepTable:
    """summary.md + summary.csv (+ plots/) for the sweep; returns the table."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir else sweep_dir
    table = build_table(sweep_dir, metrics)
    atomic_write_text(out_dir / "summary.md", to_markdown(table, title=f"Sweep {sweep_dir.name}"))
    atomic_write_text(out_dir / "summary.csv", to_csv(table))
    if plots:
        write_plots(table, out_dir / "plots")
    return table
