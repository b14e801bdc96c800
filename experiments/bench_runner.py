"""Run each benchmark run in its own subprocess (so peak RSS is per run, not the maximum over all of
them) and collect the one `RESULT {json}` line each worker prints. Shared by bench_preference.py
and bench_sampling.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def worker_result(res: dict) -> None:
    """What a worker prints last: its measurements as one line."""
    print("RESULT " + json.dumps(res), flush=True)


def run_workers(script: str, runs: Sequence[str], worker_args: Sequence[str],
                show: Callable[[str, dict], None]) -> dict[str, dict]:
    """run -> its result (with wall_s added, and tokens_per_s where it counts tokens). A run named twice is measured twice,
    the second time as '<run>#2' (to see order effects). A failed run is reported and left out."""
    results: dict[str, dict] = {}
    for run in runs:
        key, n = run, 1
        while key in results:
            n += 1
            key = f"{run}#{n}"
        t = time.time()
        p = subprocess.run([sys.executable, script, "--worker", run, *worker_args], capture_output=True, text=True,
                           cwd=REPO, check=False, env={**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"})
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if p.returncode or not line:
            print(f"{key}: FAILED (rc={p.returncode})\n{p.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(line[-1][len("RESULT "):])
        if "tokens" in r:
            r["tokens_per_s"] = round(r["tokens"] / r["seconds"], 1)
        r["wall_s"] = round(time.time() - t, 1)
        results[key] = r
        show(key, r)
    return results


def write_json(path: str | None, results: dict[str, dict]) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2))
