"""Sampling M completions per prompt with the prompt computed once (`engine.prefill_once=true`).

`model.generate(num_return_sequences=M)` copies each prompt M times before the prefill, so a long
writing-task prompt (instruction + source, ~100-200 tokens) is run through the model M times, and the
[rows x prompt x vocab] logits of the prefill are materialised whole. Here each prompt batch is
prefilled once (logits of its last position only), its KV cache is repeated M times, and decoding
drops a row from the batch (and from the cache) as soon as it ends with EOS or a stop string, where
`generate` keeps computing finished rows until the longest one ends.

Decoder-only models only (encoder-decoder models keep `generate`, whose encoder already runs once).
Greedy decoding gives generate's tokens. Sampling applies generate's chain in its order (presence
penalty, temperature, top-k, top-p; `draw` computes it on the k kept logits), so samples are draws
from the same distribution with a different random stream; tests check both.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from rationalign.engines.presence_penalty import PresencePenalty


def positions(att: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: count real tokens; pads get 1 (as generate does)."""
    pos = att.long().cumsum(-1) - 1
    return pos.masked_fill(att == 0, 1)


def append_tokens(generated: list[list[int]], rows: list[int], tokens: list[int], eos: set[int],
                  stop_hit=None) -> list[int]:
    """Append each active row's new token to its output; returns the batch positions still going
    (EOS is not appended; a row whose output hits a stop sequence keeps its last token and ends)."""
    keep = []
    for b, (row, tok) in enumerate(zip(rows, tokens)):
        if tok in eos:
            continue
        generated[row].append(tok)
        if stop_hit is not None and stop_hit(generated[row]):
            continue
        keep.append(b)
    return keep


def draw(scores: torch.Tensor, *, temperature: float, top_k: int, top_p: float,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from softmax(scores / temperature) restricted to the top-k, then to the top-p
    nucleus: the distribution of transformers' Temperature -> TopK -> TopP warpers, computed on the k
    kept logits instead of sorting and sampling over the whole vocabulary (49k rows per step here).

    Nucleus rule as transformers' TopPLogitsWarper: a token goes when the probability mass ranked
    at or below it is <= 1 - top_p; the most probable token always stays."""
    scores = scores / temperature
    if top_k and top_k < scores.shape[-1]:
        vals, idx = scores.topk(top_k, dim=-1)  # sorted, highest first
    else:
        vals, idx = scores.sort(dim=-1, descending=True)
    if top_p < 1.0:
        probs = vals.softmax(-1)
        above = probs.cumsum(-1) - probs  # mass ranked strictly above each token
        drop = above >= top_p  # == mass at or below <= 1 - top_p
        drop[..., 0] = False
        vals = vals.masked_fill(drop, float("-inf"))
    pick = torch.multinomial(vals.softmax(-1), 1, generator=generator)
    return idx.gather(-1, pick).squeeze(-1)


@torch.no_grad()
def sample_prefill_once(model, ids: torch.Tensor, att: torch.Tensor, n: int, *, max_new_tokens: int,
                        eos_token_id: int | list[int] | None, temperature: float = 0.0, top_p: float = 1.0,
                        top_k: int = 0, presence_penalty: float = 0.0, stop_hit=None,
                        generator: torch.Generator | None = None) -> list[list[int]]:
    """Generated token ids (EOS excluded) for each of the n samples of each left-padded prompt row,
    prompt-major: rows [p0s0, p0s1, ..., p1s0, ...]. `stop_hit(token_ids) -> bool` ends a row early
    (its last token kept) when its text reaches a stop string."""
    greedy = temperature <= 0
    if greedy and n != 1:
        raise ValueError("greedy decoding gives one output per prompt; use temperature > 0 for n > 1")
    device = ids.device
    eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))

    penalty = PresencePenalty(presence_penalty, prompt_len=0) if presence_penalty and not greedy else None

    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=att, position_ids=positions(att), cache=cache,
                use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1, :].float()
    cache = out.cache
    if n > 1:
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)
        att = att.repeat_interleave(n, dim=0)

    rows = att.shape[0]
    generated: list[list[int]] = [[] for _ in range(rows)]
    active = torch.arange(rows, device=device)  # which output row each batch row is
    gen_ids = torch.empty((rows, 0), dtype=torch.long, device=device)  # generated ids of the active rows
    for step in range(max_new_tokens):
        if greedy:
            nxt = logits.argmax(-1)
        else:
            scores = penalty(gen_ids, logits) if penalty is not None else logits  # sees generated ids only
            nxt = draw(scores, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        keep = append_tokens(generated, active.tolist(), nxt.tolist(), eos, stop_hit)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(active):  # drop finished rows from the batch and the cache
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            active, nxt, att, gen_ids = active[sel], nxt[sel], att[sel], gen_ids[sel]
        gen_ids = torch.cat([gen_ids, nxt[:, None]], dim=1)
        att = torch.cat([att, att.new_ones((att.shape[0], 1))], dim=1)
        pos = (att.sum(-1, keepdim=True) - 1).long()
        out = model(input_ids=nxt[:, None], attention_mask=att, position_ids=pos, cache=cache,
                    use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :].float()
        cache = out.cache
    return generated
