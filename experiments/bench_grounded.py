"""What edit-grounded rationales cost: wall time of the demo's evaluate stage with
`evaluate.rationale_decoding=free` (the paper's decoding) and `=grounded`.

    .venv/bin/rationalign experiment=demo                       # once: the trained systems the stage evaluates
    .venv/bin/python experiments/bench_grounded.py              # free, grounded, grounded-reuse

Runs, each in its own subprocess, each a complete `stage=evaluate` of `experiment=demo` (4 systems x 30
test texts, generation and every analysis) into a fresh stage dir (a bench-only `evaluate.report_name`
gives it its own key; the dirs are deleted afterwards):
  free            free decoding of suggestion + rationale (96 new tokens)
  grounded        grounded decoding from scratch: suggestions decoded up to the rationale marker, then one
                  reason per edit (all edits of a batch of texts in one batched forward per step)
  grounded-reuse  grounded decoding after the free run of the same config: its suggestions are read, only
                  the reasons are decoded (what `rationalign experiment=demo stage=evaluate
                  evaluate.rationale_decoding=grounded` does after `make demo`)
seconds = the stage's own time (the manifest's "seconds"; upstream stages are finished and skipped).
`--json F` writes one object per run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from experiments.bench_runner import run_workers, worker_result, write_json

RUNS = ["free", "grounded", "grounded-reuse"]
# grounded-reuse shares the free run's report name, so it finds the free run's predictions
REPORT = {"free": "bench_free", "grounded": "bench_grounded", "grounded-reuse": "bench_free"}


def _cfg(a, run: str):
    from rationalign.runner import compose

    mode = "free" if run == "free" else "grounded"
    return compose(["experiment=demo", "stage=evaluate", f"paths.root={a.root}", f"evaluate.rationale_decoding={mode}",
                    f"evaluate.report_name={REPORT[run]}", *a.override])


def worker(run: str, a) -> dict:
    from rationalign.components import import_components
    from rationalign.runner import run as run_stage
    from rationalign.stages.base import Context
    from rationalign.stages.evaluate import evaluate_upstream

    import_components()
    cfg = _cfg(a, run)
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    missing = [s for s in ("sft", "align", *evaluate_upstream(cfg)) if not ctx.is_done(s)]
    if missing:
        raise SystemExit(f"bench_grounded: stages {missing} of experiment=demo are not finished under "
                         f"{cfg.paths.workdir}; run `rationalign experiment=demo paths.root={a.root}` first")
    out = ctx.stage_dir("evaluate")
    if run == "grounded-reuse":
        from rationalign.stages.evaluate_grounded import free_context

        if not free_context(ctx).is_done("evaluate"):
            raise SystemExit("bench_grounded: grounded-reuse needs the free run first (--runs free,grounded-reuse)")
    if run != "grounded-reuse" and out.exists():
        shutil.rmtree(out)  # measure from scratch
    t = time.perf_counter()
    m = run_stage(cfg)
    wall = time.perf_counter() - t
    fa = m["analyses"].get("faithfulness") or {}
    return {"run": run, "seconds": m["seconds"], "wall_in_process_s": round(wall, 2),
            "dir": str(out), "metrics": m["metrics"],
            "faithfulness": {s: (v or {}).get("overall") for s, v in fa.items()},
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)}


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=str(REPO / "outputs"), help="paths.root of the finished demo run")
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--override", action="append", default=[], help="extra override for every run")
    ap.add_argument("--keep", action="store_true", help="keep the bench's evaluate dirs")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    a = parse(argv)
    if a.worker:
        import logging

        logging.disable(logging.WARNING)
        worker_result(worker(a.worker, a))
        return

    def show(run: str, r: dict) -> None:
        fa = ", ".join(f"{s} {_pct(v and v['coverage'])}/{_pct(v and v['precision'])} ({v and v['edits']} edits)"
                       for s, v in r["faithfulness"].items())
        print(f"  {run:15s} evaluate stage {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mb']:.0f} MB  "
              f"coverage/precision: {fa}", flush=True)

    load = os.getloadavg()
    results = run_workers(__file__, a.runs.split(","), sys.argv[1:] if argv is None else list(argv), show)
    print(f"\nload average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, at end "
          + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    free = results.get("free")
    for run in ("grounded", "grounded-reuse"):
        if free and run in results:
            same = all(results[run]["metrics"][s][c]["score"] == free["metrics"][s][c]["score"]
                       for s in free["metrics"] for c in free["metrics"][s])
            print(f"  {run} vs free: wall time x{results[run]['seconds'] / free['seconds']:.2f}; "
                  f"every report column equal: {same}")
    write_json(a.json, results)
    if not a.keep:
        for r in results.values():
            shutil.rmtree(r["dir"], ignore_errors=True)


def _pct(x) -> str:
    return "N.A." if x is None else f"{100 * x:.0f}%"


if __name__ == "__main__":
    main()
