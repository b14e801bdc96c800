"""Issue 14: every input and option checked before the first stage, nothing dropped silently, no
secret on disk, a dead endpoint stops fast, incomplete stages are redone, one-line errors,
artifacts follow the umask, one run per stage dir at a time, presets never beat the command line."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rationalign.components import import_components
from rationalign.config import conf_dir
from rationalign.runner import compose, run
from rationalign.stages.base import Context
from rationalign.validate import ConfigError, validate

from .chat_server import ChatServer
from .conftest import REPO

DEMO = REPO / "rationalign" / "data" / "demo"
KEY = "sk-h14testKEY0123456789abcdefXYZ"


def cli(*args: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rationalign", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False, env={**os.environ, **(env or {})})


def demo_lines(split: str, n: int) -> list[dict]:
    return [json.loads(line) for line in (DEMO / f"{split}.jsonl").read_text().splitlines()[:n]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stage_dirs(root: Path) -> list[Path]:
    """Everything under the run's workdir except Hydra's logs/."""
    return [p for p in root.glob("*/*") if p.name != "logs"] if root.exists() else []


# ------------------------------------------------------------------ item 1: before any stage

def test_bad_test_file_fails_in_seconds_before_any_stage_dir(tmp_path):
    rows = demo_lines("test", 1) + [{"id": "t2", "task": "gec", "source": "x"}]  # line 2: no instruction
    bad = write_jsonl(tmp_path / "test.jsonl", rows)
    t0 = time.time()
    r = cli("stage=pipeline", "model=tiny", f"data.test={bad}", f"paths.root={tmp_path / 'out'}")
    assert r.returncode == 2
    assert f"{bad}:2: missing required field 'instruction'" in r.stderr
    assert time.time() - t0 < 60  # no model, no stage (the interpreter start dominates)
    assert stage_dirs(tmp_path / "out") == []


def test_bad_unlabeled_record_is_found_by_validation(tmp_path):
    import_components()
    bad = tmp_path / "u.jsonl"
    bad.write_text(json.dumps(demo_lines("unlabeled", 1)[0]) + "\n{not json\n")
    with pytest.raises(ConfigError, match=rf"{bad}:2: invalid JSON"):
        validate(compose([f"data.unlabeled={bad}"]))


@pytest.mark.parametrize("override,needle", [
    ("loss.beta=-1", "loss.beta=-1.0: out of range"),
    ("loss.lam=-0.5", "loss.lam=-0.5: out of range"),
    ("pairs.keep_fraction=1.5", "pairs.keep_fraction=1.5: out of range"),
    ("pairs.keep_fraction=-0.1", "pairs.keep_fraction=-0.1: out of range"),
    ("engine.sampling.top_p=2", "engine.sampling.top_p=2.0: out of range"),
    ("sample.m=0", "sample.m=0: out of range"),
    ("+loss.lamda=1", "loss.lamda: unknown key (did you mean lam?)"),
    ("+model.device=tpu", "model.device: unknown key"),
    ("device=tpu", "device=tpu: expected one of auto, cpu, cuda"),
    ("model.dtype=float8", "model.dtype=float8: expected one of"),
    ("evaluate.systems=[base,fooo]", "evaluate.systems: unknown system 'fooo'"),
])
def test_out_of_range_enum_and_unknown_keys_name_the_key(override, needle):
    import_components()
    with pytest.raises(ConfigError) as e:
        validate(compose([override]), data=False)
    assert needle in str(e.value)


def test_source_option_types_are_checked():
    import_components()
    with pytest.raises(ConfigError, match=r"rationale\.temperature=hot: wrong type"):
        validate(compose(["rationale=teacher", "rationale.temperature=hot"]), data=False)
    with pytest.raises(ConfigError, match=r"rationale\.temperature=5.0: out of range"):
        validate(compose(["rationale=teacher", "rationale.temperature=5"]), data=False)


def test_defaults_and_every_preset_pass_the_schema():
    import_components()
    validate(compose([]))
    for p in sorted((Path(conf_dir()) / "experiment").glob("*.yaml")):
        validate(compose([f"experiment={p.stem}"]), data=False)


@pytest.mark.parametrize("group", ["model", "loss", "engine", "data", "rationale", "task", "tracking", "stage"])
def test_every_shipped_group_option_is_inside_the_schema(group):
    from rationalign.config import schema_errors

    for p in sorted((Path(conf_dir()) / group).glob("*.yaml")):
        assert schema_errors(compose([f"{group}={p.stem}"])) == [], p


def test_cli_names_bad_keys_in_one_line(tmp_path):
    for arg, needle in [("+loss.lamda=1", "loss.lamda"), ("pairs.keep_fraction=1.5", "pairs.keep_fraction"),
                        ("loss.beta=-1", "loss.beta")]:
        r = cli("model=tiny", arg, f"paths.root={tmp_path}")
        assert r.returncode == 2 and needle in r.stderr
        assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1, r.stderr


def test_stage_keys_hash_only_the_splits_they_read(tmp_path):
    import_components()
    test = write_jsonl(tmp_path / "test.jsonl", demo_lines("test", 3))
    base = [f"data.test={test}", "model=tiny"]
    before = Context(cfg=compose(base), workdir=tmp_path)
    keys = {s: before.key(s) for s in ("sft", "kfold", "rationalize", "sample", "evaluate")}
    write_jsonl(test, demo_lines("test", 2))  # the user fixes the test file
    after = Context(cfg=compose(base), workdir=tmp_path)
    for s in ("sft", "kfold", "rationalize", "sample"):
        assert after.key(s) == keys[s], s
    assert after.key("evaluate") != keys["evaluate"]


# ------------------------------------------------------------------ item 2: no silent drops

def test_labeled_record_without_target_fails_naming_its_line(tmp_path):
    rows = demo_lines("labeled", 4)
    rows[2].pop("target")
    f = write_jsonl(tmp_path / "l.jsonl", rows)
    r = cli("model=tiny", f"data.labeled={f}", f"paths.root={tmp_path / 'out'}")
    assert r.returncode == 2 and f"{f}:3: field 'target' missing" in r.stderr
    assert "data.on_missing_target=skip" in r.stderr


def test_test_record_without_gold_fails_naming_its_line(tmp_path):
    import_components()
    rows = demo_lines("test", 3)
    rows[1].pop("target")
    rows[1].pop("references", None)
    f = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(ConfigError, match=rf"{f}:2: field 'target/references' missing"):
        validate(compose([f"data.test={f}"]))
    validate(compose([f"data.test={f}", "data.on_missing_gold=skip"]))


def test_empty_target_is_an_error_naming_the_line(tmp_path):
    import_components()
    rows = demo_lines("labeled", 2)
    rows[1]["target"] = "  "
    f = write_jsonl(tmp_path / "l.jsonl", rows)
    with pytest.raises(ConfigError, match=rf"{f}:2: field 'target' is empty"):
        validate(compose([f"data.labeled={f}"]))


def test_opted_in_skips_are_counted_in_the_manifest_and_log(tmp_path, caplog):
    rows = demo_lines("labeled", 4)
    rows[0].pop("target")
    f = write_jsonl(tmp_path / "l.jsonl", rows)
    cfg = compose([f"data.labeled={f}", "data.on_missing_target=skip", "stage=rationalize", "model=tiny",
                   f"paths.root={tmp_path / 'out'}"])
    with caplog.at_level("WARNING", logger="rationalign"):
        m = run(cfg)
    assert m["dropped"] == {"data.labeled": {"no target (data.on_missing_target=skip)": 1}}
    assert m["counts"]["labeled"] == 3
    assert any("dropped 1 record(s): no target" in r.message for r in caplog.records)


# ------------------------------------------------------------------ item 3: secrets

SECRET_ARGS = [
    f"+rationale.api_key={KEY}",
    f"rationale.api_key_env={KEY}",
    f"rationale.base_url=https://api.example.com/v1?api_key={KEY}",
    f"rationale.base_url=https://user:{KEY}@api.example.com/v1",
    f"+judge.token={KEY}",
    f"run_name={KEY}",
]


@pytest.mark.parametrize("arg", SECRET_ARGS)
def test_guard_refuses_secret_looking_arguments(arg):
    from rationalign.argv_guard import check_argv

    msg = check_argv(["model=tiny", arg])
    assert msg and "argument 2" in msg and KEY not in msg


@pytest.mark.parametrize("arg", ["rationale.api_key_env=OPENAI_API_KEY", "rationale.api_key_env=null",
                                 "rationale.base_url=http://127.0.0.1:8000/v1", "loss.beta=0.1",
                                 "quark.token_order=[a,b]", "engine.sampling.max_new_tokens=64"])
def test_guard_lets_ordinary_arguments_through(arg):
    from rationalign.argv_guard import check_argv

    assert check_argv([arg]) is None


def test_key_on_the_command_line_reaches_no_file(tmp_path):
    out = tmp_path / "out"
    for arg in SECRET_ARGS:
        r = cli("stage=rationalize", "model=tiny", "rationale=teacher", "data.max_labeled_per_task=1",
                arg, f"paths.root={out}", f"hydra.run.dir={tmp_path / 'hydra'}")
        assert r.returncode == 2, (arg, r.stderr)
        assert KEY not in r.stderr + r.stdout
    # The same pipeline without the key runs and writes its files; none holds the key.
    r = cli("stage=rationalize", "model=tiny", "data.max_labeled_per_task=1", f"paths.root={out}",
            f"hydra.run.dir={tmp_path / 'hydra'}", env={"OPENAI_API_KEY": KEY})
    assert r.returncode == 0, r.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in files) and any(p.name == "manifest.json" for p in files)
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


# ------------------------------------------------------------------ item 4: endpoints

def _dead_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def _teacher_overrides(tmp_path, base_url: str, *extra: str) -> list[str]:
    return ["stage=rationalize", "model=tiny", "rationale=teacher", f"rationale.base_url={base_url}",
            "rationale.api_key_env=null", "rationale.max_retries=0", "rationale.progress=false",
            f"rationale.cache_dir={tmp_path / 'cache'}", "data.max_labeled_per_task=3",
            f"paths.root={tmp_path / 'out'}", *extra]


def test_dead_endpoint_trips_the_circuit_breaker_fast(tmp_path):
    from rationalign.llm.client import EndpointDown

    cfg = compose(_teacher_overrides(tmp_path, f"http://127.0.0.1:{_dead_port()}/v1",
                                     "rationale.max_consecutive_connection_failures=2", "rationale.concurrency=1",
                                     "data.max_labeled_per_task=20"))
    t0 = time.time()
    with pytest.raises(EndpointDown, match="2 requests in a row could not connect") as e:
        run(cfg)
    assert time.time() - t0 < 30 and "\n" not in str(e.value)
    assert "rerun" in str(e.value)


def test_stage_with_skipped_records_is_not_cached_and_rerun_retries(tmp_path):
    dead = f"http://127.0.0.1:{_dead_port()}/v1"
    ov = _teacher_overrides(tmp_path, dead, "rationale.on_error=skip",
                            "rationale.max_consecutive_connection_failures=0")
    m = run(compose(ov))
    assert m["counts"]["failed"] == 3 and "3 of 3 rationales failed" in m["incomplete"]
    ctx = Context(cfg=compose(ov), workdir=Path(compose(ov).paths.workdir))
    assert not ctx.is_done("rationalize")
    with ChatServer() as srv:  # the endpoint is back: same key, same dir, now complete
        ov_live = [o if not o.startswith("rationale.base_url=") else f"rationale.base_url={srv.base_url}"
                   for o in ov]
        m2 = run(compose(ov_live))
        assert m2["counts"]["failed"] == 0 and "incomplete" not in m2
        asked = srv.requests
        run(compose(ov_live))
        assert srv.requests == asked  # cached as done now: nothing asked again


# ------------------------------------------------------------------ item 5: errors

def test_non_utf8_and_huge_lines_name_file_and_line(tmp_path):
    import_components()
    rows = demo_lines("labeled", 3)
    f = tmp_path / "l.jsonl"
    lines = [json.dumps(r).encode() for r in rows]
    lines[1] = lines[1].replace(b'"source": "', b'"source": "\xff', 1)  # a Latin-1 byte in line 2
    f.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ConfigError, match=rf"{f}:2: not UTF-8"):
        validate(compose([f"data.labeled={f}"]))
    rows[2]["source"] = "word " * 1_000_000
    write_jsonl(f, rows)
    with pytest.raises(ConfigError, match=rf"{f}:3: field 'source' is 5000000 characters"):
        validate(compose([f"data.labeled={f}"]))


def test_error_inside_a_stage_is_one_line_unless_full_error(tmp_path):
    args = ["stage=align", "model=tiny", f"align.pairs={tmp_path / 'missing.jsonl'}", "align.init=base",
            f"paths.root={tmp_path}"]
    r = cli(*args)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if line.strip() and "Warning" not in line
             and not line.startswith(" ") and "[" not in line[:1]]
    assert lines and lines[-1].startswith("error: ") and "missing.jsonl" in lines[-1]
    assert "Traceback" not in r.stderr
    full = cli(*args, env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr


def test_no_pairs_message_says_why_and_what_to_change():
    from rationalign.stages.pairs import no_pairs_message, select_pairs

    rows = [{"id": "a", "task": "gec", "instruction": "", "source": "s",
             "candidates": [{"ok": False, "reason": "no rationale marker", "suggestion": None, "text": "x"},
                            {"ok": True, "suggestion": "t", "text": "t", "reward": 1.0}]},
            {"id": "b", "task": "gec", "instruction": "", "source": "s",
             "candidates": [{"ok": True, "suggestion": "u", "text": "u", "reward": 1.0},
                            {"ok": True, "suggestion": "u", "text": "u", "reward": 1.0}]}]
    pairs, counts = select_pairs(rows, 0.5)
    assert pairs == []
    msg = no_pairs_message(rows, counts, Path("c.jsonl"))
    assert "1 of 4 samples were malformed ({'no rationale marker': 1})" in msg
    assert "1 of 2 inputs had fewer than two well-formed samples" in msg and "1 had tied samples" in msg
    assert "sample.m" in msg and "c.jsonl" in msg


# ------------------------------------------------------------------ item 6: umask, locks

@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_artifacts_follow_the_umask(tmp_path, umask, mode):
    from rationalign.io import atomic_write_json

    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == mode


def test_second_identical_run_waits_for_the_lock_and_reuses(tmp_path):
    from rationalign.stages.base import STAGES, register_stage, run_stage

    calls = []

    def slow(ctx, out):
        calls.append(time.time())
        time.sleep(0.5)
        (out / "x.json").write_text("{}")
        return {"counts": {"n": 1}}

    if "lock_probe" not in STAGES.names():
        register_stage("lock_probe", config_keys=("seed",))(slow)
    STAGES.get("lock_probe").run = slow
    cfg = compose(["model=tiny"])
    results = []

    def go():
        results.append(run_stage(Context(cfg=cfg, workdir=tmp_path), "lock_probe"))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2 and results[0]["key"] == results[1]["key"]


# ------------------------------------------------------------------ item 7: presets

@pytest.mark.parametrize("preset", sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml")))
def test_command_line_group_choice_beats_every_preset(preset):
    assert compose([f"experiment={preset}", "stage=reward"]).stage.name == "reward"
    assert compose([f"experiment={preset}", "stage=sample"]).stage.name == "sample"


# ------------------------------------------------------------------ item 8: smoke

@pytest.mark.slow
def test_smoke_preset_runs_every_loss_and_quark(tmp_path):
    t0 = time.time()
    r = cli("stage=pipeline", "model=tiny", "experiment=smoke", f"paths.root={tmp_path}", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    seconds = time.time() - t0
    aligned = {json.loads(p.read_text())["config"]["loss"]["name"]
               for p in (tmp_path / "smoke" / "align").glob("*/manifest.json")}
    assert aligned == {"mpo", "dpo", "cpo", "orpo", "simpo", "rdpo", "rorpo"}
    assert list((tmp_path / "smoke" / "quark").glob("*/manifest.json"))
    print(f"experiment=smoke: {seconds:.0f}s")


def test_no_reward_pairs_message_says_why_and_what_to_change(tmp_path):
    from rationalign.stages.reward import no_rm_pairs_message

    import_components()
    ctx = Context(cfg=compose(["model=tiny", f"paths.root={tmp_path}"]), workdir=tmp_path)
    kdir = ctx.stage_dir("kfold")
    kdir.mkdir(parents=True)
    (kdir / "manifest.json").write_text(json.dumps({"counts": {"labeled": 8, "dropped": {"metric_tie": 8}}}))
    msg = no_rm_pairs_message(ctx)
    assert "no reward-model pairs from 8 labeled records (dropped: {'metric_tie': 8})" in msg
    assert "kfold.n_samples" in msg and "reward.pairs=" in msg and str(kdir) in msg
