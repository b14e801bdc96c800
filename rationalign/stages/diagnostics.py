"""The diagnostics a researcher reads before believing an alignment result (evaluate.diagnostics):
the reranking headroom of each evaluated SFT model (stage=headroom) and the statistics of the
preference pairs D_H each aligned model trained on (stage=pairs' manifest).
"""

from __future__ import annotations

import json
from typing import Any

from rationalign.stages.base import MANIFEST, Context
from rationalign.stages.common import no_rationale_ctx

# system -> (its branch: with or without rationale, the stage whose output is diagnosed)
_SFT = {"sft": False, "sft_no_rationale": True}
_ALIGNED = {"aligned": False, "aligned_no_rationale": True}


def diagnostics_upstream(systems) -> tuple[str, ...]:
    return ("headroom",) if "sft" in systems else ()


def alignment_diagnostics(ctx: Context, systems: list[str]) -> dict[str, Any]:
    """{"headroom": {sft system: table}, "d_h": {aligned system: {counts, stats}}}."""
    out: dict[str, Any] = {"headroom": {}, "d_h": {}}
    for system in systems:
        if system in _SFT:
            sub = no_rationale_ctx(ctx) if _SFT[system] else ctx
            out["headroom"][system] = json.loads((sub.require("headroom") / "headroom.json").read_text())
        if system in _ALIGNED:
            sub = no_rationale_ctx(ctx) if _ALIGNED[system] else ctx
            manifest = sub.stage_dir("pairs") / MANIFEST
            if manifest.exists():
                m = json.loads(manifest.read_text())
                out["d_h"][system] = {"counts": m.get("counts"), "stats": m.get("d_h")}
    return out
