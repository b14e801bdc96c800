"""transformers generate, batched and length-sorted, left-padded; seeded per batch (from the batch's
first prompt ids, so a resumed stage reproduces as long as engine.batch_size is unchanged).

Prompt ids come from `Engine.encode` (training.chat.prompt_ids). Encoder-decoder (T5) models get the
rendered prompt itself as the encoder input (ending in </s>, as in training) and their generate output is the decoder sequence alone: it starts
with the decoder start token and does not contain the prompt.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from rationalign.engines.base import Engine
from rationalign.engines.presence_penalty import PresencePenalty
from rationalign.training.logps import is_seq2seq


class HFEngine(Engine):
    name = "hf"

    def __init__(self, model, tokenizer, *, layout, batch_size: int = 16, seed: int = 0, progress: bool = True,
                 prefill_once: bool = False):
        super().__init__(tokenizer, layout=layout, seq2seq=is_seq2seq(model))
        self.model = model
        # engines.prefill_once: each prompt computed once for its n samples (decoder-only models)
        self.prefill_once = prefill_once and not self.seq2seq
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    @torch.no_grad()
    def sample_ids(self, prompt_ids: list[list[int]], n: int = 1, *, temperature: float = 0.0, top_p: float = 1.0,
                   top_k: int = 0, presence_penalty: float = 0.0, max_new_tokens: int = 128,
                   seed: int | None = None, stop: list[str] | None = None, **_: Any) -> list[list[str]]:
        """n completions per prompt, in input order. `stop`: strings that end a completion early (kept
        in the text), e.g. the rationale marker when only the suggestion is scored."""
        enc = prompt_ids
        if not enc:
            return []
        greedy = temperature <= 0
        if greedy and n != 1:
            raise ValueError("greedy decoding gives one output per prompt; use temperature > 0 for n > 1")
        seed = self.seed if seed is None else seed
        s2s = self.seq2seq
        # Sort by length so each batch pads little; restore order at the end.
        order = sorted(range(len(enc)), key=lambda i: (len(enc[i]), i))
        out: list[list[str]] = [[] for _ in enc]
        model = self.model
        model.eval()
        device = next(model.parameters()).device
        pad = self.tok.pad_token_id
        batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for b_idx, idx in enumerate(tqdm(batches, desc="generate", disable=not self.progress, leave=False)):
            width = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            att = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(enc[i]):] = torch.tensor(enc[i])
                att[row, width - len(enc[i]):] = 1
            if self.prefill_once:
                out_rows = self._prefill_once(ids.to(device), att.to(device), n, seed=seed, first=enc[idx[0]],
                                              temperature=temperature, top_p=top_p, top_k=top_k,
                                              presence_penalty=presence_penalty, max_new_tokens=max_new_tokens,
                                              stop=stop)
                per = n if not greedy else 1
                for row, i in enumerate(idx):
                    out[i] = out_rows[row * per:(row + 1) * per]
                continue
            gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad,
                                          "eos_token_id": self.tok.eos_token_id}
            if stop:
                gen_kwargs.update(stop_strings=list(stop), tokenizer=self.tok)
            if greedy:
                gen_kwargs.update(do_sample=False)
            else:
                gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k or None,
                                  num_return_sequences=n)
                if presence_penalty:
                    # The decoder's ids hold only the start token before the generated ones.
                    gen_kwargs["logits_processor"] = LogitsProcessorList(
                        [PresencePenalty(presence_penalty, 1 if s2s else width)])
                # Seed per batch from the batch's first prompt, so a resumed run reproduces it.
                torch.manual_seed(seed * 1_000_003 + sum(enc[idx[0]]) % 1_000_003)
            gen = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **gen_kwargs)
            # Decoder-only outputs repeat the prompt; seq2seq outputs start with the decoder start token
            # (pad for T5), which skip_special_tokens drops.
            gen = (gen if s2s else gen[:, width:]).cpu()
            decoded = self.tok.batch_decode(gen, skip_special_tokens=True)
            per = n if not greedy else 1
            for row, i in enumerate(idx):
                out[i] = [d.strip() for d in decoded[row * per:(row + 1) * per]]
        return out

    def continue_ids(self, groups: list[tuple[list[int], list[list[int]]]], *, max_new_tokens: int,
                     stop: list[str] | None = None) -> list[list[str]]:
        """Engine.continue_ids with each shared prefix computed once and all tails of a batch of
        prefixes decoded together (engines/shared_prefix.py); decoder-only models."""
        from rationalign.engines.shared_prefix import greedy_continue

        if self.seq2seq:
            raise ValueError("continuing a decoder prefix needs a decoder-only model (this one is encoder-decoder)")
        tok = self.tok
        stop_hit = (lambda t: any(s in tok.decode(t, skip_special_tokens=True) for s in stop)) if stop else None
        # At most 4 x engine.batch_size rows (tails) per batch, so the repeated prefix caches stay bounded.
        rows = greedy_continue(self.model, groups, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                               max_new_tokens=max_new_tokens, stop_hit=stop_hit, max_rows=4 * self.batch_size)
        return [[d.strip() for d in tok.batch_decode(g, skip_special_tokens=True)] if g else [] for g in rows]

    def _prefill_once(self, ids, att, n, *, seed, first, temperature, top_p, top_k, presence_penalty,
                      max_new_tokens, stop) -> list[str]:
        from rationalign.engines.prefill_once import sample_prefill_once

        gen = torch.Generator(device=ids.device)
        gen.manual_seed(seed * 1_000_003 + sum(first) % 1_000_003)  # per batch, as the generate path
        tok = self.tok
        stop_hit = (lambda t: any(s in tok.decode(t, skip_special_tokens=True) for s in stop)) if stop else None
        rows = sample_prefill_once(self.model, ids, att, n, max_new_tokens=max_new_tokens,
                                   eos_token_id=tok.eos_token_id, temperature=temperature, top_p=top_p,
                                   top_k=top_k, presence_penalty=presence_penalty, stop_hit=stop_hit,
                                   generator=gen)
        return [d.strip() for d in tok.batch_decode(rows, skip_special_tokens=True)]
