"""stage=rationalize: D_L -> D_E = {x, s, e}: errant edits, then a rationale per record."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import OmegaConf

from rationalign.data.records import Record, save_records
from rationalign.data.splits import labeled_files, load_split
from rationalign.io import atomic_write_jsonl
from rationalign.stages.base import Context, register_stage

log = logging.getLogger("rationalign")


@register_stage(
    "rationalize",
    # The teacher's prompt (Fig. 3, Table 10) and, for rationale=local, its layout.
    config_keys=("task.names", "task.specs", "data", "rationale", "prompts.teacher_template", "prompts.edits",
                 "prompts.layout", "prompts.chat", "seed"),
    input_files=labeled_files,
    generates=lambda cfg: cfg.rationale.name == "local",  # the local source generates with the engine
)
def run_rationalize(ctx: Context, out: Path) -> dict:
    """Extract edits with errant and attach a rationale from the configured source."""
    from rationalign.edits import format_edits
    from rationalign.rationale import STAGE_KEYS, StageOptions, build_source, edits_for_records, local_generator
    from rationalign.typed_options import typed_options

    cfg = ctx.cfg
    rat = OmegaConf.to_container(cfg.rationale, resolve=True)
    stage_opts = typed_options(StageOptions, {k: rat[k] for k in STAGE_KEYS if k in rat}, "rationale")
    records = [r for r in load_split(cfg, "labeled") if r.target is not None]
    runtime = {}
    if rat["name"] in ("teacher", "local"):
        from rationalign.rationale.prompt import teacher_prompt

        runtime["prompt"] = teacher_prompt(cfg.prompts, cfg.task)
    if rat["name"] == "local":
        runtime["generator"] = local_generator(cfg, rat.get("model"))
    try:
        source = build_source(rat, **runtime)
        edits = edits_for_records(records)
        result = source.explain_report(records, edits)
    finally:
        if "generator" in runtime:
            runtime["generator"].close()
    summary = result.summary()
    failed = {f.id for f in result.failures}
    if failed and stage_opts.on_error == "fail":
        atomic_write_jsonl(out / "failures.jsonl", summary["failures"])
        result.raise_if_failed()
    kept = []
    for rec, e, rationale in zip(records, edits, result.rationales):
        if rec.id in failed:
            continue  # on_error=skip: listed in the manifest's failures, never silently
        meta = {**rec.meta, "edits": format_edits(e or []), "n_edits": len(e or [])}
        kept.append(Record(**{**rec.__dict__, "rationale": rationale, "meta": meta}))
    save_records(out / "d_e.jsonl", kept)
    if failed:
        log.warning("rationalize: %d of %d records have no rationale (rationale.on_error=skip); listed in "
                    "the manifest's failures", len(failed), len(records))
    return {"incomplete": f"{len(failed)} of {len(records)} rationales failed (rationale.on_error=skip)"
            if failed else None,
            "counts": {"labeled": len(records), "kept": len(kept), "failed": len(failed),
                       "with_rationale": sum(1 for r in kept if r.rationale)},
            "failures": summary["failures"]}
