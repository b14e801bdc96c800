"""One pair as the rationale sources see it, the per-pair order of the two responses, and the
conditioning prompt the policy scores the rationale under."""

from __future__ import annotations

import random
from dataclasses import dataclass

from rationalign.io import sha256_json
from rationalign.llm.asker import fill


@dataclass
class PairView:
    id: str
    prompt: str                     # the WA's user message x
    chosen: str                     # full responses y_w, y_l
    rejected: str
    chosen_first: bool              # shown as Response A?
    task: str | None = None
    instruction: str = ""
    source: str | None = None       # D_H layout: the input text; None for the user layout
    chosen_suggestion: str | None = None
    rejected_suggestion: str | None = None

    @property
    def chosen_label(self) -> str:
        return "A" if self.chosen_first else "B"

    @property
    def rejected_label(self) -> str:
        return "B" if self.chosen_first else "A"

    def values(self, *, opposite: bool = False) -> dict[str, str]:
        """Placeholder values; opposite=True names the rejected response as the preferred one."""
        a, b = (self.chosen, self.rejected) if self.chosen_first else (self.rejected, self.chosen)
        pref, other = (self.rejected_label, self.chosen_label) if opposite else (self.chosen_label, self.rejected_label)
        return {"prompt": self.prompt, "response_a": a, "response_b": b, "preferred": pref, "other": other,
                "task": self.task or "", "instruction": self.instruction}


def chosen_first(order: str, seed: int, pair_id: str) -> bool:
    """Seeded per pair (by id, so it does not depend on the file's order or on other pairs)."""
    if order == "chosen_first":
        return True
    if order == "rejected_first":
        return False
    return random.Random(sha256_json([seed, "pair_rationale.order", pair_id])).random() < 0.5


def condition_prompt(template: str, view: PairView) -> str:
    """The text the policy is conditioned on for log pi(r | x, y_w > y_l): always the TRUE preference
    (the ablations change r, never what it is scored under)."""
    return fill(template, view.values())
