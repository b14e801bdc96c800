"""Issue 27, items 1-2: a stage is reused only when its manifest parses, every file it lists is on
disk as recorded, and the upstream outputs it was built from are still the upstream's outputs.

Two probe stages stand in for pairs -> align: `trust_up` writes a 12-line d_h.jsonl, `trust_down`
"trains" on it (records how many lines it read). Before the fix, a truncated d_h.jsonl was reused
("up to date") and a new downstream trained on 7 lines; a half-written manifest raised a JSON error
naming no file."""

from __future__ import annotations

import json
import logging
import os

import pytest
from omegaconf import OmegaConf

from rationalign.io import atomic_write_json
from rationalign.stages import artifacts
from rationalign.stages.base import STAGES, Context, register_stage, run_stage

STATE = {"variant": 0, "runs": [], "crash": False}


def _up(ctx, out):
    STATE["runs"].append("up")
    rows = [{"i": i, "variant": STATE["variant"]} for i in range(12)]
    (out / "d_h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"counts": {"pairs": len(rows)}}


def _down(ctx, out):
    STATE["runs"].append("down")
    lines = (ctx.require("trust_up") / "d_h.jsonl").read_text().splitlines()
    (out / "partial.json").write_text(json.dumps({"variant_seen": json.loads(lines[0])["variant"]}))
    if STATE["crash"]:
        raise RuntimeError("killed mid-stage")
    atomic_write_json(out / "model.json", {"trained_on": len(lines)})
    return {"counts": {"trained_on": len(lines)}}


if "trust_up" not in STAGES.names():
    register_stage("trust_up", config_keys=("seed",))(_up)
    register_stage("trust_down", config_keys=("seed", "lr"), upstream=("trust_up",))(_down)


@pytest.fixture(autouse=True)
def _fresh_state():
    STATE.update(variant=0, runs=[], crash=False)


def ctx_for(tmp_path, lr=0.1) -> Context:
    return Context(cfg=OmegaConf.create({"seed": 1, "lr": lr}), workdir=tmp_path)


def trained_on(ctx) -> int:
    return json.loads((ctx.stage_dir("trust_down") / "model.json").read_text())["trained_on"]


def test_truncated_artifact_is_rebuilt_not_trusted(tmp_path, caplog):
    ctx = ctx_for(tmp_path)
    run_stage(ctx, "trust_down")
    assert trained_on(ctx) == 12
    d_h = ctx.stage_dir("trust_up") / "d_h.jsonl"
    d_h.write_text("".join(d_h.read_text().splitlines(keepends=True)[:7]))  # `head -7`
    STATE["runs"].clear()
    new = ctx_for(tmp_path, lr=0.2)  # a new downstream key, as `stage=align` with another option
    with caplog.at_level(logging.INFO, logger="rationalign"):
        run_stage(new, "trust_down")
    assert trained_on(new) == 12 and STATE["runs"] == ["up", "down"]
    assert f"stage trust_up: not reused, rebuilding: {d_h}:" in caplog.text and "the manifest recorded" in caplog.text
    STATE["runs"].clear()
    run_stage(ctx_for(tmp_path), "trust_down")  # the rebuilt upstream has the same files: old downstream reused
    assert STATE["runs"] == []


def test_missing_or_edited_output_is_found(tmp_path):
    ctx = ctx_for(tmp_path)
    run_stage(ctx, "trust_up")
    d_h = ctx.stage_dir("trust_up") / "d_h.jsonl"
    text = d_h.read_text()
    d_h.write_text(text.replace('"variant": 0', '"variant": 9', 1))  # same size, new content and mtime
    assert "content differs from the manifest's sha256" in ctx.stale_reason("trust_up")
    d_h.unlink()
    assert ctx.stale_reason("trust_up") == f"{d_h}: missing"


def test_half_written_manifest_is_rebuilt_naming_it(tmp_path, caplog):
    ctx = ctx_for(tmp_path)
    run_stage(ctx, "trust_up")
    manifest = ctx.stage_dir("trust_up") / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    STATE["runs"].clear()
    with caplog.at_level(logging.INFO, logger="rationalign"):
        m = run_stage(ctx, "trust_up")  # no JSON error: a rebuild, logged with the path
    assert STATE["runs"] == ["up"] and m["counts"]["pairs"] == 12
    assert f"{manifest}: not valid JSON" in caplog.text
    assert json.loads(manifest.read_text())["key"] == ctx.key("trust_up")


def test_rebuilt_upstream_with_other_outputs_makes_downstream_stale(tmp_path):
    ctx = ctx_for(tmp_path)
    run_stage(ctx, "trust_down")
    up_dir = ctx.stage_dir("trust_up")
    (up_dir / "manifest.json").unlink()  # the upstream is rebuilt (e.g. after a crash) ...
    STATE["variant"] = 1  # ... and comes out different (another machine, a nondeterministic kernel)
    run_stage(ctx_for(tmp_path), "trust_up")
    STATE["runs"].clear()
    ctx = ctx_for(tmp_path)
    assert "upstream trust_up was rebuilt with different outputs" in ctx.stale_reason("trust_down")
    run_stage(ctx, "trust_down")
    assert STATE["runs"] == ["down"]
    assert json.loads((ctx.stage_dir("trust_down") / "partial.json").read_text())["variant_seen"] == 1


def test_resumed_dir_started_from_other_upstream_outputs_is_cleared(tmp_path, caplog):
    ctx = ctx_for(tmp_path)
    STATE["crash"] = True
    with pytest.raises(RuntimeError, match="killed mid-stage"):
        run_stage(ctx, "trust_down")
    down = ctx.stage_dir("trust_down")
    (down / "leftover.bin").write_bytes(b"from the old inputs")
    (ctx.stage_dir("trust_up") / "manifest.json").unlink()
    STATE.update(variant=1, crash=False)
    run_stage(ctx_for(tmp_path), "trust_up")
    with caplog.at_level(logging.INFO, logger="rationalign"):
        run_stage(ctx_for(tmp_path), "trust_down")
    assert "was started from other upstream outputs; clearing it" in caplog.text
    assert not (down / "leftover.bin").exists()


def test_reuse_costs_a_stat_per_file_and_a_hash_only_when_touched(tmp_path, monkeypatch):
    ctx = ctx_for(tmp_path)
    run_stage(ctx, "trust_down")
    hashed = []
    real = artifacts.sha256_file
    monkeypatch.setattr(artifacts, "sha256_file", lambda p: hashed.append(p) or real(p))
    STATE["runs"].clear()
    run_stage(ctx_for(tmp_path), "trust_down")
    assert STATE["runs"] == [] and hashed == []
    d_h = ctx.stage_dir("trust_up") / "d_h.jsonl"
    os.utime(d_h, ns=(d_h.stat().st_atime_ns, d_h.stat().st_mtime_ns + 10**9))  # touched, same bytes
    assert ctx_for(tmp_path).stale_reason("trust_up") is None and hashed == [d_h]


def test_manifest_lists_model_files_but_not_checkpoints(tmp_path):
    out = tmp_path / "s"
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoints" / "checkpoint-2" / "optimizer.pt").write_bytes(b"x")
    (out / ".d_h.jsonl.123.tmp").write_text("partial")
    outputs, stats = artifacts.describe_outputs(out)
    assert list(outputs) == ["adapter/adapter_model.safetensors"]
    assert stats["adapter/adapter_model.safetensors"][0] == 64
