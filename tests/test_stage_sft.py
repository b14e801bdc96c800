"""stage=rationalize and stage=sft on the tiny model: artifacts, manifests, skip-on-rerun."""

import json

from rationalign.data.records import load_records
from rationalign.runner import compose, run


def test_sft_with_template_rationales_runs_and_resumes(tiny_overrides):
    cfg = compose(["stage=sft", "task=all", *tiny_overrides])
    m = run(cfg)
    assert m["stage"] == "sft" and m["counts"]["records"] == 6 * 8
    assert m["counts"]["with_rationale"] == 6 * 8
    from rationalign.stages.base import Context

    ctx = Context(cfg=cfg, workdir=__import__("pathlib").Path(cfg.paths.workdir))
    sft_dir = ctx.stage_dir("sft")
    assert (sft_dir / "adapter" / "adapter_config.json").exists()
    d_e = load_records(ctx.stage_dir("rationalize") / "d_e.jsonl")
    assert len(d_e) == 48 and all(r.rationale and "because" in r.rationale for r in d_e)
    manifest = json.loads((sft_dir / "manifest.json").read_text())
    assert manifest["upstream"] == {"rationalize": ctx.key("rationalize")}
    assert manifest["metrics"]["steps"] > 0 and manifest["seed"] == cfg.seed
    # Same config again: skipped, the manifest is untouched.
    before = (sft_dir / "manifest.json").stat().st_mtime
    run(compose(["stage=sft", "task=all", *tiny_overrides]))
    assert (sft_dir / "manifest.json").stat().st_mtime == before


def test_changing_a_stage_option_gives_a_new_dir_and_keeps_upstream(tiny_overrides):
    a = compose(["stage=sft", *tiny_overrides])
    b = compose(["stage=sft", "sft.train.lr=1e-4", *tiny_overrides])
    from pathlib import Path

    from rationalign.stages.base import Context

    ca, cb = Context(a, Path(a.paths.workdir)), Context(b, Path(b.paths.workdir))
    import rationalign.stages.rationalize
    import rationalign.stages.sft  # noqa: F401

    assert ca.key("sft") != cb.key("sft")
    assert ca.key("rationalize") == cb.key("rationalize")


def test_sft_without_rationale_skips_rationalize(tiny_overrides):
    cfg = compose(["stage=sft", "rationale.position=none", *tiny_overrides])
    m = run(cfg)
    assert m["upstream"] == {} and m["counts"]["with_rationale"] == 0
