"""vLLM's presence penalty as a transformers logits processor (used by both HF sampling paths)."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class PresencePenalty(LogitsProcessor):
    """vLLM's presence_penalty: subtract a constant from every token already generated once.

    HF's repetition_penalty is multiplicative and also counts prompt tokens, so it is not the
    paper's setting; this matches vLLM's definition on the generated part only.
    """

    def __init__(self, penalty: float, prompt_len: int):
        self.penalty = penalty
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        gen = input_ids[:, self.prompt_len:]
        if gen.numel() == 0 or self.penalty == 0:
            return scores
        seen = torch.zeros_like(scores, dtype=torch.bool)
        seen.scatter_(1, gen, True)
        return scores - self.penalty * seen.to(scores.dtype)
