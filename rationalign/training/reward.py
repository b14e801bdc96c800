"""Reward model: a 1-logit sequence-classification head (+ LoRA) trained with the reward loss named by
`reward.loss` (rationalign.losses.REWARD_LOSSES; bt: Bradley-Terry).

The RM reads the paper's Table 7 template (``prompts.render_rm``: the task's Table 11 instruction, the
source and the *suggestion only*), laid out as ``prompts.layout`` says (plain text, the paper's way, or
the chat template); the score is the head's logit at the last non-pad token. Chosen and rejected go through one forward (rows [0, B) and [B, 2B)).

Encoder-decoder (T5) RMs read the same rendered text, ending in </s>; the
model is T5ForSequenceClassification, whose score is a head on the decoder's last state (at that </s>;
the decoder reads the shifted input), so batches, loss and scoring code are shared with decoder-only RMs.

``RewardScorer`` loads a saved RM directory (``reward_model.json`` records the base model config,
the templates and the layout, so scoring renders exactly what training saw) and scores (task, instruction, source,
suggestion) items in batches without gradients.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rationalign.losses import REWARD_LOSSES, options
from rationalign.training.chat import Layout, encoder_ids
from rationalign.training.logps import is_seq2seq, pad_batch
from rationalign.training.pairs_io import RMPair
from rationalign.training.sft import EncodedDataset
from rationalign.training.trainer import LossTrainer, fit, training_arguments

log = logging.getLogger("rationalign")

META_FILE = "reward_model.json"


@dataclass
class RMTemplate:
    """What turns (task, source, suggestion) into the RM's text: Table 7 template + per-task Table 11
    instructions, and the layout that puts it before the model."""

    rm_template: str
    rm_instructions: dict[str, str]
    layout: Layout = field(default_factory=Layout)

    def user_message(self, task: str | None, instruction: str, source: str | None, suggestion: str,
                     prompt: str | None = None) -> str:
        from rationalign.prompts import render_rm

        if task is None:  # user layout: the raw prompt is the context, the suggestion is appended
            return f"{prompt}\n\n{suggestion}"
        rm_instruction = self.rm_instructions.get(task) or instruction
        if not rm_instruction:
            raise ValueError(f"reward model: no rm_instruction for task {task!r} and the item has no instruction")
        return render_rm({"rm_template": self.rm_template}, {"rm_instruction": rm_instruction}, source, suggestion)

    @classmethod
    def from_cfg(cls, prompts_cfg: Any, task_cfg: Any) -> RMTemplate:
        from rationalign.cfg_access import cfg_get

        specs = cfg_get(task_cfg, "specs") or {}
        return cls(rm_template=str(cfg_get(prompts_cfg, "rm_template")),
                   rm_instructions={str(k): str(cfg_get(v, "rm_instruction") or "") for k, v in specs.items()},
                   layout=Layout.from_cfg(prompts_cfg))


def encode_rm_text(tokenizer, message: str, max_length: int, *, layout: Layout, seq2seq: bool = False) -> list[int]:
    """The laid-out RM text; over-long inputs lose their *start*, because the suggestion and the
    scoring position are at the end. seq2seq: the text ending in one </s> (the pooled token)."""
    if seq2seq:
        return encoder_ids(tokenizer, layout.text(tokenizer, message, seq2seq=True), max_length)
    ids = tokenizer(layout.text(tokenizer, message), add_special_tokens=False)["input_ids"]
    return ids[-max_length:]


def encode_rm_pairs(pairs: Sequence[RMPair], tokenizer, template: RMTemplate, max_length: int, *,
                    seq2seq: bool = False) -> EncodedDataset:
    rows = []
    for p in pairs:
        c = encode_rm_text(tokenizer, template.user_message(p.task, p.instruction, p.source, p.chosen, p.prompt),
                           max_length, layout=template.layout, seq2seq=seq2seq)
        r = encode_rm_text(tokenizer, template.user_message(p.task, p.instruction, p.source, p.rejected, p.prompt),
                           max_length, layout=template.layout, seq2seq=seq2seq)
        # input_ids only feeds the length-grouped sampler (the longer of the two sequences).
        rows.append({"chosen_ids": c, "rejected_ids": r, "input_ids": c if len(c) >= len(r) else r})
    return EncodedDataset(rows)


def collate_rm(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows in one right-padded batch (the head pools the last non-pad token)."""
    seqs = [f["chosen_ids"] for f in features] + [f["rejected_ids"] for f in features]
    return {"input_ids": pad_batch(seqs, pad_id), "attention_mask": pad_batch([[1] * len(s) for s in seqs], 0)}


def _last_token_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[N] logits. HF classifiers pool the last token that is not the pad id; pad == eos for ChatML
    models, and the chat template's interior <|im_end|> tokens are not at the end, so that is the
    true last token under right padding. T5ForSequenceClassification instead pools the decoder's state
    at the last </s> (encode_rm_text ends every seq2seq input with exactly one), also the true end."""
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()


def make_reward_loss_fn(loss_cfg: Any = None):
    """(model, inputs, num_items_in_batch) -> (loss, metrics): the reward loss of the `reward.loss` node
    (None: bt) on the scores of rows [0, B) (chosen) and [B, 2B) (rejected)."""
    loss_cfg = loss_cfg if loss_cfg is not None else {"name": "bt"}
    name = str(loss_cfg.get("name"))
    fn = REWARD_LOSSES[name]
    opts = options(REWARD_LOSSES.typed(loss_cfg, name=name, where="reward.loss"))

    def loss_fn(model, inputs, num_items_in_batch=None):
        scores = _last_token_scores(model, inputs["input_ids"], inputs["attention_mask"])
        b = scores.size(0) // 2
        return fn(scores[:b], scores[b:], **opts)

    return loss_fn


bt_loss_fn = make_reward_loss_fn()  # the Bradley-Terry loss with no options


@torch.no_grad()
def pairwise_accuracy(model, tokenizer, dataset: EncodedDataset, batch_size: int = 16) -> dict[str, float]:
    """Fraction of pairs with r(chosen) > r(rejected), and the mean margin."""
    if len(dataset) == 0:
        return {"accuracy": float("nan"), "margin": float("nan"), "pairs": 0, "correct": []}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    wins, margins, correct = 0, [], []
    for i in range(0, len(dataset), batch_size):
        batch = collate_rm([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))], tokenizer.pad_token_id)
        s = _last_token_scores(model, batch["input_ids"].to(device), batch["attention_mask"].to(device))
        b = s.size(0) // 2
        d = s[:b] - s[b:]
        wins += int((d > 0).sum())
        margins.extend(d.tolist())
        correct.extend(bool(x) for x in (d > 0).tolist())
    model.train(was_training)
    return {"accuracy": wins / len(dataset), "margin": sum(margins) / len(margins), "pairs": len(dataset),
            "correct": correct}


def split_heldout(pairs: Sequence[RMPair], fraction: float, seed: int) -> tuple[list[RMPair], list[RMPair]]:
    """Deterministic split by a hash of (task, source/prompt): all pairs of one input land on the same
    side, so held-out accuracy is measured on inputs the RM never trained on."""
    if fraction <= 0:
        return list(pairs), []
    train, held = [], []
    for p in pairs:
        key = f"{seed}|{p.task}|{p.source if p.source is not None else p.prompt}"
        u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
        (held if u < fraction else train).append(p)
    if not train:
        raise ValueError(f"reward.heldout_fraction={fraction} leaves no training pairs ({len(pairs)} pairs)")
    return train, held


def build_reward_trainer(model, tokenizer, dataset: EncodedDataset, train_cfg: Any, out_dir: Path, *,
                         seed: int, tracking: Any = None, device: str = "auto", loss_cfg: Any = None) -> LossTrainer:
    args = training_arguments(train_cfg, out_dir, seed=seed, tracking=tracking, device=device)
    return LossTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
        data_collator=lambda feats: collate_rm(feats, tokenizer.pad_token_id),
        loss_fn=make_reward_loss_fn(loss_cfg), scaled_for_ga=False,  # a batch mean: the Trainer divides by GA
    )


def ensure_head_trainable(model) -> None:
    """PEFT's SEQ_CLS task type puts the score head in modules_to_save; fail loudly if it did not,
    because a frozen random head makes the RM untrainable."""
    if not hasattr(model, "peft_config"):
        return
    # T5ForSequenceClassification's head is `classification_head` (models.add_lora saves it).
    names = [n for n, p in model.named_parameters()
             if p.requires_grad and ("score" in n or "classification_head" in n)]
    if not names:
        raise RuntimeError("reward model: the score head is frozen; LoRA needs modules_to_save=['score']")


def train_reward(model, tokenizer, train_pairs: Sequence[RMPair], heldout_pairs: Sequence[RMPair],
                 template: RMTemplate, train_cfg: Any, out_dir: Path, *, max_length: int, seed: int,
                 tracking: Any = None, device: str = "auto", loss_cfg: Any = None) -> dict:
    """Train in place; returns loss statistics, held-out accuracy before and after training, and
    whether the trained RM ranks each held-out pair right (heldout_correct, in heldout_pairs order).
    loss_cfg: the `reward.loss` node (default: bt)."""
    ensure_head_trainable(model)
    s2s = is_seq2seq(model)
    train_ds = encode_rm_pairs(train_pairs, tokenizer, template, max_length, seq2seq=s2s)
    held_ds = encode_rm_pairs(heldout_pairs, tokenizer, template, max_length, seq2seq=s2s)
    trainer = build_reward_trainer(model, tokenizer, train_ds, train_cfg, out_dir, seed=seed, tracking=tracking,
                                   device=device, loss_cfg=loss_cfg)
    bs = int(train_cfg.batch_size) * 2
    before = pairwise_accuracy(trainer.model, tokenizer, held_ds, bs)
    stats = fit(trainer, out_dir)
    after = pairwise_accuracy(trainer.model, tokenizer, held_ds, bs)
    train_acc = pairwise_accuracy(trainer.model, tokenizer, train_ds, bs)
    stats.update(train_pairs=len(train_ds), heldout_pairs=len(held_ds), heldout_accuracy=after["accuracy"],
                 heldout_margin=after["margin"], heldout_accuracy_before=before["accuracy"],
                 heldout_margin_before=before["margin"],
                 train_accuracy=train_acc["accuracy"], heldout_correct=after["correct"])
    return stats


def write_meta(rm_dir: Path, model_cfg: Any, template: RMTemplate, adapters: dict[str, str], max_length: int) -> None:
    from omegaconf import OmegaConf

    from rationalign.io import atomic_write_json

    mc = OmegaConf.to_container(model_cfg, resolve=True) if OmegaConf.is_config(model_cfg) else dict(model_cfg)
    atomic_write_json(rm_dir / META_FILE, {
        "model": mc, "adapters": adapters, "max_length": max_length,
        "rm_template": template.rm_template, "rm_instructions": template.rm_instructions,
        "layout": template.layout.to_dict(),
    })


class RewardScorer:
    """Scores suggestions with a saved RM. ``adapters`` maps task -> subdir; key "*" serves every task."""

    def __init__(self, model, tokenizer, template: RMTemplate, max_length: int, adapters: dict[str, str],
                 batch_size: int = 16):
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.max_length, self.adapters, self.batch_size = max_length, adapters, batch_size
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, rm_dir: str | Path, cache_dir: str | Path | None = None, *, device: str | None = None,
             batch_size: int = 16) -> RewardScorer:
        from rationalign.models import load_base_model, load_trained

        rm_dir = Path(rm_dir)
        meta_path = rm_dir / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: not a reward-model directory (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        adapters: dict[str, str] = meta["adapters"]
        # RM dirs written before layouts existed were trained through the chat template.
        lay = meta.get("layout") or {"name": "chat", "system": "You are a writing assistant."}
        template = RMTemplate(meta["rm_template"], meta["rm_instructions"], Layout(lay["name"], lay.get("system")))
        first = next(iter(adapters.values()))
        if len(adapters) == 1:
            model, tok = load_trained(meta["model"], rm_dir / first, cache_dir, head="score")
        else:
            # Per-task adapters (App. B.4): one base, several named adapters, switched per task group.
            from peft import PeftModel

            base, tok = load_base_model(meta["model"], cache_dir, head="score")
            names = list(adapters)
            model = PeftModel.from_pretrained(base, str(rm_dir / adapters[names[0]]), adapter_name=names[0])
            for n in names[1:]:
                model.load_adapter(str(rm_dir / adapters[n]), adapter_name=n)
            model.eval()
        if device:
            model.to(device)
        return cls(model, tok, template, int(meta["max_length"]), adapters, batch_size)

    def _adapter_for(self, task: str | None) -> str:
        if "*" in self.adapters:
            return "*"
        if task not in self.adapters:
            raise KeyError(f"reward model has no adapter for task {task!r}; it has {sorted(self.adapters)}")
        return task

    @torch.no_grad()
    def score(self, items: Sequence[tuple[str, str, str, str]]) -> list[float]:
        """items: (task, instruction, source, suggestion) -> one scalar reward each, in input order."""
        s2s = is_seq2seq(self.model)
        encoded = [encode_rm_text(self.tokenizer, self.template.user_message(t, ins, src, sug), self.max_length,
                                  layout=self.template.layout, seq2seq=s2s)
                   for t, ins, src, sug in items]
        groups: dict[str, list[int]] = {}
        for i, (task, *_rest) in enumerate(items):
            groups.setdefault(self._adapter_for(task), []).append(i)
        out = [0.0] * len(items)
        for adapter, idx in groups.items():
            if adapter != "*" and len(self.adapters) > 1:
                self.model.set_adapter(adapter)
            idx = sorted(idx, key=lambda i: len(encoded[i]))  # length-sorted batches pad little
            for k in range(0, len(idx), self.batch_size):
                chunk = idx[k:k + self.batch_size]
                seqs = [encoded[i] for i in chunk]
                ids = pad_batch(seqs, self.tokenizer.pad_token_id).to(self.device)
                mask = pad_batch([[1] * len(s) for s in seqs], 0).to(self.device)
                for i, s in zip(chunk, _last_token_scores(self.model, ids, mask).tolist()):
                    out[i] = s
        return out


__all__ = [
    "RMTemplate",
    "RewardScorer",
    "bt_loss_fn",
    "build_reward_trainer",
    "collate_rm",
    "encode_rm_pairs",
    "make_reward_loss_fn",
    "pairwise_accuracy",
    "split_heldout",
    "train_reward",
    "write_meta",
]
