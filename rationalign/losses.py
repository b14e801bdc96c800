"""Training losses as small pure functions (contract: see DESIGN.md, "Contracts" -> Losses).

Three registries, because the three kinds of loss take different inputs:

* ``LOSSES[name](batch: PreferenceLogps, **hparams) -> (loss, metrics)``: preference losses on
  sequence log-probs (dpo, cpo, simpo, orpo, mpo, rdpo, rorpo).
* ``REWARD_LOSSES[name](chosen_rewards, rejected_rewards, **hparams) -> (loss, metrics)``: losses for
  training a scalar reward model (bt).
* ``TOKEN_LOSSES[name](token_logps, mask, **hparams) -> (loss, metrics)``: token-level losses (sft).

``LOSS_KINDS[name]`` says which of the three a name belongs to ("preference" | "reward" | "token");
``get_loss(name)`` looks a name up in all three. Every returned loss is the batch mean (a scalar that
carries gradients); every metric is a detached scalar batch mean.

Notation (sigma = sigmoid, lp = sum of completion-token log-probs, avg = lp / length, w = chosen,
l = rejected): nll_w = -avg_w with ``ce_reduction="mean"`` (default, per-token mean) and -lp_w with
``ce_reduction="sum"`` (the paper's literal sequence form).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOSSES",
    "LOSS_KINDS",
    "LOSS_META_KEYS",
    "REWARD_LOSSES",
    "TOKEN_LOSSES",
    "PreferenceLogps",
    "bradley_terry_loss",
    "cpo_loss",
    "dpo_loss",
    "get_loss",
    "log1mexp",
    "loss_hparams",
    "mpo_loss",
    "orpo_loss",
    "rdpo_loss",
    "register_loss",
    "register_reward_loss",
    "register_token_loss",
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
# Registries
# --------------------------------------------------------------------------------------------------
LOSSES: dict[str, Callable[..., LossOutput]] = {}
REWARD_LOSSES: dict[str, Callable[..., LossOutput]] = {}
TOKEN_LOSSES: dict[str, Callable[..., LossOutput]] = {}
LOSS_KINDS: dict[str, str] = {}

# Keys of a conf/loss/*.yaml that describe the loss rather than parameterise it.
LOSS_META_KEYS = frozenset({"name", "kind", "needs_reference"})


def _registrar(registry: dict[str, Callable[..., LossOutput]], kind: str):
    def register(name: str):
        def decorator(fn: Callable[..., LossOutput]) -> Callable[..., LossOutput]:
            if name in LOSS_KINDS:
                raise ValueError(f"loss {name!r} is already registered (as a {LOSS_KINDS[name]} loss)")
            registry[name] = fn
            LOSS_KINDS[name] = kind
            return fn

        return decorator

    return register


register_loss = _registrar(LOSSES, "preference")
register_reward_loss = _registrar(REWARD_LOSSES, "reward")
register_token_loss = _registrar(TOKEN_LOSSES, "token")


def get_loss(name: str) -> Callable[..., LossOutput]:
    """The loss function registered under ``name`` in any of the three registries."""
    for registry in (LOSSES, REWARD_LOSSES, TOKEN_LOSSES):
        if name in registry:
            return registry[name]
    raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSS_KINDS)}")


def loss_hparams(cfg) -> dict:
    """The keyword hyper-parameters in a loss config mapping (drops name/kind/needs_reference)."""
    return {k: v for k, v in dict(cfg).items() if k not in LOSS_META_KEYS}


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


def sft_loss(token_logps: Tensor, mask: Tensor, reduction: str = "mean") -> LossOutput:
    """Cross-entropy on completion tokens, from per-token log-probs [B, T] and a 0/1 mask [B, T].

    reduction: "mean" = mean over all completion tokens in the batch (HF ``CrossEntropyLoss`` with
    ignore_index), "sequence_mean" = mean over sequences of each sequence's token mean (the nll_w of the
    preference losses), "sum" = mean over sequences of each sequence's summed NLL.
    """
    _check_choice("sft", "reduction", reduction, ("mean", "sequence_mean", "sum"))
    if token_logps.shape != mask.shape:
        raise ValueError(f"sft: token_logps {tuple(token_logps.shape)} and mask {tuple(mask.shape)} differ in shape")
    keep = mask.bool()
    # where, not multiply: masked positions (prompt, padding) may hold -inf or NaN, and 0 * inf = NaN.
    seq_nll = -torch.where(keep, token_logps, torch.zeros_like(token_logps)).sum(dim=-1)
    n_tokens = keep.sum(dim=-1).to(token_logps.dtype)
    if reduction == "mean":
        loss = seq_nll.sum() / n_tokens.sum().clamp(min=1)
    elif reduction == "sequence_mean":
        loss = (seq_nll / n_tokens.clamp(min=1)).mean()
    else:
        loss = seq_nll.mean()
    metrics = {"nll": loss.detach(), "tokens": n_tokens.sum().detach()}
    return loss, metrics


# --------------------------------------------------------------------------------------------------
# Registration: by call rather than by decorator, so that mutation testing (make mutation; mutmut
# skips decorated functions) reaches the losses. Same registries, same names, same order.
# --------------------------------------------------------------------------------------------------
register_loss("dpo")(dpo_loss)
register_loss("cpo")(cpo_loss)
register_loss("simpo")(simpo_loss)
register_loss("orpo")(orpo_loss)
register_loss("mpo")(mpo_loss)
register_loss("rdpo")(rdpo_loss)
register_loss("rorpo")(rorpo_loss)
register_reward_loss("bt")(bradley_terry_loss)
register_token_loss("sft")(sft_loss)
