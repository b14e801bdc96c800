"""Training losses as small pure functions, each registered with its typed options and what it needs.

Three registries (rationalign.registry.Registry, read-only mappings name -> function), because the
three kinds of loss take different inputs:

* ``LOSSES[name](batch: PreferenceLogps, **options) -> (loss, metrics)``: preference losses on
  sequence log-probs (dpo, cpo, simpo, orpo, mpo, rdpo, rorpo); the `loss=<name>` config group
  (conf/loss/<name>.yaml), trained by stage=align. E.g. ``LOSSES["mpo"](batch, beta=0.01, gamma=1.0, lam=0.8)``.
* ``REWARD_LOSSES[name](chosen_rewards, rejected_rewards) -> (loss, metrics)``: losses for training a
  scalar reward model (bt); `reward.loss.name`, stage=reward.
* ``TOKEN_LOSSES[name](token_logps, mask, **options) -> (loss, metrics)``: token-level losses (sft);
  `sft.loss.name`, stage=sft.

Each entry carries the dataclass of its options (``LOSSES.typed(cfg.loss)`` checks a config node
against it: unknown keys, types, ranges) and declares what its inputs need
(``LOSSES.entry(name).needs_reference`` / ``.needs_rewards`` / ``.needs_rationale``); the trainers read
both from here and nowhere else. A dataclass's fields are exactly its function's keyword options
(tests/test_losses.py), so every option reaches the maths. Every returned loss is the batch mean
(a scalar that carries gradients); every metric is a detached scalar batch mean.

Notation (sigma = sigmoid, lp = sum of completion-token log-probs, avg = lp / length, w = chosen,
l = rejected): nll_w = -avg_w with ``ce_reduction="mean"`` (default, per-token mean) and -lp_w with
``ce_reduction="sum"`` (the paper's literal sequence form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from rationalign.checked import checked
from rationalign.registry import Registry

__all__ = [
    "LOSSES",
    "REWARD_LOSSES",
    "TOKEN_LOSSES",
    "BTConfig",
    "CPOConfig",
    "DPOConfig",
    "MPOConfig",
    "ORPOConfig",
    "PreferenceLogps",
    "RDPOConfig",
    "RORPOConfig",
    "SFTLossConfig",
    "SimPOConfig",
    "bradley_terry_loss",
    "cpo_loss",
    "dpo_loss",
    "log1mexp",
    "mpo_loss",
    "options",
    "orpo_loss",
    "rdpo_loss",
    "rorpo_loss",
    "sft_loss",
    "simpo_loss",
]

LossOutput = tuple[Tensor, dict[str, Tensor]]


@dataclass
class PreferenceLogps:
    """Sequence-level log-probs of a batch of preference pairs; every tensor has shape [B]."""

    chosen_logps: Tensor  # sum over completion tokens of log pi(y_w | x)
    rejected_logps: Tensor
    chosen_lengths: Tensor  # number of completion tokens
    rejected_lengths: Tensor
    ref_chosen_logps: Tensor | None = None
    ref_rejected_logps: Tensor | None = None
    reward_chosen: Tensor | None = None  # r_w from the reward model
    reward_rejected: Tensor | None = None  # r_l
    rationale_logps: Tensor | None = None  # sum log pi(r | x, y_w > y_l)
    rationale_lengths: Tensor | None = None

    def __post_init__(self) -> None:
        shape = self.chosen_logps.shape
        if len(shape) != 1:
            raise ValueError(f"PreferenceLogps.chosen_logps must have shape [B], got {tuple(shape)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value.shape != shape:
                raise ValueError(
                    f"PreferenceLogps.{f.name} has shape {tuple(value.shape)}, expected {tuple(shape)} "
                    "like chosen_logps"
                )


# --------------------------------------------------------------------------------------------------
# Registries and each loss's options (defaults = the function's defaults = conf/loss/<name>.yaml)
# --------------------------------------------------------------------------------------------------
LOSSES: Registry = Registry("loss", group="loss")
REWARD_LOSSES: Registry = Registry("reward loss")  # reward.loss.name
TOKEN_LOSSES: Registry = Registry("token loss")  # sft.loss.name

_REDUCTION = ("mean", "sum")


@dataclass
class DPOConfig:
    beta: float = checked(0.1, gt=0)


@dataclass
class CPOConfig:
    lam: float = checked(1.0, ge=0)  # weight of the NLL term
    beta: float = checked(0.1, gt=0)
    ce_reduction: str = checked("mean", choices=_REDUCTION)


@dataclass
class SimPOConfig:
    lam: float = checked(0.0, ge=0)  # > 0: CPO-SimPO
    beta: float = checked(2.0, gt=0)
    gamma: float = checked(0.5, ge=0)  # the absolute target margin (TRL simpo_gamma)
    ce_reduction: str = checked("mean", choices=_REDUCTION)


@dataclass
class ORPOConfig:
    lam: float = checked(0.1, ge=0)  # weight of the odds-ratio term (TRL ORPOConfig.beta)
    ce_reduction: str = checked("mean", choices=_REDUCTION)


@dataclass
class MPOConfig:
    lam: float = checked(0.8, ge=0)  # weight of the margin term
    beta: float = checked(0.01, gt=0)
    gamma: float = checked(1.0, ge=0)  # weight of the reward margin r_w - r_l
    ce_reduction: str = checked("mean", choices=_REDUCTION)
    margin_scale: str = checked("inside", choices=("inside", "outside"))  # inside: Eq. 1c | outside: talk slides


@dataclass
class RDPOConfig:
    beta: float = checked(0.1, gt=0)
    gamma: float = checked(2.0, ge=0)  # weight of the rationale log-prob
    rationale_reduction: str = checked("mean", choices=_REDUCTION)


@dataclass
class RORPOConfig:
    lam: float = checked(0.1, ge=0)
    gamma: float = checked(10.0, ge=0)  # weight of the rationale log-prob
    ce_reduction: str = checked("mean", choices=_REDUCTION)
    rationale_reduction: str = checked("mean", choices=_REDUCTION)


@dataclass
class BTConfig:
    """No options: the optional per-pair margin comes from the data, not the config."""


@dataclass
class SFTLossConfig:
    # mean: over all completion tokens of the batch (HF CrossEntropyLoss) | sequence_mean: mean of
    # per-sequence token means | sum: per-sequence summed NLL, batch mean
    reduction: str = checked("mean", choices=("mean", "sequence_mean", "sum"))


def options(typed) -> dict:
    """A typed options dataclass as the keyword arguments of its loss, in field order."""
    return {f.name: getattr(typed, f.name) for f in fields(typed)} if typed is not None else {}


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _require(batch: PreferenceLogps, loss: str, *names: str) -> None:
    missing = [n for n in names if getattr(batch, n) is None]
    if missing:
        raise ValueError(f"loss {loss!r} needs PreferenceLogps.{', '.join(missing)}, which is None")


def _check_choice(loss: str, option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"loss {loss!r}: {option}={value!r} is not one of {list(choices)}")


def _per_token(logps: Tensor, lengths: Tensor) -> Tensor:
    # Length 0 would be a data error upstream; clamping keeps the division finite (lp is 0 there too).
    return logps / lengths.to(logps.dtype).clamp(min=1)


def _reduce(logps: Tensor, lengths: Tensor | None, reduction: str, loss: str, option: str) -> Tensor:
    _check_choice(loss, option, reduction, ("mean", "sum"))
    return logps if reduction == "sum" else _per_token(logps, lengths)


def _nll_w(batch: PreferenceLogps, ce_reduction: str, loss: str) -> Tensor:
    """Per-example NLL of the chosen completion: -lp_w / len_w ("mean") or -lp_w ("sum")."""
    return -_reduce(batch.chosen_logps, batch.chosen_lengths, ce_reduction, loss, "ce_reduction")


def _rationale_term(batch: PreferenceLogps, rationale_reduction: str, loss: str) -> Tensor:
    """log pi(r | x, y_w > y_l), per token ("mean") or summed ("sum")."""
    _require(batch, loss, "rationale_logps")
    if rationale_reduction == "mean":
        _require(batch, loss, "rationale_lengths")
    return _reduce(batch.rationale_logps, batch.rationale_lengths, rationale_reduction, loss, "rationale_reduction")


def _metrics(batch: PreferenceLogps, chosen_rewards: Tensor, rejected_rewards: Tensor, **terms: Tensor):
    chosen_rewards, rejected_rewards = chosen_rewards.detach(), rejected_rewards.detach()
    out = {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).to(chosen_rewards.dtype).mean(),
        "logps/chosen": batch.chosen_logps.detach().mean(),
        "logps/rejected": batch.rejected_logps.detach().mean(),
    }
    out.update({k: v.detach().mean() for k, v in terms.items()})
    return out


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler 2012), finite gradients everywhere.

    x is clamped to <= -eps so that x == 0 (probability 1, infinite odds) stays finite. Each branch is
    evaluated only on inputs in its own domain so the unused branch of ``where`` cannot leak NaN grads.
    """
    x = x.clamp(max=-torch.finfo(x.dtype).eps)
    t = -math.log(2.0)
    near_zero = x > t
    a = torch.log(-torch.expm1(torch.where(near_zero, x, torch.full_like(x, t))))
    b = torch.log1p(-torch.exp(torch.where(near_zero, torch.full_like(x, t), x)))
    return torch.where(near_zero, a, b)


def _orpo_terms(batch: PreferenceLogps, lam: float, ce_reduction: str, loss: str):
    avg_w = _per_token(batch.chosen_logps, batch.chosen_lengths)
    avg_l = _per_token(batch.rejected_logps, batch.rejected_lengths)
    # log_odds(a) = a - log(1 - exp(a)); the odds-ratio term is log sigma(log_odds(avg_w) - log_odds(avg_l))
    log_odds_ratio = (avg_w - avg_l) - (log1mexp(avg_w) - log1mexp(avg_l))
    ratio = F.logsigmoid(log_odds_ratio)
    nll = _nll_w(batch, ce_reduction, loss)
    losses = nll - lam * ratio
    return losses, avg_w, avg_l, nll, ratio, log_odds_ratio


# --------------------------------------------------------------------------------------------------
# Preference losses
# --------------------------------------------------------------------------------------------------
def dpo_loss(batch: PreferenceLogps, *, beta: float = 0.1) -> LossOutput:
    """DPO (Rafailov et al. 2023, Eq. 7): -log sigma(beta * ((lp_w - ref_w) - (lp_l - ref_l)))."""
    _require(batch, "dpo", "ref_chosen_logps", "ref_rejected_logps")
    chosen = beta * (batch.chosen_logps - batch.ref_chosen_logps)
    rejected = beta * (batch.rejected_logps - batch.ref_rejected_logps)
    losses = -F.logsigmoid(chosen - rejected)
    return losses.mean(), _metrics(batch, chosen, rejected, preference_loss=losses)


def cpo_loss(batch: PreferenceLogps, *, beta: float = 0.1, lam: float = 1.0, ce_reduction: str = "mean") -> LossOutput:
    """CPO (Xu et al. 2024, Eq. 3 + NLL): -log sigma(beta * (lp_w - lp_l)) + lam * nll_w."""
    chosen, rejected = beta * batch.chosen_logps, beta * batch.rejected_logps
    preference = -F.logsigmoid(chosen - rejected)
    nll = _nll_w(batch, ce_reduction, "cpo")
    losses = preference + lam * nll
    return losses.mean(), _metrics(batch, chosen, rejected, preference_loss=preference, nll=nll)


def simpo_loss(
    batch: PreferenceLogps, *, beta: float = 2.0, gamma: float = 0.5, lam: float = 0.0, ce_reduction: str = "mean"
) -> LossOutput:
    """SimPO (Meng et al. 2024, Eq. 6): -log sigma(beta * (avg_w - avg_l) - gamma) (+ lam * nll_w, CPO-SimPO)."""
    chosen = beta * _per_token(batch.chosen_logps, batch.chosen_lengths)
    rejected = beta * _per_token(batch.rejected_logps, batch.rejected_lengths)
    preference = -F.logsigmoid(chosen - rejected - gamma)
    nll = _nll_w(batch, ce_reduction, "simpo")
    losses = preference + lam * nll if lam else preference
    return losses.mean(), _metrics(batch, chosen, rejected, preference_loss=preference, nll=nll)


def orpo_loss(batch: PreferenceLogps, *, lam: float = 0.1, ce_reduction: str = "mean") -> LossOutput:
    """ORPO (Hong et al. 2024, Eq. 6-7): nll_w - lam * log sigma(log_odds(avg_w) - log_odds(avg_l))."""
    losses, avg_w, avg_l, nll, ratio, lor = _orpo_terms(batch, lam, ce_reduction, "orpo")
    return losses.mean(), _metrics(batch, lam * avg_w, lam * avg_l, nll=nll, log_odds_ratio=lor, or_loss=-ratio)


def mpo_loss(
    batch: PreferenceLogps,
    *,
    beta: float = 0.01,
    gamma: float = 1.0,
    lam: float = 0.8,
    ce_reduction: str = "mean",
    margin_scale: str = "inside",
) -> LossOutput:
    """MPO (Cao et al. 2025, Eq. 1c + Eq. 2): lam * -log sigma(beta * (lp_w - lp_l - gamma * (r_w - r_l))) + nll_w.

    ``margin_scale="outside"`` reads the reward margin outside beta (talk slides):
    -log sigma(beta * (lp_w - lp_l) - gamma * (r_w - r_l)).
    """
    _require(batch, "mpo", "reward_chosen", "reward_rejected")
    _check_choice("mpo", "margin_scale", margin_scale, ("inside", "outside"))
    chosen, rejected = beta * batch.chosen_logps, beta * batch.rejected_logps
    reward_margin = gamma * (batch.reward_chosen - batch.reward_rejected)
    target = beta * reward_margin if margin_scale == "inside" else reward_margin
    margin_loss = -F.logsigmoid(chosen - rejected - target)
    nll = _nll_w(batch, ce_reduction, "mpo")
    losses = lam * margin_loss + nll
    return losses.mean(), _metrics(batch, chosen, rejected, margin_loss=margin_loss, nll=nll, target_margin=target)


def rdpo_loss(
    batch: PreferenceLogps, *, beta: float = 0.1, gamma: float = 2.0, rationale_reduction: str = "mean"
) -> LossOutput:
    """RDPO (Just et al. 2024; Cao et al. 2025 Eq. 4): dpo - gamma * log pi(r | x, y_w > y_l) (per token by default)."""
    _require(batch, "rdpo", "ref_chosen_logps", "ref_rejected_logps")
    rationale = _rationale_term(batch, rationale_reduction, "rdpo")
    chosen = beta * (batch.chosen_logps - batch.ref_chosen_logps)
    rejected = beta * (batch.rejected_logps - batch.ref_rejected_logps)
    preference = -F.logsigmoid(chosen - rejected)
    losses = preference - gamma * rationale
    return losses.mean(), _metrics(batch, chosen, rejected, preference_loss=preference, rationale_nll=-rationale)


def rorpo_loss(
    batch: PreferenceLogps,
    *,
    lam: float = 0.1,
    gamma: float = 10.0,
    ce_reduction: str = "mean",
    rationale_reduction: str = "mean",
) -> LossOutput:
    """RORPO (Just et al. 2024): orpo - gamma * log pi(r | x, y_w > y_l) (per token by default)."""
    rationale = _rationale_term(batch, rationale_reduction, "rorpo")
    base, avg_w, avg_l, nll, ratio, lor = _orpo_terms(batch, lam, ce_reduction, "rorpo")
    losses = base - gamma * rationale
    metrics = _metrics(
        batch, lam * avg_w, lam * avg_l, nll=nll, log_odds_ratio=lor, or_loss=-ratio, rationale_nll=-rationale
    )
    return losses.mean(), metrics


# --------------------------------------------------------------------------------------------------
# Reward-model and token-level losses
# --------------------------------------------------------------------------------------------------
def bradley_terry_loss(
    chosen_rewards: Tensor, rejected_rewards: Tensor, margin: Tensor | float | None = None
) -> LossOutput:
    """Bradley-Terry reward-model loss (Cao et al. 2025 Sec. 3.2; Ouyang et al. 2022 Eq. 1):
    -log sigma(r(x, y_p) - r(x, y_n) - margin), margin optional (Llama-2 style)."""
    if chosen_rewards.shape != rejected_rewards.shape:
        raise ValueError(
            f"bt: chosen_rewards {tuple(chosen_rewards.shape)} and rejected_rewards "
            f"{tuple(rejected_rewards.shape)} differ in shape"
        )
    diff = chosen_rewards - rejected_rewards
    losses = -F.logsigmoid(diff if margin is None else diff - margin)
    c, r = chosen_rewards.detach(), rejected_rewards.detach()
    metrics = {
        "rewards/chosen": c.mean(),
        "rewards/rejected": r.mean(),
        "rewards/margins": (c - r).mean(),
        "rewards/accuracies": (c > r).to(c.dtype).mean(),
    }
    return losses.mean(), metrics


def sft_loss(token_logps: Tensor, mask: Tensor, reduction: str = "mean", *,
             num_items: Tensor | int | None = None) -> LossOutput:
    """Cross-entropy on completion tokens, from per-token log-probs [B, T] and a 0/1 mask [B, T].

    reduction: "mean" = mean over all completion tokens in the batch (HF ``CrossEntropyLoss`` with
    ignore_index), "sequence_mean" = mean over sequences of each sequence's token mean (the nll_w of the
    preference losses), "sum" = mean over sequences of each sequence's summed NLL.
    num_items ("mean" only): divide the summed NLL by this token count instead of the batch's (the
    Trainer's num_items_in_batch: every token of a gradient-accumulated step weighs the same).
    """
    _check_choice("sft", "reduction", reduction, ("mean", "sequence_mean", "sum"))
    if token_logps.shape != mask.shape:
        raise ValueError(f"sft: token_logps {tuple(token_logps.shape)} and mask {tuple(mask.shape)} differ in shape")
    keep = mask.bool()
    # where, not multiply: masked positions (prompt, padding) may hold -inf or NaN, and 0 * inf = NaN.
    seq_nll = -torch.where(keep, token_logps, torch.zeros_like(token_logps)).sum(dim=-1)
    n_tokens = keep.sum(dim=-1).to(token_logps.dtype)
    if num_items is not None and reduction != "mean":
        raise ValueError(f"sft: num_items applies to reduction='mean' only, not {reduction!r}")
    if reduction == "mean":
        denom = n_tokens.sum().clamp(min=1) if num_items is None else num_items
        loss = seq_nll.sum() / (denom.to(seq_nll.device) if isinstance(denom, Tensor) else denom)
    elif reduction == "sequence_mean":
        loss = (seq_nll / n_tokens.clamp(min=1)).mean()
    else:
        loss = seq_nll.mean()
    metrics = {"nll": loss.detach(), "tokens": n_tokens.sum().detach()}
    return loss, metrics


# --------------------------------------------------------------------------------------------------
# Registration: by call rather than by decorator, so that mutation testing (make mutation; mutmut
# skips decorated functions) reaches the losses. needs_reference: reference log-probs (pi_ref) per
# pair; needs_rewards: r_w, r_l from the reward model; needs_rationale: the preference rationale r.
# --------------------------------------------------------------------------------------------------
_NEEDS = {"needs_reference": False, "needs_rewards": False, "needs_rationale": False}
LOSSES.add("dpo", dpo_loss, config=DPOConfig, **{**_NEEDS, "needs_reference": True})
LOSSES.add("cpo", cpo_loss, config=CPOConfig, **_NEEDS)
LOSSES.add("simpo", simpo_loss, config=SimPOConfig, **_NEEDS)
LOSSES.add("orpo", orpo_loss, config=ORPOConfig, **_NEEDS)
LOSSES.add("mpo", mpo_loss, config=MPOConfig, **{**_NEEDS, "needs_rewards": True})
LOSSES.add("rdpo", rdpo_loss, config=RDPOConfig, **{**_NEEDS, "needs_reference": True, "needs_rationale": True})
LOSSES.add("rorpo", rorpo_loss, config=RORPOConfig, **{**_NEEDS, "needs_rationale": True})
REWARD_LOSSES.add("bt", bradley_terry_loss, config=BTConfig)
TOKEN_LOSSES.add("sft", sft_loss, config=SFTLossConfig)
