"""Collect a multirun's result.json files into one table (Markdown + CSV) and plots.

    python experiments/aggregate.py outputs/default/multirun/sweep_mpo-2025-01-01_12-00-00
    python experiments/aggregate.py <dir> --metric evaluate.aligned.ALL --metric evaluate.aligned.CoN.score --out report/
    python experiments/aggregate.py <dir> --test --metric evaluate.aligned.AST.score   # dev choice, test beside
    python experiments/aggregate.py <seed sweep dir>        # + mean, sd, 95% t CI over seeds per setting

Writes <out>/summary.md, <out>/summary.csv and <out>/plots/*.png (metric vs each swept value,
training-loss curves per job) and prints the Markdown. Metric names are those of the jobs' result.json
(rationalign/report_metrics.py lists the report's); a name the sweep does not have is an error that
lists the ones it has. A sweep over `seed` (alone or crossed with other keys) also gets <out>/seeds.md
and seeds.json (rationalign/report_seeds.py). `--test` re-runs the best setting on dev with
evaluate.split=test (only the evaluation runs; trained stages come from the cache) and writes
<out>/dev_test.md and dev_test.json (rationalign/dev_select.py). Exit status 1 when no result.json is
found or --test fails, 2 for a bad --metric, 0 otherwise (failed jobs are listed in the table, not
turned into an exit status).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dir", type=Path, help="a Hydra multirun dir (hydra.sweep.dir)")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: the sweep dir)")
    ap.add_argument("--metric", action="append", default=None,
                    help="metric to rank, NAME[:max|min] (repeatable; default: every report metric, RM accuracy "
                         "and training loss, each in its known direction)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--test", action="store_true",
                    help="evaluate the best setting on dev (the first --metric, or the only *.score metric) on "
                         "the test set and print dev and test side by side")
    ap.add_argument("--seed-key", default="seed", help="the override that numbers the seeds (default: seed)")
    args = ap.parse_args(argv)

    from rationalign.report_sweep import MetricError, find_results, to_markdown, write_summary

    if not args.sweep_dir.is_dir():
        print(f"{args.sweep_dir}: not a directory", file=sys.stderr)
        return 1
    if not find_results(args.sweep_dir):
        print(f"{args.sweep_dir}: no result.json under it (was the job_result callback on?)", file=sys.stderr)
        return 1
    try:
        table = write_summary(args.sweep_dir, args.out, metrics=args.metric, plots=not args.no_plots)
    except MetricError as e:  # an unknown --metric: the message lists the known ones
        print(f"{args.sweep_dir}: {e}", file=sys.stderr)
        return 2
    print(to_markdown(table, title=f"Sweep {args.sweep_dir.name}"))
    out = args.out or args.sweep_dir
    if args.seed_key in table.swept:
        print(seed_section(table, out, args.seed_key))
    if args.test:
        try:
            print(dev_test_section(args.sweep_dir, table, out, args.metric, args.seed_key))
        except (ValueError, RuntimeError) as e:
            print(f"--test: {e}", file=sys.stderr)
            return 1
    return 0


def seed_section(table, out: Path, seed_key: str) -> str:
    """Mean, sd and 95% t CI over seeds per setting, system and column; p per seed and pooled."""
    from rationalign.report_seeds import seed_groups, to_markdown

    groups = seed_groups(table.rows, seed_key)
    md = to_markdown(groups, [k for k in table.swept if k != seed_key])
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.md").write_text(md)
    (out / "seeds.json").write_text(json.dumps(groups, indent=1))
    return md


def dev_test_section(sweep_dir: Path, table, out: Path, metrics: list[str] | None, seed_key: str) -> str:
    """The best setting on dev, re-evaluated on test; both side by side."""
    from rationalign.dev_select import dev_and_test, to_markdown
    from rationalign.report_sweep import default_direction, parse_metric_spec

    if metrics:
        metric, direction = parse_metric_spec(metrics[0])
        # no ":max"/":min" suffix: the direction the table ranks it by (a score is maximised), never a guess
        direction = direction or table.ranked.get(metric) or default_direction(metric)
        if direction is None:
            raise ValueError(f"--metric {metric}: say which way is better ({metric}:max or {metric}:min)")
    else:
        scores = [m for m in table.ranked if m.endswith(".score")]
        if len(scores) != 1:
            raise ValueError(f"choose the metric to select on with --metric (candidates: {scores or list(table.ranked)})")
        metric, direction = scores[0], table.ranked[scores[0]]
    res = dev_and_test(sweep_dir, table.rows, metric, direction, seed_key)
    md = to_markdown(res)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dev_test.md").write_text(md)
    (out / "dev_test.json").write_text(json.dumps(res, indent=1))
    return md


if __name__ == "__main__":
    sys.exit(main())
