"""Choose on dev, report test beside it (experiments/aggregate.py --test).

A sweep evaluates dev (evaluate.split=auto under multirun). The setting with the best dev value of
one metric (its mean over seeds when the sweep crosses `seed`) is re-run once per job with its own
overrides plus `evaluate.split=test`, from the directory the sweep ran in, so every trained stage
comes from the content-addressed cache and only the evaluation runs. Its test values are printed
beside the dev values; the test set is read for that one setting only.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rationalign.report_seeds import SEED_KEY, evaluate_report, setting_of
from rationalign.report_sweep import RESULT

TEST_DIR_SUFFIX = "-test"  # <sweep dir>-test/<job num>/: the test runs (outside the sweep dir it summarises)


def choose(results: list[dict], metric: str, direction: str = "max", seed_key: str = SEED_KEY) -> dict:
    """The best setting on `metric`: {"setting", "jobs", "value", "splits"}; value = mean over its seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r.get("status") == "ok" and _number((r.get("metrics") or {}).get(metric)) is not None:
            groups.setdefault(setting_of(r, seed_key), []).append(r)
    if not groups:
        raise ValueError(f"no finished job has metric {metric!r}")
    means = {k: sum(float(r["metrics"][metric]) for r in js) / len(js) for k, js in groups.items()}
    pick = max if direction == "max" else min
    best = pick(means, key=lambda k: means[k])
    jobs = sorted(groups[best], key=lambda r: str((r.get("overrides") or {}).get(seed_key, "")))
    splits = sorted({(evaluate_report(r) or {}).get("_evaluated_split", "?") for r in jobs})
    return {"setting": dict(best), "jobs": jobs, "value": means[best], "splits": splits}


def test_overrides(result: dict) -> list[str]:
    """The job's own overrides, with evaluate.split=test instead of whatever split it evaluated."""
    keep = [o for o in result.get("override_list") or [] if o.partition("=")[0].lstrip("+~") != "evaluate.split"]
    if any(o.endswith("=***") for o in keep):
        raise ValueError(f"job {result['job']['num']}: a masked (secret) override cannot be replayed; "
                         "rerun it by hand with evaluate.split=test")
    return [*keep, "evaluate.split=test"]


def job_cwd(result: dict) -> Path:
    """The directory the sweep ran in (Hydra's runtime.cwd), so relative paths resolve as they did."""
    out = (result.get("job") or {}).get("output_dir")
    hydra_yaml = Path(out) / ".hydra" / "hydra.yaml" if out else None
    if hydra_yaml and hydra_yaml.exists():
        from omegaconf import OmegaConf

        cwd = OmegaConf.select(OmegaConf.load(hydra_yaml), "hydra.runtime.cwd")
        if cwd:
            return Path(cwd)
    return Path.cwd()


def run_test(result: dict, run_dir: Path, runner: Callable[..., Any] = subprocess.run) -> dict:
    """Evaluate one job's setting on test; its result.json (written by the job_result callback)."""
    cmd = [sys.executable, "-m", "rationalign", *test_overrides(result), f"hydra.run.dir={run_dir}"]
    proc = runner(cmd, cwd=job_cwd(result), capture_output=True, text=True, check=False)
    path = run_dir / RESULT
    if proc.returncode != 0 or not path.exists():
        tail = (getattr(proc, "stderr", "") or "")[-2000:]
        raise RuntimeError(f"test evaluation of job {result['job']['num']} failed ({' '.join(cmd)}): {tail}")
    return json.loads(path.read_text())


def dev_and_test(sweep_dir: Path, results: list[dict], metric: str, direction: str = "max",
                 seed_key: str = SEED_KEY, runner: Callable[..., Any] = subprocess.run) -> dict:
    """Choose on `metric`, evaluate the chosen setting's jobs on test; dev and test per metric."""
    chosen = choose(results, metric, direction, seed_key)
    tests = []
    for r in chosen["jobs"]:
        run_dir = sweep_dir.parent / f"{sweep_dir.name}{TEST_DIR_SUFFIX}" / str(r["job"]["num"])
        tests.append(run_test(r, run_dir, runner))
    names = [metric] + sorted({m for r in chosen["jobs"] for m in r.get("metrics", {})
                               if m != metric and m.endswith(".score")})
    rows = []
    for m in names:
        dev = [_number(r["metrics"].get(m)) for r in chosen["jobs"]]
        tst = [_number((t.get("metrics") or {}).get(m)) for t in tests]
        rows.append({"metric": m, "dev": dev, "test": tst, "dev_mean": _mean(dev), "test_mean": _mean(tst)})
    return {"metric": metric, "direction": direction, "setting": chosen["setting"], "splits": chosen["splits"],
            "jobs": [r["job"]["num"] for r in chosen["jobs"]],
            "seeds": [(r.get("overrides") or {}).get(seed_key) for r in chosen["jobs"]],
            "test_dirs": [t.get("stage_dir") for t in tests], "rows": rows}


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _mean(vals: list[float | None]) -> float | None:
    got = [v for v in vals if v is not None]
    return sum(got) / len(got) if len(got) == len(vals) and got else None


def to_markdown(res: dict) -> str:
    setting = ", ".join(f"{k}={v}" for k, v in res["setting"].items()) or "(no overrides)"
    lines = [f"## Chosen on dev: {res['metric']} ({res['direction']})", "", f"setting: {setting}",
             f"jobs {', '.join(map(str, res['jobs']))}; test evaluations in {', '.join(map(str, res['test_dirs']))}", ""]
    if res["splits"] != ["dev"]:
        lines += [(f"**Warning: the sweep evaluated {' and '.join(res['splits'])}, not dev only: this choice "
                  "saw the test set.**"), ""]
    many = len(res["jobs"]) > 1
    lines += ["| metric | dev | test |" + (" dev per seed | test per seed |" if many else ""),
              "|---|---|---|" + ("---|---|" if many else "")]
    for row in res["rows"]:
        cells = [row["metric"], _fmt(row["dev_mean"]), _fmt(row["test_mean"])]
        if many:
            cells += [" / ".join(_fmt(v) for v in row["dev"]), " / ".join(_fmt(v) for v in row["test"])]
        lines.append("| " + " | ".join(cells) + " |")
    if many:
        lines += ["", f"dev and test: means over seeds {', '.join(map(str, res['seeds']))}."]
    return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "N.A." if v is None else f"{v:.4g}"
