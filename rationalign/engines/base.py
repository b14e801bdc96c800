"""What every generation engine shares: rendered prompts become token ids in exactly one place
(`training.chat.prompt_ids` under the run's `prompts.layout`, the same call training uses), then the
engine generates from ids.

An engine subclass implements `sample_ids(prompt_ids, n, **sampling) -> list[list[str]]`; this base
gives `sample` / `generate` over user messages, `continue_ids` (greedy continuations of several tails
after a shared prefix, for edit-grounded rationales), `close()` and the context-manager protocol.
Sampling keys (paper App. B.4 names): temperature (0 = greedy), top_p, top_k (0 = off),
presence_penalty, max_new_tokens, seed, stop (strings that end a completion, kept in the text).
"""

from __future__ import annotations

from typing import Any


class Engine:
    name = "base"

    def __init__(self, tokenizer, *, layout, seq2seq: bool = False):
        self.tok = tokenizer
        self.layout = layout  # training.chat.Layout: plain text (paper Table 8) or the chat template
        self.seq2seq = seq2seq

    def encode(self, prompts: list[str]) -> list[list[int]]:
        from rationalign.training.chat import prompt_ids

        return [prompt_ids(self.tok, p, layout=self.layout, seq2seq=self.seq2seq) for p in prompts]

    def sample_ids(self, prompt_ids: list[list[int]], n: int = 1, **sampling: Any) -> list[list[str]]:
        raise NotImplementedError

    def sample(self, prompts: list[str], n: int = 1, **sampling: Any) -> list[list[str]]:
        """n completions per user message, in input order. temperature 0 means greedy (then n must be 1)."""
        if not prompts:
            return []
        if float(sampling.get("temperature", 0.0)) <= 0 and n != 1:
            raise ValueError("greedy decoding gives one output per prompt; use temperature > 0 for n > 1")
        return self.sample_ids(self.encode(prompts), n, **sampling)

    def generate(self, prompts: list[str], **sampling: Any) -> list[str]:
        sampling.pop("n", None)
        return [o[0] for o in self.sample(prompts, n=1, **sampling)]

    def continue_ids(self, groups: list[tuple[list[int], list[list[int]]]], *, max_new_tokens: int,
                     stop: list[str] | None = None) -> list[list[str]]:
        """Greedy continuation of every tail after its group's shared prefix (token ids):
        out[g][j] continues groups[g][0] + groups[g][1][j], stopped at EOS, a stop string (kept in the
        text) or max_new_tokens. Here: one plain request per prefix + tail (vLLM's prefix caching
        shares the prefix); HFEngine computes each prefix once (engines/shared_prefix.py)."""
        flat = [list(prefix) + list(tail) for prefix, tails in groups for tail in tails]
        outs = iter(self.sample_ids(flat, 1, temperature=0.0, max_new_tokens=max_new_tokens, stop=stop) if flat else [])
        return [[next(outs)[0] for _ in tails] for _, tails in groups]

    def close(self) -> None:
        """Release what the engine holds (GPU memory, temporary model copies)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
