"""Preference rationales r for (x, y_w, y_l) pairs (RDPO / RORPO; Just et al. 2024): the pair mode
of the rationale sources (template / teacher / local / file, registered with their typed options in
PAIR_SOURCES), per-pair randomised response order, and the permute / opposite ablations. They share
the record sources' edit reasons (rationale.template), file reader (rationale.file), output
cleaning (rationale.prompt) and endpoint (rationalign.llm). The stage is stages/pair_rationales."""

from rationalign.rationale.pairs.ablations import derangement, permute
from rationalign.rationale.pairs.config import (
    PAIR_SOURCES,
    PairFileConfig,
    PairLocalConfig,
    PairTeacherConfig,
    PairTemplateConfig,
    parse_pair_rationale_config,
)
from rationalign.rationale.pairs.sources import generate
from rationalign.rationale.pairs.views import PairView, chosen_first, condition_prompt

__all__ = ["PAIR_SOURCES", "PairFileConfig", "PairLocalConfig", "PairTeacherConfig", "PairTemplateConfig",
           "PairView", "chosen_first", "condition_prompt", "derangement", "generate",
           "parse_pair_rationale_config", "permute"]
