"""End-to-end checks on the embedded SmolLM2-135M (slow: `make test-slow`, run once in CI)."""

import json
from pathlib import Path

import pytest

from rationalign.runner import compose, run
from rationalign.stages.base import Context

pytestmark = pytest.mark.slow


def test_sft_loss_falls_on_demo_data(tmp_path):
    cfg = compose(["stage=sft", "model=smollm2-135m", "task=gec", f"paths.root={tmp_path}",
                   "data.max_labeled_per_task=16", "sft.train.epochs=4", "sft.train.batch_size=8",
                   "sft.train.lr=1e-3", "sft.train.logging_steps=1"])
    run(cfg)
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    log = json.loads((ctx.stage_dir("sft") / "train_log.json").read_text())
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) == 8
    # first epoch's mean vs last epoch's mean: the adapter learns the demo format
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses


def test_sft_model_learns_the_response_format(tmp_path):
    """After SFT with rationales, greedy answers parse into suggestion + rationale."""
    from rationalign.data.splits import load_split
    from rationalign.engines.hf import HFEngine
    from rationalign.models import load_trained
    from rationalign.prompts import parse_response
    from rationalign.stages.common import layout, user_message

    cfg = compose(["stage=sft", "model=smollm2-135m", "task=gec", f"paths.root={tmp_path}",
                   "data.max_labeled_per_task=32", "data.max_test_per_task=6", "sft.train.epochs=4",
                   "sft.train.lr=1e-3"])
    run(cfg)
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    model, tok = load_trained(cfg.model, ctx.stage_dir("sft") / "adapter")
    test = load_split(cfg, "test")
    outs = HFEngine(model, tok, batch_size=8, progress=False, layout=layout(cfg)).generate(
        [user_message(cfg, r) for r in test], temperature=0, max_new_tokens=64)
    parsed = [parse_response(o, "after", cfg.prompts) for o in outs]
    assert sum(p.ok for p in parsed) >= len(parsed) // 2, outs
