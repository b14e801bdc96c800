"""The final numbers of an evaluate stage, flat and numeric, under one set of names.

These names are what a run's wandb summary holds (rationalign.tracking), what a sweep job's
result.json adds to its metrics (rationalign.sweep) and what the sweep table ranks
(rationalign.report_sweep), so a name read on the dashboard is a name `experiments/aggregate.py
--metric` accepts. For an evaluate manifest (stage=evaluate), relative to the stage:

  <system>.<column>.score        the Table 1 cell: SARI, F0.5, BLEU, ... (0-100)
  <system>.<column>.formality    GYAFC only: formality accuracy of the outputs
  <system>.<column>.n            test records scored (bookkeeping, never ranked)
  <system>.<column>.malformed    outputs that did not parse (bookkeeping, never ranked)
  <system>.ALL                   the mean over the columns present (BLEU for GYAFC), as in the report
  <system>.mean_reward           the reward model's mean score of the system's test outputs
  <system>.mean_metric           the mean sentence-level task metric of those outputs
  <system>.faithfulness.coverage / .precision   rationale faithfulness, all tasks pooled
  reward_model.heldout_accuracy  the RM's pairwise accuracy on K-fold pairs it never trained on (0-1)
  reward_model.heldout_pairs     how many pairs that accuracy is over (bookkeeping)

The last four groups need `evaluate.analyses=true`; a value that is N.A. (None) is left out, not
written as 0. A job of stage=pipeline carries them with the prefix `evaluate.`.
"""

from __future__ import annotations

import math
from typing import Any

from rationalign.report import all_average

CELL_FIELDS = ("score", "formality", "n", "malformed")


def _num(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return v


def report_metrics(manifest: dict, prefix: str = "") -> dict[str, float | int]:
    """{name: number} of an evaluate manifest (its `metrics` and `analyses`), names prefixed by `prefix`."""
    out: dict[str, float | int] = {}

    def put(name: str, value: Any) -> None:
        if _num(value) is not None:
            out[prefix + name] = value

    for system, cells in (manifest.get("metrics") or {}).items():
        if not isinstance(cells, dict):
            continue
        for column, cell in cells.items():
            for field in CELL_FIELDS:
                put(f"{system}.{column}.{field}", (cell or {}).get(field))
        put(f"{system}.ALL", all_average({c: v for c, v in cells.items() if _num((v or {}).get("score")) is not None}))
    analyses = manifest.get("analyses") or {}
    rm = analyses.get("reward_model") or {}
    put("reward_model.heldout_accuracy", rm.get("heldout_accuracy"))
    put("reward_model.heldout_pairs", rm.get("heldout_pairs"))
    for system, s in (rm.get("systems") or {}).items():
        put(f"{system}.mean_reward", (s or {}).get("mean_reward"))
        put(f"{system}.mean_metric", (s or {}).get("mean_metric"))
    for system, fa in (analyses.get("faithfulness") or {}).items():
        overall = (fa or {}).get("overall") or {}
        put(f"{system}.faithfulness.coverage", overall.get("coverage"))
        put(f"{system}.faithfulness.precision", overall.get("precision"))
    return out
