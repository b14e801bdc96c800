"""A sweep with the default evaluate.split never opens a test file.

The sweep runs as users run it (`python -m rationalign -m ...`, tiny model, the bundled demo data)
in a subprocess that records every file Python opens (`sys.addaudithook`, "open" events), so a
read through any path (validation, stage keys hashing files, the evaluate stage, the sweep
callback) is seen. After the sweep, the same process evaluates test on purpose: that the hook then
sees the test file proves it would have seen it during the sweep.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "rationalign" / "data" / "demo"

SCRIPT = r'''
import json, os, sys
log = open(sys.argv[1], "a")

def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        log.write(json.dumps(os.path.realpath(os.fsdecode(args[0]))) + "\n")
        log.flush()

sys.addaudithook(hook)
overrides = json.loads(sys.argv[2])
sys.argv = ["rationalign", "-m", *overrides]
from rationalign.cli import entrypoint
try:
    entrypoint()
except SystemExit as e:
    if e.code:
        raise
log.write(json.dumps("--- control: evaluate.split=test ---") + "\n")
log.flush()
from rationalign.runner import compose, run
run(compose([o for o in overrides if not o.startswith(("hydra.", "seed="))] + ["evaluate.split=test"]))
'''


def test_sweep_with_default_split_never_opens_a_test_file(tmp_path):
    script = tmp_path / "audited.py"
    script.write_text(SCRIPT)
    opened_log = tmp_path / "opened.jsonl"
    sweep = tmp_path / "sweep"
    overrides = ["stage=evaluate", "model=tiny", "task=gec", "evaluate.systems=[base]", "evaluate.analyses=false",
                 "evaluate.max_new_tokens=4", "data.max_test_per_task=2", "data.max_dev_per_task=2",
                 f"paths.root={tmp_path / 'out'}", f"hydra.sweep.dir={sweep}", "seed=0,1"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, str(script), str(opened_log), json.dumps(overrides)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    opened = [json.loads(line) for line in opened_log.read_text().splitlines()]
    cut = opened.index("--- control: evaluate.split=test ---")
    during, control = opened[:cut], opened[cut + 1:]
    test_file, dev_file = str((DEMO / "test.jsonl").resolve()), str((DEMO / "dev.jsonl").resolve())
    assert dev_file in during  # the sweep evaluated dev ...
    assert test_file not in during  # ... and never opened the test file
    assert test_file in control  # the hook sees a test read when there is one

    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/result.json"))]
    assert len(results) == 2 and all(r["status"] == "ok" for r in results), [r.get("error") for r in results]
    for r in results:
        assert "base.CoN.score" in r["metrics"]  # the name docs/sweeps.md gives the Optuna objective
        manifest = json.loads((Path(r["stage_dir"]) / "manifest.json").read_text())
        assert manifest["evaluated_split"] == "dev" and manifest["config"]["evaluate"]["split"] == "dev"
        assert manifest["counts"]["dev_records"] == 2
        report = json.loads((Path(r["stage_dir"]) / "report.json").read_text())
        assert report["analyses"]["evaluated_split"] == "dev"


@pytest.mark.slow
def test_aggregate_evaluates_the_dev_choice_on_test_reusing_every_trained_stage(tmp_path):
    """experiments/aggregate.py --test re-runs the best dev setting with evaluate.split=test: the SFT
    model the sweep trained is reused (one sft dir, its manifest untouched), only evaluation runs."""
    sweep, out = tmp_path / "sweep", tmp_path / "out"
    overrides = ["stage=evaluate", "model=tiny", "task=gec", "evaluate.systems=[sft]", "evaluate.analyses=false",
                 "data.max_labeled_per_task=4", "data.max_dev_per_task=2", "data.max_test_per_task=2",
                 "sft.train.epochs=1", "sft.train.batch_size=4", f"paths.root={out}", f"hydra.sweep.dir={sweep}",
                 "evaluate.max_new_tokens=4,6"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", "rationalign", "-m", *overrides], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sft_manifest,) = (out / "default" / "sft").glob("*/manifest.json")
    stamp = sft_manifest.stat().st_mtime_ns
    agg = subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep), "--no-plots",
                          "--test", "--metric", "sft.CoN.score"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=1800, check=False)
    assert agg.returncode == 0, agg.stderr[-3000:]
    assert "## Chosen on dev: sft.CoN.score (max)" in agg.stdout and "| sft.CoN.score |" in agg.stdout
    assert list((out / "default" / "sft").glob("*/manifest.json")) == [sft_manifest]
    assert sft_manifest.stat().st_mtime_ns == stamp  # reused, not retrained
    res = json.loads((sweep / "dev_test.json").read_text())
    (job,) = res["jobs"]
    test_result = json.loads((tmp_path / "sweep-test" / str(job) / "result.json").read_text())
    manifest = json.loads((Path(test_result["stage_dir"]) / "manifest.json").read_text())
    assert manifest["evaluated_split"] == "test" and manifest["counts"]["test_records"] == 2
