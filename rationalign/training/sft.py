"""SFT trainer: completion-only cross-entropy on (prompt, suggestion [+ rationale]) examples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rationalign.training.chat import Layout, encode_pair
from rationalign.training.logps import collate_completion, is_seq2seq, sft_loss_from_batch
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


def _sft_loss(model, inputs, num_items_in_batch):
    loss, n = sft_loss_from_batch(model, inputs, num_items_in_batch)
    return loss, {"completion_tokens": torch.tensor(float(n))}


def train_sft(model, tokenizer, examples: list[SFTExample], train_cfg: Any, out_dir: Path, *,
              max_length: int, seed: int, layout: Layout, tracking: Any = None, device: str = "auto") -> dict:
    """Train in place (adapters when the model is a PeftModel); returns loss statistics."""
    s2s = is_seq2seq(model)  # T5: prompt -> encoder, completion -> decoder labels
    ds = encode_sft(examples, tokenizer, max_length, layout=layout, seq2seq=s2s)
    args = training_arguments(train_cfg, out_dir, seed=seed, tracking=tracking, device=device)
    trainer = LossTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tokenizer,
        data_collator=lambda feats: collate_completion(feats, tokenizer.pad_token_id, seq2seq=s2s),
        loss_fn=_sft_loss, scaled_for_ga=True,
    )
    stats = fit(trainer, out_dir)
    stats["examples"] = len(ds)
    stats["tokens"] = sum(len(r["input_ids"]) for r in ds.rows)
    return stats
