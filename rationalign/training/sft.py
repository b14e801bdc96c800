"""SFT trainer: completion-only cross-entropy on (prompt, suggestion [+ rationale]) examples, with the
token loss named by `sft.loss` (rationalign.losses.TOKEN_LOSSES, its options typed by its entry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rationalign.losses import TOKEN_LOSSES, options
from rationalign.training.chat import Layout, encode_pair
from rationalign.training.logps import collate_completion, completion_token_logps, is_seq2seq
from rationalign.training.trainer import LossTrainer, fit, training_arguments


@dataclass
class SFTExample:
    prompt: str      # the rendered prompt (rationalign.prompts.render_prompt)
    completion: str  # what the model should answer


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def encode_sft(examples: list[SFTExample], tokenizer, max_length: int, *, layout: Layout,
               seq2seq: bool = False) -> EncodedDataset:
    rows = []
    for ex in examples:
        p, c = encode_pair(tokenizer, ex.prompt, ex.completion, max_length, layout=layout, seq2seq=seq2seq)
        rows.append({"prompt_ids": p, "completion_ids": c, "input_ids": p + c})
    return EncodedDataset(rows)


def make_sft_loss_fn(loss_cfg: Any = None):
    """(model, inputs, num_items_in_batch) -> (loss, metrics) for the Trainer, and whether that loss is
    already divided by the step's token count (then the Trainer must not divide by GA steps again).
    loss_cfg: the `sft.loss` node ({"name": "sft", "reduction": ...}); None: sft with its defaults."""
    loss_cfg = loss_cfg if loss_cfg is not None else {"name": "sft"}
    name = str(loss_cfg.get("name"))
    fn = TOKEN_LOSSES[name]
    opts = options(TOKEN_LOSSES.typed(loss_cfg, name=name, where="sft.loss"))
    per_token = opts.get("reduction", "mean") == "mean"

    def loss_fn(model, inputs, num_items_in_batch=None):
        tok_logp, rows = completion_token_logps(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        n = tok_logp.numel()
        if per_token:
            # A token mean does not depend on which row a token sits in: the batch's tokens as one row keep
            # the summation order (and so the bits) of a plain sum; num_items_in_batch spans the whole step.
            logps, mask = tok_logp.unsqueeze(0), torch.ones(1, n, dtype=torch.bool, device=tok_logp.device)
            loss, _ = fn(logps, mask, **opts, num_items=num_items_in_batch)
        else:
            logps, mask = _by_row(tok_logp, rows, inputs["labels"].size(0))
            loss, _ = fn(logps, mask, **opts)
        return loss, {"completion_tokens": torch.tensor(float(n))}

    return loss_fn, per_token


def _by_row(tok_logp: torch.Tensor, rows: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat completion-token log-probs [N] with their row index [N] -> [B, T] log-probs and 0/1 mask."""
    counts = torch.bincount(rows, minlength=n_rows)
    width = int(counts.max()) if counts.numel() else 0
    first = torch.cumsum(counts, 0) - counts  # index of each row's first token in the flat tensor
    col = torch.arange(rows.numel(), device=rows.device) - first[rows]
    logps = tok_logp.new_zeros(n_rows, width).index_put((rows, col), tok_logp)
    mask = torch.zeros(n_rows, width, dtype=torch.bool, device=rows.device).index_put((rows, col), torch.ones_like(rows, dtype=torch.bool))
    return logps, mask


def train_sft(model, tokenizer, examples: list[SFTExample], train_cfg: Any, out_dir: Path, *,
              max_length: int, seed: int, layout: Layout, tracking: Any = None, device: str = "auto",
              loss_cfg: Any = None) -> dict:
    """Train in place (adapters when the model is a PeftModel); returns loss statistics.
    loss_cfg: the `sft.loss` node (default: the token loss sft, reduction mean)."""
    loss_fn, per_token = make_sft_loss_fn(loss_cfg)
    s2s = is_seq2seq(model)  # T5: prompt -> encoder, completion -> decoder labels
    ds = encode_sft(examples, tokenizer, max_length, layout=layout, seq2seq=s2s)
    args = training_arguments(train_cfg, out_dir, seed=seed, tracking=tracking, device=device)
    trainer = LossTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tokenizer,
        data_collator=lambda feats: collate_completion(feats, tokenizer.pad_token_id, seq2seq=s2s),
        loss_fn=loss_fn, scaled_for_ga=per_token,  # a per-sequence mean is a batch mean: the Trainer divides by GA
    )
    stats = fit(trainer, out_dir)
    stats["examples"] = len(ds)
    stats["tokens"] = sum(len(r["input_ids"]) for r in ds.rows)
    return stats
