"""One preference trainer for every loss in ``losses.LOSSES`` (dpo, cpo, simpo, orpo, mpo, rdpo, rorpo).

Per step, the chosen responses, the rejected responses and (rdpo/rorpo) the preference rationales
r | x, y_w > y_l are stacked into ONE batch and go through ONE backbone forward
(``logps.sequence_logps``: LM head on completion positions only). The loss is looked up by name;
this module never branches on the loss beyond what its registry entry declares (needs_reference,
needs_rationale, needs_rewards: ``losses.LOSSES.entry(name)``); its options are ``LOSSES.typed(cfg.loss)``.

Reference log-probs (dpo, rdpo) are computed once, before training, with no grad, and cached on
disk keyed by sha256(model identity + tokenised data + max_length), so no reference model sits in
memory during training and reruns (sweeps over beta, resumed jobs) skip the pass entirely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rationalign.losses import LOSSES, PreferenceLogps, options
from rationalign.training.chat import Layout, encode_pair
from rationalign.training.logps import collate_completion, is_seq2seq, is_sharded, sequence_logps
from rationalign.training.pairs_io import PrefPair
from rationalign.training.sft import EncodedDataset
from rationalign.training.trainer import LossTrainer, fit, training_arguments

log = logging.getLogger("rationalign")

# Default prompt for the preference rationale r | x, y_w > y_l (RDPO, Just et al. 2024). Another issue
# refines it; align.rationale_template overrides it. Placeholders: {prompt} {chosen} {rejected}.
DEFAULT_RATIONALE_TEMPLATE = (
    "{prompt}\n\nResponse A:\n{chosen}\n\nResponse B:\n{rejected}\n\n"
    "Response A is better than Response B. Explain why."
)


# ------------------------------------------------------------------------------------------ encoding
def encode_preference(pairs: Sequence[PrefPair], tokenizer, user_messages: Sequence[str], max_length: int, *,
                      with_rationale: bool = False, with_rewards: bool = False,
                      rationale_template: str = DEFAULT_RATIONALE_TEMPLATE, layout: Layout,
                      seq2seq: bool = False) -> EncodedDataset:
    """Token ids per pair: (prompt, chosen), (prompt, rejected) and optionally (rationale prompt, r).
    seq2seq: each prompt is an encoder input and each completion a decoder target (chat.encode_pair)."""
    if len(user_messages) != len(pairs):
        raise ValueError("encode_preference: one user message per pair")
    rows = []
    for p, msg in zip(pairs, user_messages):
        row: dict[str, Any] = {}
        row["c_prompt"], row["c_ids"] = encode_pair(tokenizer, msg, p.chosen, max_length, layout=layout,
                                                     seq2seq=seq2seq)
        row["r_prompt"], row["r_ids"] = encode_pair(tokenizer, msg, p.rejected, max_length, layout=layout,
                                                     seq2seq=seq2seq)
        if with_rationale:
            if not p.rationale:
                raise ValueError(f"pair {p.id}: field 'rationale' is missing (the loss has a rationale term)")
            rmsg = p.rationale_prompt or rationale_template.format(prompt=msg, chosen=p.chosen, rejected=p.rejected)
            row["x_prompt"], row["x_ids"] = encode_pair(tokenizer, rmsg, p.rationale, max_length, layout=layout,
                                                         seq2seq=seq2seq)
        if with_rewards:
            if p.chosen_reward is None or p.rejected_reward is None:
                raise ValueError(f"pair {p.id}: fields 'chosen_reward'/'rejected_reward' are missing (MPO needs them)")
            row["rewards"] = (p.chosen_reward, p.rejected_reward)
        # input_ids only feeds the length-grouped sampler.
        row["input_ids"] = [0] * max(len(row["c_prompt"]) + len(row["c_ids"]), len(row["r_prompt"]) + len(row["r_ids"]))
        rows.append(row)
    return EncodedDataset(rows)


def collate_preference(features: list[dict], pad_id: int, *, seq2seq: bool = False) -> dict[str, Any]:
    """Rows [0,B) chosen, [B,2B) rejected, [2B,3B) rationale (when present), one padded batch
    (seq2seq: encoder input_ids/attention_mask and decoder labels, rows in the same order)."""
    seqs = [{"prompt_ids": f["c_prompt"], "completion_ids": f["c_ids"]} for f in features]
    seqs += [{"prompt_ids": f["r_prompt"], "completion_ids": f["r_ids"]} for f in features]
    if "x_ids" in features[0]:
        seqs += [{"prompt_ids": f["x_prompt"], "completion_ids": f["x_ids"]} for f in features]
    batch: dict[str, Any] = collate_completion(seqs, pad_id, seq2seq=seq2seq)
    if "rewards" in features[0]:
        batch["rewards"] = torch.tensor([f["rewards"] for f in features], dtype=torch.float32)
    if "ref" in features[0]:
        batch["ref"] = torch.tensor([f["ref"] for f in features], dtype=torch.float32)
    return batch


# ------------------------------------------------------------------------------------------ loss
def make_loss_fn(loss_name: str, hparams: dict, *, logits_chunk: int = 0) -> Callable:
    fn = LOSSES[loss_name]

    def loss_fn(model, inputs, num_items_in_batch=None):
        if "packed_ids" in inputs:  # training.shared_prompt: one row per pair, the prompt computed once
            from rationalign.training.shared_prompt import packed_sequence_logps

            lp, lens = packed_sequence_logps(model, inputs, logits_chunk=logits_chunk)
        else:
            lp, lens = sequence_logps(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        b = int(inputs["n_pairs"])  # rows: B chosen, B rejected, then B rationales (rdpo/rorpo)
        fields: dict[str, Any] = {"chosen_logps": lp[:b], "rejected_logps": lp[b:2 * b],
                                      "chosen_lengths": lens[:b], "rejected_lengths": lens[b:2 * b]}
        if lp.size(0) == 3 * b:
            fields.update(rationale_logps=lp[2 * b:], rationale_lengths=lens[2 * b:])
        if "rewards" in inputs:
            fields.update(reward_chosen=inputs["rewards"][:, 0], reward_rejected=inputs["rewards"][:, 1])
        if "ref" in inputs:
            fields.update(ref_chosen_logps=inputs["ref"][:, 0], ref_rejected_logps=inputs["ref"][:, 1])
        return fn(PreferenceLogps(**fields), **hparams)

    return loss_fn


# ------------------------------------------------------------------------------------------ reference
def _reference_forward(model, batch: dict) -> torch.Tensor:
    """Sequence log-probs of one reference batch (module-level so tests can count calls)."""
    lp, _ = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return lp


@torch.no_grad()
def compute_reference_logps(model, dataset: EncodedDataset, pad_id: int, *, batch_size: int = 8,
                            mode: str = "init") -> torch.Tensor:
    """[N, 2] reference (chosen, rejected) log-probs, eval mode (no dropout).

    mode="init": the model as it is before training -- the SFT policy when training starts from the
    SFT adapter (DPO's pi_ref = pi_SFT), and equal to the base model for a fresh LoRA (B = 0).
    mode="base": the base weights with adapters disabled (PEFT's disable_adapter).
    """
    if mode not in ("init", "base"):
        raise ValueError(f"align.reference={mode!r}: expected 'init' or 'base'")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(dataset)), key=lambda i: len(dataset[i]["input_ids"]))
    s2s = is_seq2seq(model)
    out = torch.zeros(len(dataset), 2)
    ctx = model.disable_adapter() if mode == "base" and hasattr(model, "disable_adapter") else contextlib.nullcontext()
    try:
        with ctx:
            for k in range(0, len(order), batch_size):
                idx = order[k:k + batch_size]
                feats = [{key: v for key, v in dataset[i].items() if key not in ("x_ids", "x_prompt")} for i in idx]
                batch = collate_preference(feats, pad_id, seq2seq=s2s)
                batch = {key: v.to(device) for key, v in batch.items() if torch.is_tensor(v)}
                lp = _reference_forward(model, batch).float().cpu()
                b = len(idx)
                out[idx, 0], out[idx, 1] = lp[:b], lp[b:2 * b]
    finally:
        model.train(was_training)
    return out


def reference_cache_key(model_identity: Any, dataset: EncodedDataset, max_length: int, mode: str) -> str:
    """sha256 over the model identity, the exact token ids the reference sees, max_length and mode."""
    h = hashlib.sha256()
    h.update(json.dumps({"model": model_identity, "max_length": max_length, "mode": mode},
                        sort_keys=True, default=str).encode())
    for r in dataset.rows:
        h.update(json.dumps([r["c_prompt"], r["c_ids"], r["r_prompt"], r["r_ids"]]).encode())
    return h.hexdigest()


def reference_logps(model, dataset: EncodedDataset, pad_id: int, *, cache_dir: str | Path | None,
                    model_identity: Any, max_length: int, batch_size: int = 8, mode: str = "init") -> torch.Tensor:
    """Reference log-probs from the disk cache, or computed (and stored when cache_dir is given)."""
    path = None
    if cache_dir is not None:
        key = reference_cache_key(model_identity, dataset, max_length, mode)
        path = Path(cache_dir) / f"{key}.pt"
        if path.exists():
            ref = torch.load(path)
            if ref.shape == (len(dataset), 2):
                log.info("reference log-probs: cache hit %s", path)
                return ref
            log.warning("reference cache %s has shape %s, expected (%d, 2); recomputing", path, tuple(ref.shape),
                        len(dataset))
    ref = compute_reference_logps(model, dataset, pad_id, batch_size=batch_size, mode=mode)
    if path is not None:
        from rationalign.io import umask

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ref-", suffix=".pt")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp's 0600 -> the umask, as every other artifact
        torch.save(ref, tmp)
        os.replace(tmp, path)  # atomic: a crash never leaves a truncated cache entry
        log.info("reference log-probs: cached at %s", path)
    return ref


def attach_reference(dataset: EncodedDataset, ref: torch.Tensor) -> None:
    for row, (c, r) in zip(dataset.rows, ref.tolist()):
        row["ref"] = (c, r)


# ------------------------------------------------------------------------------------------ trainer
@dataclass
class PreferenceSetup:
    loss_name: str
    hparams: dict
    needs_reference: bool
    with_rationale: bool
    with_rewards: bool


def setup_for(loss_cfg: Any) -> PreferenceSetup:
    """The loss's options, typed and checked by its registry entry (an unknown key or a value out of
    range is a ValueError naming loss.<key>), and what the entry declares its batches need."""
    name = str(loss_cfg.get("name") if hasattr(loss_cfg, "get") else loss_cfg.name)
    if name not in LOSSES:
        raise ValueError(f"loss.name={name!r} is not a preference loss; known: {', '.join(LOSSES.names())}")
    entry = LOSSES.entry(name)
    return PreferenceSetup(name, options(LOSSES.typed(loss_cfg, name=name, where="loss")), entry.needs_reference,
                           entry.needs_rationale, entry.needs_rewards)


def build_preference_trainer(model, tokenizer, dataset: EncodedDataset, setup: PreferenceSetup, train_cfg: Any,
                             out_dir: Path, *, seed: int, tracking: Any = None, device: str = "auto",
                             callbacks: list | None = None, shared_prompt: bool = True,
                             logits_chunk: int = 0) -> LossTrainer:
    """shared_prompt: each pair packed as one row with its prompt computed once (training.shared_prompt;
    decoder-only models whose attention takes a 4D mask); False: chosen and rejected as separate rows.
    logits_chunk (packed rows only): LM head rows per checkpointed chunk, 0 = all at once."""
    if setup.needs_reference and "ref" not in dataset.rows[0]:
        raise ValueError(f"loss {setup.loss_name!r} needs reference log-probs: call attach_reference first")
    args = training_arguments(train_cfg, out_dir, seed=seed, tracking=tracking, device=device)
    pad = tokenizer.pad_token_id
    s2s = is_seq2seq(model)
    from rationalign.training.shared_prompt import supports_block_mask

    packed = shared_prompt and not s2s and not is_sharded(model) and supports_block_mask(model)

    def collate(feats):
        if packed:
            from rationalign.training.shared_prompt import pack_preference

            batch = pack_preference(feats, pad)
        else:
            batch = collate_preference(feats, pad, seq2seq=s2s)
        batch["n_pairs"] = len(feats)
        return batch

    return LossTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, data_collator=collate,
        loss_fn=make_loss_fn(setup.loss_name, setup.hparams, logits_chunk=logits_chunk),
        scaled_for_ga=False,  # preference losses are batch means: the Trainer divides by GA steps
        callbacks=callbacks,
    )


def train_preference(model, tokenizer, pairs: Sequence[PrefPair], user_messages: Sequence[str], loss_cfg: Any,
                     train_cfg: Any, out_dir: Path, *, max_length: int, seed: int, tracking: Any = None,
                     device: str = "auto", reference_cache: str | Path | None = None, model_identity: Any = None,
                     reference_mode: str = "init", rationale_template: str = DEFAULT_RATIONALE_TEMPLATE,
                     layout: Layout, shared_prompt: bool = True, logits_chunk: int = 0) -> dict:
    """Train in place (adapters when the model is a PeftModel); returns loss statistics."""
    setup = setup_for(loss_cfg)
    ds = encode_preference(pairs, tokenizer, user_messages, max_length, with_rationale=setup.with_rationale,
                           with_rewards=setup.with_rewards, rationale_template=rationale_template,
                           layout=layout, seq2seq=is_seq2seq(model))
    if setup.needs_reference:
        from rationalign.distributed import main_then_broadcast
        from rationalign.models import move_to

        # On the device training uses (the Trainer would move it there next anyway).
        move_to(model, training_arguments(train_cfg, out_dir, seed=seed, device=device).device)
        # Computed once, by rank 0 under accelerate launch, for the whole pair file; every rank attaches
        # the same [N, 2] rows to the same pairs, and the Trainer's sampler then shards the pairs.
        ref = main_then_broadcast(lambda: reference_logps(
            model, ds, tokenizer.pad_token_id, cache_dir=reference_cache, model_identity=model_identity,
            max_length=max_length, batch_size=2 * int(train_cfg.batch_size), mode=reference_mode))
        attach_reference(ds, ref)
    trainer = build_preference_trainer(model, tokenizer, ds, setup, train_cfg, out_dir, seed=seed,
                                       tracking=tracking, device=device, shared_prompt=shared_prompt,
                                       logits_chunk=logits_chunk)
    stats = fit(trainer, out_dir)
    stats.update(pairs=len(ds), loss=setup.loss_name, hparams=setup.hparams)
    return stats


__all__ = ["DEFAULT_RATIONALE_TEMPLATE", "PreferenceSetup", "attach_reference", "build_preference_trainer",
           "collate_preference", "compute_reference_logps", "encode_preference", "make_loss_fn",
           "reference_cache_key", "reference_logps", "setup_for", "train_preference"]
