"""One transformers.Trainer subclass shared by the SFT, reward and preference trainers.

The Trainer does the loop (accumulation, optimiser, checkpoints, resume, logging, accelerate
backends); each trainer only supplies a loss function returning (loss, metrics). Metrics are
averaged over the steps between two log lines and tokens/s is measured on the real batches.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

log = logging.getLogger("rationalign")

LossFn = Callable[[Any, dict, Any], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class EpochSeededLengthSampler(LengthGroupedSampler):
    """`train.group_by_length` whose shuffle is a function of (seed, epoch) alone. transformers'
    LengthGroupedSampler draws from the global RNG when an epoch's iterator is made; a run resumed
    mid-epoch from a checkpoint makes that iterator before the checkpoint's RNG state is restored,
    so the rest of that epoch saw other batches than an uninterrupted run (a requeued SLURM job
    trained something else: make slurm-check, check c). The Trainer calls set_epoch before each
    epoch, resumed or not; every rank draws the same order."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=g))


class LossTrainer(Trainer):
    """`scaled_for_ga=True`: the loss is token-level and divides by `num_items_in_batch`, the number of
    completion tokens of the whole optimizer step (every accumulated micro-batch, every rank: the
    Trainer counts and all-gathers it), so k micro-batches give exactly the gradient of one batch k
    times larger (the loss-scaling bug fixed in huggingface/trl#2615). Under DDP each rank's loss is
    multiplied by the number of processes, because DDP averages gradients over ranks.
    `scaled_for_ga=False`: a batch mean (preference, Bradley-Terry); the Trainer divides it by the
    accumulation steps and DDP's average over ranks gives the mean over the global batch."""

    def __init__(self, *args, loss_fn: LossFn, scaled_for_ga: bool, **kw):
        super().__init__(*args, **kw)
        self._loss_fn = loss_fn
        self._token_level = scaled_for_ga
        # The Trainer counts num_items_in_batch only for models that "accept loss kwargs"; ours never
        # receive them (the loss is computed here), so this flag only switches the count on or off.
        self.model_accepts_loss_kwargs = scaled_for_ga
        self.loss_is_scaled_for_ga = scaled_for_ga
        self._metric_sums: dict[str, float] = defaultdict(float)
        self._metric_n = 0
        self._tokens = 0
        self._t_last = time.time()
        self.loss_history: list[tuple[int, float]] = []

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:  # see EpochSeededLengthSampler
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthSampler(sampler.batch_size, sampler.lengths, seed)
        return sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, metrics = self._loss_fn(model, inputs, num_items_in_batch)
        if self._token_level:
            # Without a step-wide count the loss fn divided by this micro-batch's tokens: the Trainer
            # must then divide by the accumulation steps.
            self.loss_is_scaled_for_ga = num_items_in_batch is not None
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        if model.training:
            for k, v in metrics.items():
                self._metric_sums[k] += float(v.detach().float().mean()) if torch.is_tensor(v) else float(v)
            self._metric_n += 1
            if "n_tokens" in inputs:  # packed preference rows (training.shared_prompt): the unpacked count
                self._tokens += int(inputs["n_tokens"])
            elif "attention_mask" in inputs:
                self._tokens += int(inputs["attention_mask"].sum())
        return (loss, None) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._metric_n:
            for k, v in self._metric_sums.items():
                logs[k] = v / self._metric_n
            now = time.time()
            logs["tokens_per_second"] = self._tokens / max(now - self._t_last, 1e-9)
            self._metric_sums.clear()
            self._metric_n = 0
            self._tokens = 0
            self._t_last = now
        if "loss" in logs:
            self.loss_history.append((self.state.global_step, float(logs["loss"])))
        super().log(logs, start_time)


def training_arguments(train_cfg: Any, out_dir: Path, *, seed: int, tracking: Any = None,
                       run_name: str | None = None, device: str = "auto") -> TrainingArguments:
    report_to = ["wandb"] if tracking is not None and getattr(tracking, "backend", "none") == "wandb" else []
    use_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    save_steps = int(train_cfg.save_steps)
    return TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=int(train_cfg.batch_size),
        gradient_accumulation_steps=int(train_cfg.grad_accum),
        learning_rate=float(train_cfg.lr),
        num_train_epochs=float(train_cfg.epochs),
        max_steps=int(train_cfg.max_steps),
        warmup_steps=float(train_cfg.warmup_ratio),
        weight_decay=float(train_cfg.weight_decay),
        lr_scheduler_type="linear",
        logging_steps=int(train_cfg.logging_steps),
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=save_steps if save_steps > 0 else 500,
        save_total_limit=2,
        bf16=bool(train_cfg.bf16),
        gradient_checkpointing=bool(train_cfg.gradient_checkpointing),
        train_sampling_strategy="group_by_length" if train_cfg.group_by_length else "random",
        remove_unused_columns=False,
        report_to=report_to,
        run_name=run_name,
        seed=seed,
        data_seed=seed,
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        disable_tqdm=False,
        save_only_model=False,
    )


# What transformers' Trainer writes into checkpoint-N, file by file and not atomically: a kill in the
# middle leaves some of it. Each entry: (what, names that count; a trailing * matches a prefix).
_CHECKPOINT_PARTS = (
    ("model weights", ("adapter_model.safetensors", "adapter_model.bin", "model.safetensors",
                       "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
                       "pytorch_model_fsdp*")),
    ("optimizer state", ("optimizer.pt", "optimizer.bin", "optimizer_*", "global_step*")),  # *: FSDP, DeepSpeed
    ("RNG state", ("rng_state.pth", "rng_state_*.pth")),
)


def checkpoint_problem(ckpt: Path) -> str | None:
    """None for a checkpoint the Trainer can resume from; else what is missing or broken."""
    state = ckpt / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, ValueError) as e:
        return f"unreadable trainer_state.json ({type(e).__name__})"
    names = [p.name for p in ckpt.iterdir()]
    for what, patterns in _CHECKPOINT_PARTS:
        if not any(fnmatch.fnmatch(n, pat) for n in names for pat in patterns):
            return f"no {what} ({' / '.join(patterns)})"
    return None


def last_checkpoint(out_dir: Path) -> str | None:
    """The newest complete checkpoint under out_dir/checkpoints; incomplete ones are skipped, logged."""
    ckpts = [p for p in (out_dir / "checkpoints").glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for ckpt in sorted(ckpts, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return str(ckpt)
        log.warning("not resuming from %s: incomplete checkpoint (%s), e.g. a run killed while saving it",
                    ckpt, problem)
    return None


def fit(trainer: LossTrainer, out_dir: Path) -> dict:
    """Train, resuming from the newest checkpoint under out_dir when there is one."""
    resume = last_checkpoint(out_dir)
    if resume:
        log.info("resuming from %s", resume)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    hist = trainer.loss_history
    return {
        "train_loss": float(result.training_loss),
        "steps": int(trainer.state.global_step),
        "seconds": round(time.time() - t0, 2),
        "loss_first": hist[0][1] if hist else None,
        "loss_last": hist[-1][1] if hist else None,
        "log_history": trainer.state.log_history,
    }
