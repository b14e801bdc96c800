"""Greedy continuations of many token tails after a shared prefix, the prefix computed once.

Edit-grounded rationales (rationale/grounded.py) continue each edit's forced template prefix after the
same prompt and suggestion: a text with five edits has five tails after one shared prefix. Decoding
them as five independent prompts would run the ~200-token prompt five times. Here each batch of
texts is prefilled once (left-padded, no logits), its KV cache is repeated once per tail of each text,
the tails are run in one forward (left-padded inside the tail block: the attention mask has a hole
between a short tail and its prefix, and position ids count real tokens only, so each row sees
exactly prefix + tail), and decoding is then greedy for all rows of all texts together, a row
leaving the batch (and the cache) as soon as it ends with EOS or a stop string, as in
engines/prefill_once.py.

Decoder-only models only. The result equals greedy decoding of every prefix + tail one at a time
(tests/test_grounded.py checks it token for token in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import DynamicCache

from rationalign.engines.prefill_once import append_tokens, positions

Group = tuple[Sequence[int], Sequence[Sequence[int]]]  # (shared prefix ids, [tail ids, ...])


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
        att[i, width - len(r):] = 1
    return ids, att


def pack(groups: Sequence[Group], max_rows: int) -> list[list[tuple[int, int, int]]]:
    """Batches of (group, first tail, end tail) slices, each batch at most max_rows tails (a group with
    more tails than that is split over batches, each slice with its own prefill). Groups are taken
    in order of prefix length so a batch pads little."""
    order = sorted(range(len(groups)), key=lambda g: (len(groups[g][0]), g))
    batches: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    rows = 0
    for g in order:
        n = len(groups[g][1])
        for lo in range(0, n, max_rows):
            hi = min(n, lo + max_rows)
            if cur and rows + hi - lo > max_rows:
                batches.append(cur)
                cur, rows = [], 0
            cur.append((g, lo, hi))
            rows += hi - lo
    if cur:
        batches.append(cur)
    return batches


@torch.no_grad()
def greedy_continue(model, groups: Sequence[Group], *, pad_token_id: int, eos_token_id: int | list[int] | None,
                    max_new_tokens: int, stop_hit: Callable[[list[int]], bool] | None = None,
                    max_rows: int = 64) -> list[list[list[int]]]:
    """Generated ids (EOS excluded) for every tail of every group: out[g][j] continues
    groups[g][0] + groups[g][1][j]. `stop_hit(ids) -> bool` ends a row early (its last token kept)."""
    if max_rows < 1:
        raise ValueError(f"greedy_continue: max_rows={max_rows}, expected >= 1")
    for g, (prefix, tails) in enumerate(groups):
        if not prefix or any(not t for t in tails):
            raise ValueError(f"greedy_continue: group {g} has an empty prefix or tail")
    out: list[list[list[int]]] = [[[] for _ in tails] for _, tails in groups]
    model.eval()
    device = next(model.parameters()).device
    for batch in pack(groups, max_rows):
        rows = _decode_batch(model, [(groups[g][0], list(groups[g][1][lo:hi])) for g, lo, hi in batch],
                             device=device, pad=pad_token_id, eos_token_id=eos_token_id,
                             max_new_tokens=max_new_tokens, stop_hit=stop_hit)
        at = 0
        for g, lo, hi in batch:
            out[g][lo:hi] = rows[at:at + hi - lo]
            at += hi - lo
    return out


def _decode_batch(model, groups, *, device, pad, eos_token_id, max_new_tokens, stop_hit) -> list[list[int]]:
    eos = set([eos_token_id] if isinstance(eos_token_id, int) else (eos_token_id or []))
    ids, att = _left_pad([p for p, _ in groups], pad)
    ids, att = ids.to(device), att.to(device)
    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=att, position_ids=positions(att), cache=cache, use_cache=True,
                logits_to_keep=1)
    cache = out.cache
    # One cache row per tail: rows of the same text share its prefix's keys and values.
    owner = torch.tensor([g for g, (_, tails) in enumerate(groups) for _ in tails], device=device)
    cache.batch_select_indices(owner)
    tail_ids, tail_att = _left_pad([t for _, tails in groups for t in tails], pad)
    att = torch.cat([att[owner], tail_att.to(device)], dim=1)
    pos = positions(att)[:, -tail_ids.shape[1]:]
    out = model(input_ids=tail_ids.to(device), attention_mask=att, position_ids=pos, cache=cache, use_cache=True,
                logits_to_keep=1)
    logits, cache = out.logits[:, -1, :], out.cache

    generated: list[list[int]] = [[] for _ in range(att.shape[0])]
    active = torch.arange(att.shape[0], device=device)
    for step in range(max_new_tokens):
        nxt = logits.argmax(-1)
        keep = append_tokens(generated, active.tolist(), nxt.tolist(), eos, stop_hit)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(active):  # finished rows leave the batch and the cache
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            active, nxt, att = active[sel], nxt[sel], att[sel]
        att = torch.cat([att, att.new_ones((att.shape[0], 1))], dim=1)
        pos = (att.sum(-1, keepdim=True) - 1).long()
        out = model(input_ids=nxt[:, None], attention_mask=att, position_ids=pos, cache=cache, use_cache=True,
                    logits_to_keep=1)
        logits, cache = out.logits[:, -1, :], out.cache
    return generated
