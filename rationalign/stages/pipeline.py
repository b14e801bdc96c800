"""stage=pipeline: rationalize -> kfold -> reward -> sft -> sample -> pairs -> align -> evaluate.

Nothing here orchestrates by hand: every stage names its upstream, so asking for `evaluate` (with
the aligned system in evaluate.systems) builds the rest, and stages whose manifest matches are
skipped. This stage then gathers where every artifact is and prints the report.
"""

from __future__ import annotations

from pathlib import Path

from rationalign.io import atomic_write_json
from rationalign.stages.artifacts import read_manifest
from rationalign.stages.base import MANIFEST, STAGES, Context, register_stage

ORDER = ("rationalize", "kfold", "reward", "sft", "sample", "pairs", "align", "evaluate")
# Stages a configuration may add (rdpo/rorpo's pair rationales, a QUARK comparison system): listed
# among the artifacts when this configuration ran them.
OPTIONAL = ("pair_rationales", "quark", "headroom")


def pipeline_upstream(cfg) -> tuple[str, ...]:
    return ("align", "evaluate")


@register_stage("pipeline", upstream=pipeline_upstream)
def run_pipeline(ctx: Context, out: Path) -> dict:
    """The whole Rationalize & Align pipeline and the final report."""
    artifacts = {}
    for name in (*ORDER, *OPTIONAL):
        d = ctx.stage_dir(name)
        m, _ = read_manifest(d / MANIFEST)  # an optional stage of another run may be unreadable: not listed
        if m is not None:
            artifacts[name] = {"dir": str(d), "seconds": m.get("seconds"), "counts": m.get("counts")}
    atomic_write_json(out / "artifacts.json", artifacts)
    report = ctx.stage_dir("evaluate") / f"{ctx.cfg.evaluate.report_name}.md"
    lines = ["", "Artifacts:"] + [f"  {k:<12} {v['dir']}  ({v['seconds']}s)" for k, v in artifacts.items()]
    lines.append(f"  report       {report}")
    print("\n".join(lines))
    assert set(ORDER + OPTIONAL) <= set(STAGES.names())
    return {"artifacts": artifacts, "report": str(report)}
