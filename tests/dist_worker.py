"""Trains every trainer on tiny fixed data; run in-process (one rank) or under accelerate launch.

    accelerate launch --config_file conf/accelerate/cpu.yaml tests/dist_worker.py OUT BATCH GRAD_ACCUM [ROOT]

Rank 0 writes OUT/result.pt: per trainer the logged losses and the final trainable weights. Every
rank writes OUT/rank<r>.json: the type of model its loss functions received, how many reference
forward passes it ran and the reference rows it attached. tests/test_distributed.py compares a
2-process run with the same training in one process at twice the batch. With ROOT, it then runs
stage=sft through the CLI's run() into ROOT and each rank lists what it wrote in OUT/writes<r>.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from rationalign.config import TrainConfig
from rationalign.training.chat import Layout

# The inputs these equivalence checks were calibrated on (their float tolerances): chat-templated prompts.
LAYOUT = Layout("chat", "You are a writing assistant.")

LORA = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
MODEL = {"source": "tiny", "lora": LORA}
PREFERENCE_LOSSES = ("dpo", "cpo", "simpo", "orpo", "mpo", "rdpo", "rorpo")

# Lengths differ a lot, so a per-micro-batch token mean would differ from the step's token mean.
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "it", "rains", "on", "the", "old", "town", "square"]


def _text(i: int, n: int) -> str:
    return " ".join(WORDS[(i + j) % len(WORDS)] for j in range(n))


def sft_examples():
    from rationalign.training.sft import SFTExample

    return [SFTExample(f"Fix: {_text(i, 3)}", _text(i + 5, 2 + 5 * (i % 3))) for i in range(8)]


def pref_pairs():
    from rationalign.training.pairs_io import PrefPair

    return [PrefPair(id=f"p{i}", task=None, instruction="", source=None, prompt=f"Fix: {_text(i, 3)}", chosen=_text(i + 1, 2 + i % 4),
                     rejected=_text(i + 7, 3 + 2 * (i % 3)), chosen_reward=1.0 + 0.1 * i, rejected_reward=0.2 * i,
                     rationale=_text(i + 3, 4)) for i in range(8)]


def rm_pairs():
    from rationalign.training.pairs_io import RMPair

    return [RMPair(id=f"r{i}", task=None, instruction="", source=None, prompt=f"Rate: {_text(i, 3)}", chosen=_text(i + 2, 3), rejected=_text(i + 9, 2 + i % 3))
            for i in range(8)]


def quark_examples():
    from rationalign.quark.trainer import QuarkExample

    return [QuarkExample(f"<good> Fix: {_text(i, 3)}", f"Fix: {_text(i, 3)}", _text(i + 4, 2 + 4 * (i % 3)))
            for i in range(8)]


def train_cfg(batch: int, grad_accum: int):
    return OmegaConf.structured(TrainConfig(epochs=1.0, lr=5e-3, batch_size=batch, grad_accum=grad_accum,
                                            logging_steps=1, group_by_length=False))


def fresh(**kw):
    """The tiny model with fresh LoRA, initialised the same way in every run and on every rank."""
    from rationalign.models import load_for_training

    torch.manual_seed(0)
    return load_for_training(MODEL, **kw)


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _losses(stats: dict) -> list[float]:
    return [h["loss"] for h in stats["log_history"] if "loss" in h]


def run(out: Path, batch: int, grad_accum: int) -> dict:
    """Every trainer once; returns {name: {"losses": [...], "weights": {...}}}."""
    import rationalign.training.preference as pref
    from rationalign.losses import LOSSES, options
    from rationalign.quark.trainer import train_quark
    from rationalign.training.reward import RMTemplate, train_reward
    from rationalign.training.sft import train_sft
    from rationalign.training.trainer import LossTrainer

    rank = int(os.environ.get("RANK", "0"))
    seen = {"model_types": set(), "reference_forwards": 0, "reference_rows": {}}
    real_compute, real_forward = LossTrainer.compute_loss, pref._reference_forward

    def compute_loss(self, model, inputs, *a, **k):
        seen["model_types"].add(type(model).__name__)
        return real_compute(self, model, inputs, *a, **k)

    def reference_forward(model, b):
        seen["reference_forwards"] += 1
        return real_forward(model, b)

    LossTrainer.compute_loss, pref._reference_forward = compute_loss, reference_forward
    real_attach = pref.attach_reference

    def attach(ds, ref, name=None):
        seen["reference_rows"][len(seen["reference_rows"])] = ref.tolist()
        return real_attach(ds, ref)

    pref.attach_reference = attach
    tc = train_cfg(batch, grad_accum)
    res: dict = {}
    try:
        model, tok = fresh()
        stats = train_sft(model, tok, sft_examples(), tc, out / "sft", max_length=64, seed=0, device="cpu",
                          layout=LAYOUT)
        res["sft"] = {"losses": _losses(stats), "weights": _trainable(model)}

        model, tok = fresh(head="score")
        template = RMTemplate("{instruction}\n{source}\n{response}", {})
        stats = train_reward(model, tok, rm_pairs(), [], template, tc, out / "reward", max_length=64, seed=0,
                             device="cpu")
        res["reward"] = {"losses": _losses(stats), "weights": _trainable(model)}

        for loss in PREFERENCE_LOSSES:
            model, tok = fresh()
            pairs = pref_pairs()
            own = options(LOSSES.entry(loss).config())  # each loss takes its own keys only
            loss_cfg = {"name": loss, **{k: v for k, v in {"beta": 0.5, "lam": 0.8, "gamma": 0.5}.items() if k in own}}
            stats = pref.train_preference(model, tok, pairs, [p.prompt for p in pairs], loss_cfg, tc, out / loss,
                                          max_length=64, seed=0, device="cpu", layout=LAYOUT)
            res[loss] = {"losses": _losses(stats), "weights": _trainable(model)}

        model, tok = fresh()
        stats = train_quark(model, tok, quark_examples(), tc, out / "quark", kl_coef=0.1, entropy_coef=0.05,
                            max_length=64, seed=0, device="cpu", layout=LAYOUT)
        res["quark"] = {"losses": _losses(stats), "weights": _trainable(model)}
    finally:
        LossTrainer.compute_loss, pref._reference_forward, pref.attach_reference = \
            real_compute, real_forward, real_attach
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({**seen, "model_types": sorted(seen["model_types"])}))
    return res


def run_sft_stage(out: Path, root: Path) -> None:
    """stage=sft (with its rationalize upstream) through the CLI's run(), recording every artifact and
    manifest write of this rank in OUT/writes<r>.json."""
    from rationalign import models
    from rationalign.runner import compose
    from rationalign.runner import run as cli_run
    from rationalign.stages import base, sft

    writes: list[str] = []

    def recording(fn):
        def wrapped(path, *a, **k):
            writes.append(str(Path(path).resolve()))
            return fn(path, *a, **k)
        return wrapped

    base.atomic_write_json = recording(base.atomic_write_json)
    sft.atomic_write_json = recording(sft.atomic_write_json)
    real_save = models.save_model

    def save_model(model, tok, d, **k):
        writes.append(str(Path(d).resolve()))
        return real_save(model, tok, d, **k)

    models.save_model = save_model
    cli_run(compose(["stage=sft", "model=tiny", f"paths.root={root}", "model.lora.dropout=0",
                     "data.max_labeled_per_task=8", "sft.train.epochs=1", "sft.train.batch_size=2"]))
    (out / f"writes{os.environ.get('RANK', '0')}.json").write_text(json.dumps(writes))


def main() -> None:
    out, batch, grad_accum = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    res = run(out, batch, grad_accum)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save(res, out / "result.pt")
    if len(sys.argv) > 4:
        run_sft_stage(out, Path(sys.argv[4]))


if __name__ == "__main__":
    main()
