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


def _local_generator(cfg, rat: dict):
    """rationale=local: a model (path/hub id, default: the configured base) through the engine factory
    (engine=hf or vllm). The caller closes it."""
    from rationalign.engines import build_engine

    model_cfg = {"source": "hf", "path": rat["model"], "dtype": cfg.model.dtype} if rat.get("model") else cfg.model
    return build_engine(cfg, model_cfg=model_cfg)


@register_stage(
    "rationalize",
    # The teacher's prompt (Fig. 3, Table 10) and, for rationale=local, its layout.
    config_keys=("task.names", "task.specs", "data", "rationale", "prompts.teacher_template", "prompts.edits",
                 "prompts.layout", "prompts.chat", "seed"),
    input_files=labeled_files,
)
def run_rationalize(ctx: Context, out: Path) -> dict:
    """Extract edits with errant and attach a rationale from the configured source."""
    from rationalign.edits import format_edits
    from rationalign.rationale import build_source, edits_for_records
    from rationalign.validate import source_options

    cfg = ctx.cfg
    rat = OmegaConf.to_container(cfg.rationale, resolve=True)
    records = [r for r in load_split(cfg, "labeled") if r.target is not None]
    runtime = {}
    if rat["name"] in ("teacher", "local"):
        from rationalign.rationale.prompt import teacher_prompt

        runtime["prompt"] = teacher_prompt(cfg.prompts, cfg.task)
    if rat["name"] == "local":
        runtime["generator"] = _local_generator(cfg, rat)
    try:
        source = build_source(source_options(rat), **runtime)
        edits = edits_for_records(records)
        result = source.explain_report(records, edits)
    finally:
        if "generator" in runtime:
            runtime["generator"].close()
    summary = result.summary()
    failed = {f.id for f in result.failures}
    if failed and rat.get("on_error", "fail") == "fail":
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
