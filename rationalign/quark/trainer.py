"""QUARK's objective on the data pool (Lu et al. 2022, Eq. in Sec. 3):

    loss = CE(y | r_tokens, x)  +  kl_coef * KL(pi(. | r_tokens, x) || pi_ref(. | x))  -  entropy_coef * H(pi(. | r_tokens, x))

per completion token, averaged over the batch's completion tokens. The reference sees the prompt
*without* control tokens (it never learned them); the completion tokens are the same, so policy
and reference distributions line up row by row at the completion positions.

With LoRA the reference is the same model with its adapters disabled (no second copy in memory);
without LoRA it is a frozen copy of the model as it was before training.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rationalign.training.chat import Layout, encode_pair
from rationalign.training.logps import (
    causal_completion_logits,
    collate_completion,
    is_seq2seq,
    seq2seq_completion_logits,
    unwrap_parallel,
)
from rationalign.training.sft import EncodedDataset
from rationalign.training.trainer import LossTrainer, fit, training_arguments


@dataclass
class QuarkExample:
    prompt: str      # user message with the control-token prefix
    ref_prompt: str  # the same user message without it (reference policy input)
    completion: str


def encode_quark(examples: list[QuarkExample], tokenizer, max_length: int, *, layout: Layout,
                 seq2seq: bool = False) -> EncodedDataset:
    """seq2seq: the prompts (with / without control tokens) are encoder inputs, the completion the
    decoder target, so policy and reference still line up token by token on the completion."""
    rows = []
    for ex in examples:
        p, c = encode_pair(tokenizer, ex.prompt, ex.completion, max_length, layout=layout, seq2seq=seq2seq)
        rp, rc = encode_pair(tokenizer, ex.ref_prompt, ex.completion, max_length, layout=layout, seq2seq=seq2seq)
        if rc != c:  # cannot happen with encode_pair (the completion is cut the same way); guard anyway
            raise ValueError("quark: policy and reference completions tokenised differently")
        rows.append({"prompt_ids": p, "completion_ids": c, "ref_prompt_ids": rp, "input_ids": p + c})
    return EncodedDataset(rows)


def collate_quark(features: list[dict], pad_id: int, *, seq2seq: bool = False) -> dict[str, torch.Tensor]:
    batch = collate_completion(features, pad_id, seq2seq=seq2seq)
    ref = collate_completion([{"prompt_ids": f["ref_prompt_ids"], "completion_ids": f["completion_ids"]}
                              for f in features], pad_id, seq2seq=seq2seq)
    batch.update({f"ref_{k}": v for k, v in ref.items()})
    return batch


def completion_logits(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, V] at the positions predicting completion tokens, targets [N]), in row order."""
    if is_seq2seq(model):
        logits, targets, _ = seq2seq_completion_logits(model, input_ids, attention_mask, labels)
        return logits, targets
    targets = labels[:, 1:]
    mask = targets != -100
    return causal_completion_logits(model, input_ids, attention_mask, mask), targets[mask]


def quark_token_terms(logits: torch.Tensor, targets: torch.Tensor, ref_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-token CE, KL(policy || reference) and the policy's entropy, each [N]."""
    logp = torch.log_softmax(logits, -1)
    ref_logp = torch.log_softmax(ref_logits, -1)
    p = logp.exp()
    ce = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    kl = (p * (logp - ref_logp)).sum(-1)
    ent = -(p * logp).sum(-1)
    return {"ce": ce, "kl": kl, "entropy": ent}


def quark_terms(logits: torch.Tensor, targets: torch.Tensor, ref_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-token means of CE, KL(policy || reference) and the policy's entropy."""
    return {k: v.mean() for k, v in quark_token_terms(logits, targets, ref_logits).items()}


def quark_loss(terms: dict[str, torch.Tensor], kl_coef: float, entropy_coef: float) -> torch.Tensor:
    return terms["ce"] + kl_coef * terms["kl"] - entropy_coef * terms["entropy"]


def make_loss_fn(kl_coef: float, entropy_coef: float, reference=None):
    """Per-token loss summed and divided by the completion tokens of the whole optimizer step
    (`num_items_in_batch`, LossTrainer scaled_for_ga=True), or of this batch when not given."""

    def loss_fn(model, inputs, num_items_in_batch=None):
        logits, targets = completion_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        with torch.no_grad():
            # No gradient here, so the reference may bypass a DDP wrapper (which has no disable_adapter).
            inner = unwrap_parallel(model)
            ref_model = reference if reference is not None else inner
            ctx = inner.disable_adapter() if reference is None else nullcontext()
            with ctx:
                ref_logits, ref_targets = completion_logits(ref_model, inputs["ref_input_ids"],
                                                            inputs["ref_attention_mask"], inputs["ref_labels"])
        if not torch.equal(ref_targets, targets):
            raise RuntimeError("quark: reference and policy completion tokens are misaligned")
        tok = quark_token_terms(logits, targets, ref_logits)
        per_token = tok["ce"] + kl_coef * tok["kl"] - entropy_coef * tok["entropy"]
        denom = num_items_in_batch if num_items_in_batch is not None else max(per_token.numel(), 1)
        if isinstance(denom, torch.Tensor):
            denom = denom.to(per_token.device)
        return per_token.sum() / denom, {k: v.detach().mean() for k, v in tok.items()}

    return loss_fn


def frozen_reference(model):
    """Reference for full fine-tuning (no adapters to disable): a frozen copy of the start point."""
    if hasattr(model, "disable_adapter"):
        return None
    ref = copy.deepcopy(model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def train_quark(model, tokenizer, examples: list[QuarkExample], train_cfg: Any, out_dir: Path, *,
                steps: int | None = None, optimizers: tuple = (None, None), kl_coef: float, entropy_coef: float, max_length: int, seed: int,
                reference=None, layout: Layout, tracking: Any = None, device: str = "auto") -> dict:
    """One round: `steps` optimizer steps on the pool (in place, cycling it as often as needed), with
    the run's one optimizer and scheduler (`quark.schedule.build_optimizer`), which carry on across
    rounds. Without them (steps None) train_cfg's epochs / max_steps and the Trainer's own optimizer
    and schedule apply. Returns loss statistics and the last logged ce / kl / entropy."""
    from omegaconf import OmegaConf

    s2s = is_seq2seq(model)
    ds = encode_quark(examples, tokenizer, max_length, layout=layout, seq2seq=s2s)
    round_cfg = train_cfg if steps is None else OmegaConf.merge(
        OmegaConf.create(OmegaConf.to_container(train_cfg, resolve=True)), {"max_steps": int(steps), "warmup_ratio": 0.0})
    args = training_arguments(round_cfg, out_dir, seed=seed, tracking=tracking, device=device)
    trainer = LossTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tokenizer,
        data_collator=lambda feats: collate_quark(feats, tokenizer.pad_token_id, seq2seq=s2s),
        loss_fn=make_loss_fn(kl_coef, entropy_coef, reference),
        scaled_for_ga=True,  # token-level: divided by the completion tokens of the whole step
        optimizers=optimizers,
    )
    stats = fit(trainer, out_dir)
    logged = [h for h in stats["log_history"] if "ce" in h]
    if logged:
        stats.update({k: logged[-1][k] for k in ("ce", "kl", "entropy")})
        stats["ce_first"] = logged[0]["ce"]
    stats["examples"] = len(ds)
    stats["lr_after"] = [float(g["lr"]) for g in trainer.optimizer.param_groups]
    return stats
