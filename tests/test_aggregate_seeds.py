"""experiments/aggregate.py on synthetic sweeps: the seed aggregate (mean, sd, t CI, significance
per seed) and the choice on dev with the test score beside it (the test runs faked)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from rationalign import dev_select
from rationalign.report_seeds import seed_groups, t_interval, to_markdown
from rationalign.report_sweep import build_table

REPO = Path(__file__).resolve().parent.parent
T_975_DF2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom (tables: 4.303)


def make_job(sweep: Path, num: int, overrides: dict[str, str], aligned: float, sft: float, p: float,
             split: str = "dev", cwd: Path | None = None) -> dict:
    job_dir = sweep / str(num)
    ev = job_dir / "stages" / "evaluate"
    ev.mkdir(parents=True)
    (ev / "manifest.json").write_text(json.dumps({"report": str(ev / "report.md"), "evaluated_split": split}))
    (ev / "report.json").write_text(json.dumps({
        "results": {"sft": {"AST": {"score": sft, "n": 10}}, "aligned": {"AST": {"score": aligned, "n": 10}}},
        "significance": {"AST": {"aligned vs SFT(R)": {"a": "aligned", "b": "sft", "n": 10, "p": p,
                                                       "p_lower": 1 - p}}}}))
    (job_dir / ".hydra").mkdir()
    (job_dir / ".hydra" / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    cwd: {cwd or sweep}\n")
    result = {"status": "ok", "overrides": overrides, "override_list": [f"{k}={v}" for k, v in overrides.items()],
              "job": {"num": num, "output_dir": str(job_dir)}, "stage": "pipeline", "stage_dirs": {"evaluate": str(ev)},
              "metrics": {"evaluate.aligned.AST.score": aligned, "evaluate.sft.AST.score": sft}}
    (job_dir / "result.json").write_text(json.dumps(result))
    return result


@pytest.fixture
def sweep(tmp_path):
    """loss.beta {0.01, 0.1} x seed {0, 1, 2}; beta 0.1 is better on dev."""
    d = tmp_path / "sweep"
    aligned = {"0.01": [30.0, 32.0, 34.0], "0.1": [35.0, 36.0, 40.0]}
    num = 0
    for beta in ("0.01", "0.1"):
        for seed in range(3):
            make_job(d, num, {"experiment": "x", "loss.beta": beta, "seed": str(seed)}, aligned[beta][seed],
                     sft=20.0 + seed, p=0.01 * (seed + 1))
            num += 1
    return d


def test_t_interval_matches_a_hand_computation():
    got = t_interval([30.0, 32.0, 34.0])
    half = T_975_DF2 * 2.0 / math.sqrt(3)  # sd = 2 (n - 1), t with 2 dof, not the normal 1.96
    assert got["n"] == 3 and got["mean"] == 32.0 and got["sd"] == pytest.approx(2.0, rel=1e-12)
    assert got["ci"] == pytest.approx([32.0 - half, 32.0 + half], rel=1e-9)
    assert t_interval([5.0]) == {"n": 1, "mean": 5.0, "sd": None, "ci": None}


def test_seed_groups_per_setting_system_and_column(sweep):
    table = build_table(sweep)
    groups = seed_groups(table.rows)
    assert [g["setting"]["loss.beta"] for g in groups] == ["0.01", "0.1"]
    g = groups[0]
    assert g["seeds"] == ["0", "1", "2"] and g["jobs"] == [0, 1, 2] and g["evaluated_splits"] == ["dev"]
    assert g["cells"]["aligned"]["AST"]["values"] == [30.0, 32.0, 34.0]
    assert g["cells"]["aligned"]["AST"]["mean"] == 32.0
    assert g["cells"]["aligned"]["ALL"]["mean"] == 32.0  # ALL averages the columns present
    assert g["cells"]["sft"]["AST"]["sd"] == pytest.approx(1.0, rel=1e-12)
    sig = g["significance"]["AST"]["aligned vs SFT(R)"]
    assert sig["a"] == "aligned" and sig["b"] == "sft" and sig["pooled"] is None
    assert sig["per_seed"] == {"0": {"p": 0.01, "p_lower": 0.99, "n": 10}, "1": {"p": 0.02, "p_lower": 0.98, "n": 10},
                               "2": {"p": 0.03, "p_lower": 0.97, "n": 10}}
    md = to_markdown(groups, ["loss.beta"])
    assert "### loss.beta=0.01" in md and "95% CI over seeds (Student's t, n - 1 dof)" in md
    half = T_975_DF2 * 2.0 / math.sqrt(3)
    assert f"32.0 ± 2.0 [{32 - half:.1f}, {32 + half:.1f}]" in md
    assert "| AST | aligned vs SFT(R) | 0.010 | 0.020 | 0.030 | n/a |" in md  # no sentence statistics saved


def test_a_seed_only_sweep_is_one_setting_and_failed_jobs_are_left_out(sweep):
    rows = [r for r in build_table(sweep).rows if r["overrides"]["loss.beta"] == "0.1"]
    rows[1] = {**rows[1], "status": "failed"}
    (g,) = seed_groups(rows)
    assert g["seeds"] == ["0", "2"] and g["cells"]["aligned"]["AST"]["values"] == [35.0, 40.0]


def test_aggregate_writes_the_seed_table(sweep, tmp_path):
    out = tmp_path / "agg"
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "aggregate.py"), str(sweep), "--out", str(out),
                           "--no-plots"], capture_output=True, text=True, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "## Seeds: mean, sd and 95% CI" in proc.stdout and (out / "seeds.md").exists()
    assert len(json.loads((out / "seeds.json").read_text())) == 2


def fake_runner(calls: list, test_scores: dict[str, float]):
    """Stands in for `python -m rationalign ... evaluate.split=test`: writes the result.json the
    job_result callback would, with a test score per seed."""
    def run(cmd, cwd, **kw):
        calls.append((cmd, cwd))
        run_dir = Path(next(a for a in cmd if a.startswith("hydra.run.dir=")).split("=", 1)[1])
        seed = next(a for a in cmd if a.startswith("seed=")).split("=", 1)[1]
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps({
            "status": "ok", "stage_dir": str(run_dir / "evaluate"),
            "metrics": {"evaluate.aligned.AST.score": test_scores[seed], "evaluate.sft.AST.score": 10.0}}))
        return SimpleNamespace(returncode=0, stderr="")
    return run


def test_best_on_dev_is_evaluated_on_test_beside_it(sweep):
    rows = build_table(sweep).rows
    calls: list = []
    res = dev_select.dev_and_test(sweep, rows, "evaluate.aligned.AST.score", "max",
                                  runner=fake_runner(calls, {"0": 33.0, "1": 34.0, "2": 38.0}))
    assert res["setting"] == {"experiment": "x", "loss.beta": "0.1"} and res["jobs"] == [3, 4, 5]
    assert len(calls) == 3
    cmd, cwd = calls[0]
    assert cmd[1:3] == ["-m", "rationalign"] and cwd == sweep
    assert cmd[3:] == ["experiment=x", "loss.beta=0.1", "seed=0", "evaluate.split=test",
                       f"hydra.run.dir={sweep.parent / 'sweep-test' / '3'}"]
    row = res["rows"][0]
    assert row["metric"] == "evaluate.aligned.AST.score" and row["dev"] == [35.0, 36.0, 40.0]
    assert row["dev_mean"] == pytest.approx(37.0) and row["test_mean"] == pytest.approx(35.0)
    md = dev_select.to_markdown(res)
    assert "| evaluate.aligned.AST.score | 37 | 35 | 35 / 36 / 40 | 33 / 34 / 38 |" in md
    assert "Warning" not in md


def test_choice_minimises_when_asked_and_warns_when_the_sweep_saw_test(tmp_path):
    d = tmp_path / "s"
    make_job(d, 0, {"loss.beta": "0.01"}, 30.0, 20.0, 0.5, split="test")
    make_job(d, 1, {"loss.beta": "0.1", "evaluate.split": "dev"}, 40.0, 20.0, 0.5, split="test")
    chosen = dev_select.choose(build_table(d).rows, "evaluate.aligned.AST.score", "min")
    assert chosen["setting"] == {"loss.beta": "0.01"} and chosen["splits"] == ["test"]
    assert dev_select.test_overrides(build_table(d).rows[1]) == ["loss.beta=0.1", "evaluate.split=test"]
    res = dev_select.dev_and_test(d, build_table(d).rows, "evaluate.aligned.AST.score", "min",
                                  runner=_no_seed_runner())
    assert "**Warning: the sweep evaluated test" in dev_select.to_markdown(res)
    with pytest.raises(ValueError, match="no finished job has metric 'nope'"):
        dev_select.choose(build_table(d).rows, "nope")


def _no_seed_runner():
    def run(cmd, cwd, **kw):
        run_dir = Path(cmd[-1].split("=", 1)[1])
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps({"status": "ok", "metrics": {"evaluate.aligned.AST.score": 1.0}}))
        return SimpleNamespace(returncode=0, stderr="")
    return run


def test_a_failed_test_run_is_an_error_naming_the_job(sweep):
    rows = build_table(sweep).rows
    with pytest.raises(RuntimeError, match=r"test evaluation of job 3 failed .*boom"):
        dev_select.dev_and_test(sweep, rows, "evaluate.aligned.AST.score",
                                runner=lambda cmd, cwd, **kw: SimpleNamespace(returncode=1, stderr="boom"))


SRC = ["the cat sat on the mat quietly today", "a very big dog ran fast", "we went to the old town"]
REFS = [["the cat sat on the mat", "the cat sat today"], ["a big dog ran", "a dog ran fast"],
        ["we went to town", "we went to the town"]]
OUTS = {"aligned": [["the cat sat on the mat", "a big dog ran", "we went to town"],
                    ["the cat sat today", "a dog ran fast", "we went to the town"],
                    ["the cat sat on the mat today", "a big dog ran", "we went to town"]],
        "sft": [SRC, SRC, ["the cat sat on the mat quietly", "a very big dog ran", "we went to the old town"]]}


def _save_seed_stats(ev: Path, seed: int, ids: list[str]) -> None:
    from rationalign.metrics.resample import column_stats
    from rationalign.stages.eval_stats import save_stats

    stats = {s: {"AST": column_stats("sari", SRC, OUTS[s][seed], REFS)} for s in OUTS}
    save_stats(ev, stats, {"AST": ids})


def test_pooled_significance_is_the_sign_test_on_every_seeds_outputs(sweep):
    from rationalign.metrics.resample import column_stats
    from rationalign.significance import compare

    rows = [r for r in build_table(sweep).rows if r["overrides"]["loss.beta"] == "0.1"]
    for r in rows:
        _save_seed_stats(Path(r["stage_dirs"]["evaluate"]), int(r["overrides"]["seed"]), ["a", "b", "c"])
    (g,) = seed_groups(rows)
    pooled = g["significance"]["AST"]["aligned vs SFT(R)"]["pooled"]
    want = compare([column_stats("sari", SRC, OUTS["aligned"][i], REFS) for i in range(3)],
                   [column_stats("sari", SRC, OUTS["sft"][i], REFS) for i in range(3)])
    assert pooled["runs"] == want["runs"] == [3, 3] and pooled["n"] == 3
    assert pooled["p"] == want["p"] and pooled["wins"] == want["wins"] and pooled["losses"] == want["losses"]
    assert pooled["score_a"] == pytest.approx(sum(column_stats("sari", SRC, OUTS["aligned"][i], REFS).score()
                                                  for i in range(3)) / 3, rel=1e-12)
    assert f"| {pooled['p']:.3f} |" in to_markdown([g], ["seed"])


def test_pooled_significance_refuses_seeds_scored_on_other_sentences(sweep):
    rows = [r for r in build_table(sweep).rows if r["overrides"]["loss.beta"] == "0.1"]
    for r in rows:
        seed = int(r["overrides"]["seed"])
        _save_seed_stats(Path(r["stage_dirs"]["evaluate"]), seed, ["a", "b", "x" if seed == 2 else "c"])
    with pytest.raises(ValueError, match="other AST sentences"):
        seed_groups(rows)
