"""One optimiser and one learning-rate schedule across all QUARK rounds (MaRio's main_n_new.py).

MaRio builds Adam and a linear warmup/decay schedule once (`main_n_new.py:960-962`), steps them
every training step and samples a new round every `sample_interval` steps (`:304`, `:978`), so the
learning rate of round 5 continues where round 4 stopped. Each round here is one Trainer run of
`sample_interval` steps over the re-binned pool, handed the same optimizer and scheduler; their
state is saved after every round, so a resumed run continues the same schedule.

Presets (`conf/quark/schedule/<name>.yaml`) are a config group; `quark.schedule=<name>` on the
command line is read as the group choice `quark/schedule=<name>` (`group_overrides`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STATE = "optimizer.pt"


def group_overrides(overrides: Sequence[str]) -> list[str]:
    """`quark.schedule=mario` -> `quark/schedule=mario`: the preset is a config group, and Hydra only
    loads a group file for the `/` spelling (the `.` one would set the name alone)."""
    out = []
    for o in overrides:
        key, sep, val = o.partition("=")
        out.append(f"quark/schedule={val}" if sep and key == "quark.schedule" else o)
    return out


def total_steps(q: Any) -> int:
    return int(q.total_steps) if q.get("total_steps") is not None else int(q.rounds) * int(q.sample_interval)


def round_steps(q: Any) -> list[int]:
    """Optimizer steps trained in each round: sample_interval each, the last round the remainder."""
    rounds, interval, total = int(q.rounds), int(q.sample_interval), total_steps(q)
    if rounds < 1 or interval < 1:
        raise ValueError(f"quark.rounds={rounds}, quark.sample_interval={interval}: both must be >= 1")
    if not (rounds - 1) * interval < total <= rounds * interval:
        raise ValueError(f"quark.total_steps={total}: with quark.sample_interval={interval} that is "
                         f"{math.ceil(total / interval)} rounds, but quark.rounds={rounds}")
    if not 0 <= int(q.warmup_steps) < total:
        raise ValueError(f"quark.warmup_steps={q.warmup_steps}: expected 0 <= warmup_steps < total_steps={total}")
    return [interval] * (rounds - 1) + [total - (rounds - 1) * interval]


def build_optimizer(model, q: Any):
    """(AdamW, linear warmup + decay to 0 over total_steps). With quark.token_lr the control-token
    rows are their own group at that rate; the schedule scales both groups."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    lr, wd = float(q.train.lr), float(q.train.weight_decay)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if q.get("token_lr") is not None:
        rows = [p for n, p in named if "trainable_tokens" in n]
        if not rows:
            raise ValueError("quark.token_lr: the model has no trainable control-token rows (LoRA with "
                             "trainable_token_indices); leave token_lr null for full fine-tuning")
        groups = [{"params": rows, "lr": float(q.token_lr), "weight_decay": 0.0},
                  {"params": [p for n, p in named if "trainable_tokens" not in n], "lr": lr, "weight_decay": wd}]
    else:
        groups = [{"params": [p for _, p in named], "lr": lr, "weight_decay": wd}]
    opt = torch.optim.AdamW(groups)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=int(q.warmup_steps),
                                            num_training_steps=total_steps(q))
    return opt, sched


def param_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def save_state(path: Path, model, opt, sched) -> None:
    """Optimizer + scheduler state after a round, written atomically (temp file + rename)."""
    import os

    import torch

    path = Path(path)
    tmp = path.with_suffix(".tmp")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "params": param_names(model)}, tmp)
    os.replace(tmp, path)


def load_state(path: Path, model, opt, sched) -> None:
    """Restore the optimizer and schedule saved after a round; the trainable parameters must be the
    same, in the same order (the optimizer state is matched by position)."""
    import torch

    state = torch.load(Path(path), map_location="cpu", weights_only=False)
    names = param_names(model)
    if state["params"] != names:
        raise ValueError(f"{path}: saved for {len(state['params'])} trainable parameters, the resumed policy has "
                         f"{len(names)} (or another order); cannot continue the same schedule")
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
