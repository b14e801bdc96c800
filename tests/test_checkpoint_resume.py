"""Issue 27, item 3: a checkpoint-N that a kill inside transformers' (non-atomic) save left without
trainer_state.json, optimizer or RNG files is skipped with a logged reason; the run resumes from the
newest complete checkpoint instead of failing on every rerun."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rationalign.runner import compose, run
from rationalign.stages.base import Context
from rationalign.training.trainer import checkpoint_problem, last_checkpoint


def fake_checkpoint(root: Path, step: int, *, drop: tuple[str, ...] = ()) -> Path:
    d = root / "checkpoints" / f"checkpoint-{step}"
    d.mkdir(parents=True)
    files = {"trainer_state.json": json.dumps({"global_step": step}), "adapter_model.safetensors": "w",
             "optimizer.pt": "o", "scheduler.pt": "s", "rng_state.pth": "r"}
    for name, text in files.items():
        if name not in drop:
            (d / name).write_text(text)
    return d


def test_newest_complete_checkpoint_is_chosen_and_the_rest_logged(tmp_path, caplog):
    good = fake_checkpoint(tmp_path, 2)
    fake_checkpoint(tmp_path, 3, drop=("trainer_state.json", "optimizer.pt", "rng_state.pth"))
    fake_checkpoint(tmp_path, 4, drop=("rng_state.pth",))
    with caplog.at_level(logging.WARNING, logger="rationalign"):
        assert last_checkpoint(tmp_path) == str(good)
    assert "checkpoint-4: incomplete checkpoint (no RNG state" in caplog.text
    assert "checkpoint-3: incomplete checkpoint (no trainer_state.json)" in caplog.text


def test_each_missing_part_makes_a_checkpoint_incomplete(tmp_path):
    assert checkpoint_problem(fake_checkpoint(tmp_path, 1)) is None
    assert "model weights" in checkpoint_problem(fake_checkpoint(tmp_path, 2, drop=("adapter_model.safetensors",)))
    assert "optimizer" in checkpoint_problem(fake_checkpoint(tmp_path, 3, drop=("optimizer.pt",)))
    half = fake_checkpoint(tmp_path, 4)
    (half / "trainer_state.json").write_text('{"global_st')
    assert "unreadable trainer_state.json" in checkpoint_problem(half)
    assert last_checkpoint(tmp_path / "nothing") is None


def test_sft_reruns_past_a_half_saved_checkpoint(tiny_overrides, caplog):
    ov = ["stage=sft", "rationale.position=none", "sft.train.max_steps=3", "sft.train.save_steps=1", *tiny_overrides]
    cfg = compose(ov)
    first = run(cfg)
    sft_dir = Context(cfg=cfg, workdir=Path(cfg.paths.workdir)).stage_dir("sft")
    newest = sft_dir / "checkpoints" / "checkpoint-3"
    for name in ("trainer_state.json", "optimizer.pt", "rng_state.pth"):  # what a kill mid-save leaves out
        (newest / name).unlink()
    (sft_dir / "manifest.json").unlink()  # the stage did not finish either
    with caplog.at_level(logging.INFO, logger="rationalign"):
        again = run(compose(ov))
    assert "checkpoint-3: incomplete checkpoint (no trainer_state.json)" in caplog.text
    assert f"resuming from {sft_dir / 'checkpoints' / 'checkpoint-2'}" in caplog.text
    assert again["metrics"]["steps"] == first["metrics"]["steps"] == 3
