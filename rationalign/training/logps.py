"""Per-sequence log-probabilities computed only where they are needed.

A small model's 49k-vocabulary output layer costs more than its transformer blocks, so we run the
backbone once, gather the hidden states at completion positions, and apply the LM head to those
rows only (instead of to every prompt and padding position).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _backbone_and_head(model):
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder(), inner.get_output_embeddings()


def completion_token_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """Log pi(token) at every label != -100 position.

    Returns (token_logps [N], row_index [N]) where N is the number of completion tokens in the batch
    and row_index says which sequence each belongs to.
    """
    backbone, head = _backbone_and_head(model)
    hidden = backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    # position t predicts token t+1
    targets = labels[:, 1:]
    mask = targets != -100
    rows = torch.arange(labels.size(0), device=labels.device).unsqueeze(1).expand_as(targets)[mask]
    h = hidden[:, :-1][mask]
    logits = head(h).float()
    # Fused log-softmax + gather: no second [N, vocab] tensor kept for backward.
    logp = -F.cross_entropy(logits, targets[mask], reduction="none")
    return logp, rows


def sequence_logps(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion log-probs [B], number of completion tokens [B])."""
    tok_logp, rows = completion_token_logps(model, input_ids, attention_mask, labels)
    b = labels.size(0)
    sums = torch.zeros(b, dtype=tok_logp.dtype, device=tok_logp.device).index_add(0, rows, tok_logp)
    lens = torch.zeros(b, dtype=tok_logp.dtype, device=tok_logp.device).index_add(0, rows, torch.ones_like(tok_logp))
    return sums, lens


def full_sequence_logps_reference(model, input_ids, attention_mask, labels):
    """Straightforward full-logits version, kept as the test oracle for `sequence_logps`."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != -100
    lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1), mask.sum(-1).to(lp.dtype)


def pad_batch(seqs: list[list[int]], pad_value: int, side: str = "right") -> torch.Tensor:
    n = max(len(s) for s in seqs)
    out = torch.full((len(seqs), n), pad_value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "right":
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        else:
            out[i, n - len(s):] = torch.tensor(s, dtype=torch.long)
    return out


def collate_completion(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """features: {'prompt_ids', 'completion_ids'} -> right-padded input_ids/attention_mask/labels."""
    ids = [f["prompt_ids"] + f["completion_ids"] for f in features]
    labels = [[-100] * len(f["prompt_ids"]) + f["completion_ids"] for f in features]
    input_ids = pad_batch(ids, pad_id)
    return {
        "input_ids": input_ids,
        "attention_mask": pad_batch([[1] * len(s) for s in ids], 0),
        "labels": pad_batch(labels, -100),
    }


def sft_loss_from_batch(model, batch, num_items_in_batch=None) -> tuple[torch.Tensor, int]:
    """Token-level cross-entropy over completion tokens (sum / number of tokens)."""
    tok_logp, _ = completion_token_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    n = tok_logp.numel()
    denom = num_items_in_batch if num_items_in_batch is not None else max(n, 1)
    if isinstance(denom, torch.Tensor):
        denom = denom.to(tok_logp.device)
    return -tok_logp.sum() / denom, n


__all__ = ["F", "collate_completion", "completion_token_logps", "pad_batch", "sequence_logps"]
