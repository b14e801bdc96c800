"""Preference rationales r for (x, y_w, y_l) pairs (RDPO / RORPO; Just et al. 2024): sources
template / teacher / local / file, per-pair randomised response order, and the permute / opposite
ablations. The stage is rationalign.stages.pair_rationales."""

from rationalign.pair_rationale.ablations import derangement, permute
from rationalign.pair_rationale.config import PairRationaleConfig, parse_pair_rationale_config
from rationalign.pair_rationale.views import PairView, chosen_first, condition_prompt

__all__ = ["PairRationaleConfig", "PairView", "chosen_first", "condition_prompt", "derangement",
           "parse_pair_rationale_config", "permute"]
