"""Preference batches with each pair's prompt computed once (decoder-only models).

A writing-task pair repeats a long prompt (instruction + source) in its chosen and rejected rows.
Here a pair is ONE packed row, prompt + chosen + rejected, under a block attention mask: the
prompt is causal, each completion sees the prompt and its own earlier tokens, never the other
completion, and both completions restart their positions where the prompt ends. So every token
has exactly the keys, values and positions it has in its own unpacked row, and the log-probs (and
their gradients) are those of `logps.sequence_logps` on the unpacked batch, at 2P + W + L -> P + W + L
backbone tokens per pair. The first token of each completion is predicted from the prompt's last
position, which both completions share. Rationale rows (rdpo/rorpo) have their own prompt and
ride in the same batch as one-completion rows.

Output order is the unpacked batch's: [0, B) chosen, [B, 2B) rejected, [2B, 3B) rationales.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from rationalign.training.logps import at_least_fp32, final_hidden_states, unwrap_model


def supports_block_mask(model) -> bool:
    """Eager and SDPA attention take a prepared 4D mask as is; flash-attention kernels ignore it (they
    would let the completions see each other), so those models keep the unpacked rows."""
    impl = getattr(getattr(unwrap_model(model), "config", None), "_attn_implementation", None)
    return impl in ("eager", "sdpa")


def pack_preference(features: list[dict], pad_id: int) -> dict[str, Any]:
    """features as encode_preference writes them -> packed input_ids, a 4D boolean "may attend" mask
    [N, 1, T, T] (turned into the model's additive mask in `packed_sequence_logps`), position ids, and
    the (row, position, target, output index) of every completion token."""
    b = len(features)
    rows: list[tuple[list[int], list[list[int]], list[int]]] = []  # (prompt, completions, output index each)
    for i, f in enumerate(features):
        if f["c_prompt"] != f["r_prompt"]:
            raise ValueError("pack_preference: chosen and rejected of a pair must share the prompt")
        rows.append((f["c_prompt"], [f["c_ids"], f["r_ids"]], [i, b + i]))
    for i, f in enumerate(features):
        if "x_ids" in f:
            rows.append((f["x_prompt"], [f["x_ids"]], [2 * b + i]))
    width = max(len(p) + sum(len(c) for c in cs) for p, cs, _ in rows)
    n = len(rows)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    seg = torch.full((n, width), -1, dtype=torch.long)  # -1 pad, 0 prompt, k the k-th completion
    pred_row, pred_pos, target, out_idx = [], [], [], []
    for r, (prompt, comps, outs) in enumerate(rows):
        p = len(prompt)
        ids[r, :p] = torch.tensor(prompt, dtype=torch.long)
        pos[r, :p] = torch.arange(p)
        seg[r, :p] = 0
        start = p
        for k, (comp, o) in enumerate(zip(comps, outs), start=1):
            m = len(comp)
            ids[r, start:start + m] = torch.tensor(comp, dtype=torch.long)
            pos[r, start:start + m] = torch.arange(p, p + m)
            seg[r, start:start + m] = k
            # token t of the completion is predicted at the position holding token t-1 (the prompt's
            # last position for t = 0)
            prev = [p - 1] + list(range(start, start + m - 1))
            pred_row += [r] * m
            pred_pos += prev
            target += comp
            out_idx += [o] * m
            start += m
    q = torch.arange(width)
    causal = q[None, :] <= q[:, None]  # [T(query), T(key)]
    same = (seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None])
    allowed = causal[None] & same & (seg[:, None, :] >= 0) & (seg[:, :, None] >= 0)
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # pad queries see themselves: no empty softmax row
    batch = {"packed_ids": ids, "packed_mask": allowed[:, None], "packed_pos": pos,
            "pred_row": torch.tensor(pred_row), "pred_pos": torch.tensor(pred_pos),
            "pred_target": torch.tensor(target), "pred_out": torch.tensor(out_idx),
            "n_out": 3 * b if "x_ids" in features[0] else 2 * b,
            # tokens of the unpacked rows (what the trainer's tokens/s reports, packed or not)
            "n_tokens": sum(len(p) * len(cs) + sum(len(c) for c in cs) for p, cs, _ in rows)}
    for key in ("rewards", "ref"):  # per pair, as collate_preference gives them
        if key in features[0]:
            batch[key] = torch.tensor([f[key] for f in features], dtype=torch.float32)
    return batch


def _chunk_logps(head, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -F.cross_entropy(at_least_fp32(head(h)), target, reduction="none")


def completion_logps(head, h: torch.Tensor, target: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """log p(target) for each row of h. chunk > 0: the LM head and the log-softmax run on `chunk` rows
    at a time under activation checkpointing, so at most one [chunk x vocab] block of logits exists
    (forward or backward) instead of [tokens x vocab]; the price is the head run again in backward."""
    if not chunk or h.shape[0] <= chunk:
        return _chunk_logps(head, h, target)
    from torch.utils.checkpoint import checkpoint

    parts = [checkpoint(_chunk_logps, head, h[i:i + chunk], target[i:i + chunk], use_reentrant=False)
             for i in range(0, h.shape[0], chunk)]
    return torch.cat(parts)


def packed_sequence_logps(model, batch: dict, *, logits_chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion log-probs, number of completion tokens), one per unpacked sequence."""
    dtype = next(model.parameters()).dtype
    allowed = batch["packed_mask"]
    additive = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    additive.masked_fill_(~allowed, torch.finfo(dtype).min)
    hidden = final_hidden_states(model, batch["packed_ids"], additive, position_ids=batch["packed_pos"])
    h = hidden[batch["pred_row"], batch["pred_pos"]]
    logp = completion_logps(unwrap_model(model).get_output_embeddings(), h, batch["pred_target"], logits_chunk)
    n_out, out = int(batch["n_out"]), batch["pred_out"]
    sums = torch.zeros(n_out, dtype=logp.dtype, device=logp.device).index_add(0, out, logp)
    lens = torch.zeros(n_out, dtype=logp.dtype, device=logp.device).index_add(0, out, torch.ones_like(logp))
    return sums, lens


__all__ = ["pack_preference", "packed_sequence_logps", "supports_block_mask"]
