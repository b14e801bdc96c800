"""Collect a multirun's result.json files into one table (Markdown + CSV) and plots.

    python experiments/aggregate.py outputs/default/multirun/sweep_mpo-2025-01-01_12-00-00
    python experiments/aggregate.py <dir> --metric evaluate.aligned.ALL --metric evaluate.aligned.CoN.score --out report/

Writes <out>/summary.md, <out>/summary.csv and <out>/plots/*.png (metric vs each swept value,
training-loss curves per job) and prints the Markdown. Metric names are those of the jobs' result.json
(rationalign/report_metrics.py lists the report's); a name the sweep does not have is an error that
lists the ones it has. Exit status 1 when no result.json is found, 2 for a bad --metric, 0 otherwise
(failed jobs are listed in the table, not turned into an exit status).
"""

from __future__ import annotations

import argparse
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
