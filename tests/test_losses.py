"""Tests for rationalign.losses.

Oracles:
* dpo, cpo, simpo, orpo, bt are compared with TRL 1.16's own loss code on the same float64 inputs
  (values and input gradients). The TRL trainers are created with ``object.__new__`` (no model, no
  dataset) and given only the attributes their loss code reads; the model is a stub that returns fixed
  tensors, so TRL's real ``_compute_loss`` / ``cpo_loss`` / ``odds_ratio_loss`` /
  ``get_batch_loss_metrics`` / ``compute_loss`` code runs unchanged.
* mpo, rdpo, rorpo are compared with a scalar transcription of their equations in plain ``math``.
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml

from rationalign.losses import (
    LOSSES,
    REWARD_LOSSES,
    TOKEN_LOSSES,
    PreferenceLogps,
    bradley_terry_loss,
    log1mexp,
    options,
    sft_loss,
)

trl = pytest.importorskip("trl")
from trl import DPOTrainer, RewardTrainer
from trl.experimental.cpo import CPOTrainer
from trl.experimental.orpo import ORPOTrainer

CONF = Path(__file__).resolve().parents[1] / "conf" / "loss"
DT = torch.float64
B = 8


# --------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------
def make_batch(seed: int = 0, *, grad: bool = True, **overrides) -> PreferenceLogps:
    g = torch.Generator().manual_seed(seed)

    def rnd(lo, hi):
        return lo + (hi - lo) * torch.rand(B, generator=g, dtype=DT)

    chosen_len = torch.randint(1, 20, (B,), generator=g)
    rejected_len = torch.randint(1, 20, (B,), generator=g)
    rationale_len = torch.randint(5, 40, (B,), generator=g)
    fields = {
        "chosen_logps": rnd(-3.0, -0.01) * chosen_len,  # avg logps in [-3, -0.01]
        "rejected_logps": rnd(-3.0, -0.01) * rejected_len,
        "chosen_lengths": chosen_len,
        "rejected_lengths": rejected_len,
        "ref_chosen_logps": rnd(-3.0, -0.01) * chosen_len,
        "ref_rejected_logps": rnd(-3.0, -0.01) * rejected_len,
        "reward_chosen": rnd(0.0, 3.0),
        "reward_rejected": rnd(-3.0, 1.0),
        "rationale_logps": rnd(-2.0, -0.05) * rationale_len,
        "rationale_lengths": rationale_len,
    }
    fields.update(overrides)
    if grad:
        for k in ("chosen_logps", "rejected_logps", "rationale_logps"):
            if fields[k] is not None:
                fields[k] = fields[k].clone().requires_grad_(True)
    return PreferenceLogps(**fields)


def grads(loss, batch, names=("chosen_logps", "rejected_logps")):
    return torch.autograd.grad(loss, [getattr(batch, n) for n in names], allow_unused=True)


def assert_close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=DT), torch.as_tensor(b, dtype=DT), atol=tol, rtol=0)


ACCEL = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)


def bare(cls, **attrs):
    obj = object.__new__(cls)
    obj.__dict__.update(attrs)
    return obj


# --------------------------------------------------------------------------------------------------
# TRL oracles
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_dpo_matches_trl(beta):
    batch = make_batch(1)
    ours, metrics = LOSSES["dpo"](batch, beta=beta)

    # TRL's DPOTrainer._compute_loss with precomputed reference logps. The stub model returns per-token
    # log-probs [2B, T] whose row sums are our sequence logps (first column), so TRL's own sum,
    # log-ratio, loss and metric code runs on exactly our inputs and gradients flow back to them.
    T = 3
    logps = torch.cat([batch.chosen_logps, batch.rejected_logps])
    per_token = torch.cat([logps[:, None], torch.zeros(2 * B, T - 1, dtype=DT)], dim=1)
    stub = SimpleNamespace(
        log_probs=per_token,
        entropy=torch.zeros(2 * B, T, dtype=DT),
        mean_logits=torch.zeros(2 * B, T, dtype=DT),
        is_top1=torch.zeros(2 * B, T, dtype=torch.bool),
    )
    model = lambda **kw: stub
    model.training = True
    trainer = bare(
        DPOTrainer, model=model, accelerator=ACCEL, aux_loss_enabled=False, ld_alpha=None,
        precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"],
        loss_weights=[1.0], beta=beta, use_weighting=False, _total_train_tokens=0, _tp_size=1,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )  # fmt: skip
    inputs = {
        "input_ids": torch.ones(2 * B, T + 1, dtype=torch.long),
        "attention_mask": torch.ones(2 * B, T + 1, dtype=torch.long),
        "completion_mask": torch.ones(2 * B, T + 1, dtype=torch.long),
        "ref_chosen_logps": batch.ref_chosen_logps,
        "ref_rejected_logps": batch.ref_rejected_logps,
    }
    theirs = trainer._compute_loss(model, inputs, return_outputs=False)

    assert_close(ours, theirs)
    for g_ours, g_theirs in zip(grads(ours, batch), grads(theirs, batch)):
        assert_close(g_ours, g_theirs)
    trl_metrics = trainer._metrics["train"]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen"):
        assert_close(metrics[key], trl_metrics[key][-1])


def cpo_trainer(loss_type, beta, lam, simpo_gamma=0.5):
    return bare(
        CPOTrainer, accelerator=ACCEL, alpha=0.0, loss_type=loss_type, beta=beta, simpo_gamma=simpo_gamma,
        label_smoothing=0.0, cpo_alpha=lam, is_encoder_decoder=False, pad_token_id=0, aux_loss_enabled=False,
    )  # fmt: skip


@pytest.mark.parametrize("beta", [0.01, 0.1])
def test_cpo_preference_term_matches_trl(beta):
    # TRL's cpo_loss returns only the sigmoid term; its NLL is added in get_batch_loss_metrics (tested below).
    batch = make_batch(2)
    ours, metrics = LOSSES["cpo"](batch, beta=beta, lam=0.0)
    losses, chosen_r, rejected_r = cpo_trainer("sigmoid", beta, 0.0).cpo_loss(batch.chosen_logps, batch.rejected_logps)
    theirs = losses.mean()
    assert_close(ours, theirs)
    for a, b in zip(grads(ours, batch), grads(theirs, batch)):
        assert_close(a, b)
    assert_close(metrics["rewards/chosen"], chosen_r.mean())
    assert_close(metrics["rewards/margins"], (chosen_r - rejected_r).mean())


@pytest.mark.parametrize(("beta", "gamma"), [(2.0, 0.5), (2.5, 1.6), (2.0, 0.3)])
def test_simpo_matches_trl(beta, gamma):
    # TRL's SimPO is CPO with loss_type="simpo": it subtracts simpo_gamma / beta inside beta * (.), i.e.
    # an absolute margin gamma, and is fed per-token *average* logps (average_log_prob=True).
    batch = make_batch(3)
    ours, metrics = LOSSES["simpo"](batch, beta=beta, gamma=gamma, lam=0.0)
    avg_w = batch.chosen_logps / batch.chosen_lengths
    avg_l = batch.rejected_logps / batch.rejected_lengths
    losses, chosen_r, _ = cpo_trainer("simpo", beta, 0.0, simpo_gamma=gamma).cpo_loss(avg_w, avg_l)
    theirs = losses.mean()
    assert_close(ours, theirs)
    for a, b in zip(grads(ours, batch), grads(theirs, batch)):
        assert_close(a, b)
    assert_close(metrics["rewards/chosen"], chosen_r.mean())


@pytest.mark.parametrize("lam", [0.1, 0.5])
def test_orpo_odds_ratio_term_matches_trl(lam):
    # TRL's odds_ratio_loss returns lam * log sigma(log-odds ratio); the full loss is nll - mean(that).
    # TRL casts logps to float32 inside (``.float()``), so agreement is to float32 precision (~1e-7).
    batch = make_batch(4)
    avg_w = batch.chosen_logps / batch.chosen_lengths
    avg_l = batch.rejected_logps / batch.rejected_lengths
    trainer = bare(ORPOTrainer, accelerator=ACCEL, beta=lam)
    losses, chosen_r, rejected_r, _ratio, log_odds = trainer.odds_ratio_loss(avg_w, avg_l)
    nll = -(avg_w).mean()
    theirs = nll - losses.mean()
    ours, metrics = LOSSES["orpo"](batch, lam=lam)
    assert_close(ours, theirs)
    for a, b in zip(grads(ours, batch), grads(theirs, batch)):
        assert_close(a, b)
    assert_close(metrics["log_odds_ratio"], log_odds)
    assert_close(metrics["rewards/chosen"], chosen_r.mean())
    assert_close(metrics["rewards/accuracies"], (chosen_r > rejected_r).double().mean())


def _token_batch(seed, chosen_lens, rejected_lens, prompt_len=1, T=12, V=11):
    """Random logits plus TRL-style chosen/rejected input_ids, attention masks and labels (-100 = ignored)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2 * B, T, V, generator=g, dtype=DT).requires_grad_(True)
    batch = {}
    for i, (side, lens) in enumerate((("chosen", chosen_lens), ("rejected", rejected_lens))):
        ids = torch.randint(1, V, (B, T), generator=g)
        attn = torch.zeros(B, T, dtype=torch.long)
        labels = torch.full((B, T), -100)
        for b, n in enumerate(lens):
            attn[b, : prompt_len + n] = 1
            labels[b, prompt_len : prompt_len + n] = ids[b, prompt_len : prompt_len + n]
        batch.update({f"{side}_input_ids": ids, f"{side}_attention_mask": attn, f"{side}_labels": labels})
    return logits, batch


def _our_logps(logits, batch):
    """Per-token logps of the labels (next-token shift) and their completion mask, chosen rows first."""
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])[:, 1:]
    mask = labels != -100
    per_token = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return per_token, mask


def _prefs_from_logits(logits, batch):
    per_token, mask = _our_logps(logits, batch)
    lp = torch.where(mask, per_token, 0.0).sum(-1)
    n = mask.sum(-1)
    return PreferenceLogps(lp[:B], lp[B:], n[:B], n[B:]), per_token, mask


@pytest.mark.parametrize("loss_type", ["sigmoid", "simpo"])
def test_cpo_full_loss_matches_trl_end_to_end(loss_type):
    # Whole TRL CPO path (get_batch_loss_metrics: logps from logits, cpo_loss, + cpo_alpha * NLL) against
    # ours computed from the same logits; gradients are compared w.r.t. the logits.
    # Convention: TRL's NLL is nn.CrossEntropyLoss over all chosen completion tokens of the batch
    # (token-weighted), ours is the mean of per-sequence token means. They coincide when every chosen
    # completion has the same length (used here); with unequal lengths TRL's NLL equals
    # sft_loss(reduction="mean") instead (checked below).
    beta, lam, gamma = (0.1, 1.0, 0.0) if loss_type == "sigmoid" else (2.0, 0.7, 0.5)
    logits, tb = _token_batch(5, chosen_lens=[6] * B, rejected_lens=[3, 9, 4, 10, 5, 7, 2, 8], prompt_len=2)
    trainer = cpo_trainer(loss_type, beta, lam, simpo_gamma=gamma)
    stub = lambda *a, **kw: SimpleNamespace(logits=logits)
    theirs, trl_metrics = trainer.get_batch_loss_metrics(stub, tb)
    prefs, _, _ = _prefs_from_logits(logits, tb)
    kw = {"beta": beta, "lam": lam} if loss_type == "sigmoid" else {"beta": beta, "gamma": gamma, "lam": lam}
    ours, metrics = LOSSES["cpo" if loss_type == "sigmoid" else "simpo"](prefs, **kw)
    assert_close(ours, theirs)
    (g_theirs,) = torch.autograd.grad(theirs, logits, retain_graph=True)
    (g_ours,) = torch.autograd.grad(ours, logits)
    assert_close(g_ours, g_theirs)
    assert_close(metrics["nll"], trl_metrics["nll_loss"])
    assert_close(metrics["rewards/margins"], trl_metrics["rewards/margins"])


def test_trl_cpo_nll_is_token_mean_ce_equal_to_sft_loss_mean():
    logits, tb = _token_batch(6, chosen_lens=[1, 9, 4, 10, 5, 7, 2, 8], rejected_lens=[3] * B, prompt_len=2)
    trainer = cpo_trainer("sigmoid", 0.1, 1.0)
    stub = lambda *a, **kw: SimpleNamespace(logits=logits)
    *_, trl_nll = trainer.concatenated_forward(stub, tb)
    per_token, mask = _our_logps(logits, tb)
    assert_close(sft_loss(per_token[:B], mask[:B], reduction="mean")[0], trl_nll)
    # ...and differs from the per-sequence mean used as nll_w when chosen lengths differ.
    seq_mean = sft_loss(per_token[:B], mask[:B], reduction="sequence_mean")[0]
    assert abs(seq_mean.item() - trl_nll.item()) > 1e-3


def test_orpo_full_loss_matches_trl_end_to_end():
    # Whole TRL ORPO path. Convention: TRL's ORPO NLL uses every attended token after the first (labels =
    # input_ids where attention_mask == 1), i.e. it includes prompt tokens; ours is completion-only. With
    # a one-token prompt (which the next-token shift drops) and equal chosen lengths the two coincide.
    lam = 0.1
    logits, tb = _token_batch(7, chosen_lens=[8] * B, rejected_lens=[3, 9, 4, 10, 5, 7, 2, 8], prompt_len=1)
    trainer = bare(ORPOTrainer, accelerator=ACCEL, beta=lam, is_encoder_decoder=False, padding_value=0,
                   aux_loss_enabled=False)  # fmt: skip
    stub = lambda *a, **kw: SimpleNamespace(logits=logits)
    theirs, trl_metrics = trainer.get_batch_loss_metrics(stub, tb)
    prefs, _, _ = _prefs_from_logits(logits, tb)
    ours, metrics = LOSSES["orpo"](prefs, lam=lam)
    assert_close(ours, theirs)
    (g_theirs,) = torch.autograd.grad(theirs, logits, retain_graph=True)
    (g_ours,) = torch.autograd.grad(ours, logits)
    assert_close(g_ours, g_theirs)
    assert_close(metrics["nll"], trl_metrics["nll_loss"])


@pytest.mark.parametrize("with_margin", [False, True])
def test_bt_matches_trl_reward_trainer(with_margin):
    g = torch.Generator().manual_seed(8)
    rewards = torch.randn(2 * B, 1, generator=g, dtype=DT).requires_grad_(True)
    margin = torch.rand(B, generator=g, dtype=DT) if with_margin else None
    model = lambda **kw: SimpleNamespace(logits=rewards)
    model.training = True
    trainer = bare(
        RewardTrainer, model=model, accelerator=ACCEL, args=SimpleNamespace(center_rewards_coefficient=None),
        _total_train_tokens=0, _tp_size=1, _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
    )  # fmt: skip
    inputs = {"input_ids": torch.ones(2 * B, 4, dtype=torch.long), "attention_mask": torch.ones(2 * B, 4)}
    if with_margin:
        inputs["margin"] = margin
    theirs = trainer.compute_loss(model, inputs)
    chosen, rejected = rewards[:B, 0], rewards[B:, 0]
    ours, metrics = bradley_terry_loss(chosen, rejected, margin=margin)
    assert REWARD_LOSSES["bt"] is bradley_terry_loss
    assert_close(ours, theirs)
    (g_theirs,) = torch.autograd.grad(theirs, rewards, retain_graph=True)
    (g_ours,) = torch.autograd.grad(ours, rewards)
    assert_close(g_ours, g_theirs)
    assert_close(metrics["rewards/accuracies"], trainer._metrics["train"]["accuracy"][-1])
    assert_close(metrics["rewards/margins"], trainer._metrics["train"]["margin"][-1])


# --------------------------------------------------------------------------------------------------
# MPO, RDPO, RORPO against a scalar transcription of their equations
# --------------------------------------------------------------------------------------------------
def _logsig(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


ROW_FIELDS = (
    "chosen_logps", "rejected_logps", "chosen_lengths", "rejected_lengths",
    "reward_chosen", "reward_rejected", "rationale_logps", "rationale_lengths",
)  # fmt: skip


def _rows(batch):
    cols = [getattr(batch, f) for f in ROW_FIELDS]
    return [tuple(float(c[i].detach()) for c in cols) for i in range(B)]


def mpo_reference(batch, beta, gamma, lam, ce="mean", scale="inside"):
    total = 0.0
    for lw, ll, nw, _, rw, rl, _, _ in _rows(batch):
        if scale == "inside":
            z = beta * (lw - ll - gamma * (rw - rl))  # Eq. 1c
        else:
            z = beta * (lw - ll) - gamma * (rw - rl)
        nll = -lw / nw if ce == "mean" else -lw  # Eq. 2 CE term
        total += lam * -_logsig(z) + nll
    return total / B


def orpo_row(lw, ll, nw, nl, lam):
    aw, al = lw / nw, ll / nl
    odds = lambda a: a - math.log(1.0 - math.exp(a))
    return -aw - lam * _logsig(odds(aw) - odds(al))


@pytest.mark.parametrize(("beta", "gamma", "lam"), [(0.01, 1.0, 0.8), (0.1, 0.3, 1.5), (0.5, 2.0, 0.2)])
@pytest.mark.parametrize("ce", ["mean", "sum"])
@pytest.mark.parametrize("scale", ["inside", "outside"])
def test_mpo_matches_equation(beta, gamma, lam, ce, scale):
    batch = make_batch(9)
    ours, metrics = LOSSES["mpo"](batch, beta=beta, gamma=gamma, lam=lam, ce_reduction=ce, margin_scale=scale)
    assert_close(ours, mpo_reference(batch, beta, gamma, lam, ce, scale), 1e-9)
    for key in ("margin_loss", "nll", "rewards/chosen", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert key in metrics and not metrics[key].requires_grad


@pytest.mark.parametrize(("beta", "gamma"), [(0.1, 2.0), (0.5, 0.7)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_rdpo_matches_equation(beta, gamma, reduction):
    batch = make_batch(10)
    ours, _ = LOSSES["rdpo"](batch, beta=beta, gamma=gamma, rationale_reduction=reduction)
    rw_, rl_ = batch.ref_chosen_logps.tolist(), batch.ref_rejected_logps.tolist()
    total = 0.0
    for i, (lw, ll, _, _, _, _, lr, nr) in enumerate(_rows(batch)):
        rationale = lr / nr if reduction == "mean" else lr
        total += -_logsig(beta * ((lw - rw_[i]) - (ll - rl_[i]))) - gamma * rationale  # Eq. 4
    assert_close(ours, total / B, 1e-9)


@pytest.mark.parametrize(("lam", "gamma"), [(0.1, 10.0), (0.5, 1.0)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_rorpo_matches_equation(lam, gamma, reduction):
    batch = make_batch(11)
    ours, _ = LOSSES["rorpo"](batch, lam=lam, gamma=gamma, rationale_reduction=reduction)
    total = 0.0
    for lw, ll, nw, nl, _, _, lr, nr in _rows(batch):
        total += orpo_row(lw, ll, nw, nl, lam) - gamma * (lr / nr if reduction == "mean" else lr)
    assert_close(ours, total / B, 1e-9)


def test_orpo_matches_equation():
    batch = make_batch(12)
    ours, _ = LOSSES["orpo"](batch, lam=0.3)
    assert_close(ours, sum(orpo_row(lw, ll, nw, nl, 0.3) for lw, ll, nw, nl, *_ in _rows(batch)) / B, 1e-9)


@pytest.mark.parametrize("name", ["dpo", "cpo", "simpo", "orpo", "mpo", "rdpo", "rorpo"])
def test_gradients_match_finite_differences(name):
    batch = make_batch(13, grad=False)
    names = ["chosen_logps", "rejected_logps"] + (["rationale_logps"] if name in ("rdpo", "rorpo") else [])

    def f(*xs):
        b = PreferenceLogps(**{**batch.__dict__, **dict(zip(names, xs))})
        return LOSSES[name](b)[0]

    assert torch.autograd.gradcheck(f, [getattr(batch, n).clone().requires_grad_(True) for n in names])


# --------------------------------------------------------------------------------------------------
# special cases
# --------------------------------------------------------------------------------------------------
def test_mpo_gamma0_is_lam_cpo_sigmoid_plus_nll():
    batch = make_batch(14)
    beta, lam = 0.05, 0.8
    mpo, _ = LOSSES["mpo"](batch, beta=beta, gamma=0.0, lam=lam)
    cpo_sigmoid, _ = LOSSES["cpo"](batch, beta=beta, lam=0.0)
    nll = (-batch.chosen_logps / batch.chosen_lengths).mean()
    assert_close(mpo, lam * cpo_sigmoid + nll, 1e-12)
    # with lam = 1 (CPO's NLL weight) MPO at gamma = 0 is exactly CPO
    assert_close(LOSSES["mpo"](batch, beta=beta, gamma=0.0, lam=1.0)[0], LOSSES["cpo"](batch, beta=beta)[0], 1e-12)


def test_mpo_lam0_is_pure_cross_entropy():
    batch = make_batch(15)
    loss, _ = LOSSES["mpo"](batch, beta=0.01, gamma=1.0, lam=0.0)
    assert_close(loss, (-batch.chosen_logps / batch.chosen_lengths).mean(), 1e-12)
    g_w, g_l = grads(loss, batch)
    assert_close(g_w, -1.0 / (B * batch.chosen_lengths.double()), 1e-12)
    assert g_l is None or torch.all(g_l == 0)


def test_mpo_margin_scale_inside_vs_outside():
    batch = make_batch(16)
    beta, gamma = 0.01, 1.0
    inside, m_in = LOSSES["mpo"](batch, beta=beta, gamma=gamma, margin_scale="inside")
    outside, m_out = LOSSES["mpo"](batch, beta=beta, gamma=gamma, margin_scale="outside")
    assert abs(inside.item() - outside.item()) > 1e-3  # r_w > r_l mostly: a much larger target outside
    assert_close(m_out["target_margin"], gamma * (batch.reward_chosen - batch.reward_rejected).mean())
    assert_close(m_in["target_margin"], beta * gamma * (batch.reward_chosen - batch.reward_rejected).mean())
    # outside with gamma equals inside with gamma / beta; and both agree when beta = 1
    assert_close(outside, LOSSES["mpo"](batch, beta=beta, gamma=gamma / beta, margin_scale="inside")[0], 1e-12)
    assert_close(
        LOSSES["mpo"](batch, beta=1.0, gamma=gamma, margin_scale="outside")[0],
        LOSSES["mpo"](batch, beta=1.0, gamma=gamma, margin_scale="inside")[0],
        1e-12,
    )


def test_ce_reduction_sum():
    batch = make_batch(17)
    nll_sum = (-batch.chosen_logps).mean()
    assert_close(LOSSES["mpo"](batch, lam=0.0, ce_reduction="sum")[0], nll_sum, 1e-12)
    cpo0, _ = LOSSES["cpo"](batch, beta=0.1, lam=0.0)
    assert_close(LOSSES["cpo"](batch, beta=0.1, lam=0.5, ce_reduction="sum")[0], cpo0 + 0.5 * nll_sum, 1e-12)
    orpo_mean, _ = LOSSES["orpo"](batch, lam=0.1)
    orpo_sum, _ = LOSSES["orpo"](batch, lam=0.1, ce_reduction="sum")
    assert_close(orpo_sum - orpo_mean, nll_sum - (-batch.chosen_logps / batch.chosen_lengths).mean(), 1e-12)


def test_simpo_lam_adds_nll():
    batch = make_batch(18)
    base, _ = LOSSES["simpo"](batch)
    assert_close(LOSSES["simpo"](batch, lam=0.3)[0], base + 0.3 * (-batch.chosen_logps / batch.chosen_lengths).mean())


@pytest.mark.parametrize(
    ("name", "missing", "field"),
    [
        ("dpo", {"ref_chosen_logps": None}, "ref_chosen_logps"),
        ("dpo", {"ref_rejected_logps": None}, "ref_rejected_logps"),
        ("rdpo", {"ref_chosen_logps": None, "ref_rejected_logps": None}, "ref_chosen_logps"),
        ("rdpo", {"rationale_logps": None}, "rationale_logps"),
        ("rdpo", {"rationale_lengths": None}, "rationale_lengths"),
        ("rorpo", {"rationale_logps": None}, "rationale_logps"),
        ("mpo", {"reward_chosen": None}, "reward_chosen"),
        ("mpo", {"reward_rejected": None}, "reward_rejected"),
    ],
)
def test_missing_field_raises_naming_it(name, missing, field):
    batch = make_batch(19, **missing)
    with pytest.raises(ValueError, match=field) as err:
        LOSSES[name](batch)
    assert repr(name) in str(err.value)


def test_losses_without_optional_fields_need_none():
    minimal = make_batch(20, ref_chosen_logps=None, ref_rejected_logps=None, reward_chosen=None,
                         reward_rejected=None, rationale_logps=None, rationale_lengths=None)  # fmt: skip
    for name in ("cpo", "simpo", "orpo"):
        assert torch.isfinite(LOSSES[name](minimal)[0])
    # a summed rationale term needs no rationale lengths
    batch = make_batch(20, rationale_lengths=None)
    assert torch.isfinite(LOSSES["rdpo"](batch, rationale_reduction="sum")[0])


@pytest.mark.parametrize(
    ("name", "kwargs", "option"),
    [("mpo", {"margin_scale": "middle"}, "margin_scale"), ("cpo", {"ce_reduction": "avg"}, "ce_reduction"),
     ("rorpo", {"rationale_reduction": "token"}, "rationale_reduction")],
)  # fmt: skip
def test_bad_option_raises(name, kwargs, option):
    with pytest.raises(ValueError, match=option):
        LOSSES[name](make_batch(21), **kwargs)


def test_unknown_hparam_is_an_error():
    with pytest.raises(TypeError, match="lam"):
        LOSSES["dpo"](make_batch(22), lam=0.5)


def test_preference_logps_shape_check():
    with pytest.raises(ValueError, match="rejected_logps"):
        PreferenceLogps(torch.zeros(3), torch.zeros(4), torch.ones(3), torch.ones(3))


def test_orpo_log_odds_stable_near_zero_and_far():
    # avg logps at 0 (p = 1), a hair below 0, around -ln 2, and very negative: finite loss and grads
    for dtype in (torch.float32, torch.float64):
        avg = torch.tensor([0.0, -1e-12, -0.6931, -0.6932, -60.0, -1e-4], dtype=dtype)
        lens = torch.tensor([5, 5, 5, 5, 5, 5])
        lw = (avg * 5).requires_grad_(True)
        ll = (avg.flip(0) * 5).requires_grad_(True)
        loss, _ = LOSSES["orpo"](PreferenceLogps(lw, ll, lens, lens), lam=0.1)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(lw.grad).all() and torch.isfinite(ll.grad).all()
    x = torch.tensor([-1e-6, -0.5, -0.9, -30.0], dtype=DT)
    assert_close(log1mexp(x), torch.tensor([math.log(-math.expm1(v)) for v in x.tolist()], dtype=DT), 1e-12)


def test_sft_loss_reductions_match_cross_entropy():
    g = torch.Generator().manual_seed(23)
    logits = torch.randn(4, 7, 13, generator=g, dtype=DT)
    labels = torch.randint(0, 13, (4, 7), generator=g)
    mask = torch.rand(4, 7, generator=g) > 0.3
    mask[:, 0] = True
    token_logps = torch.log_softmax(logits, -1).gather(-1, labels[..., None])[..., 0]
    token_logps = token_logps.masked_fill(~mask, float("-inf"))  # garbage outside the mask must not leak
    ce = F.cross_entropy(logits.reshape(-1, 13), labels.masked_fill(~mask, -100).reshape(-1), ignore_index=-100)
    assert_close(sft_loss(token_logps, mask)[0], ce, 1e-12)
    per_tok = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none") * mask
    assert_close(sft_loss(token_logps, mask, "sum")[0], per_tok.sum(1).mean(), 1e-12)
    assert_close(sft_loss(token_logps, mask, "sequence_mean")[0], (per_tok.sum(1) / mask.sum(1)).mean(), 1e-12)
    assert TOKEN_LOSSES["sft"] is sft_loss
    with pytest.raises(ValueError, match="reduction"):
        sft_loss(token_logps, mask, "median")


def test_sft_loss_num_items_replaces_the_token_count():
    token_logps = -torch.rand(3, 5, dtype=DT)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    total = -(token_logps * mask).sum()
    assert_close(sft_loss(token_logps, mask, num_items=16)[0], total / 16, 1e-12)
    assert_close(sft_loss(token_logps, mask)[0], total / 8, 1e-12)
    with pytest.raises(ValueError, match="num_items"):
        sft_loss(token_logps, mask, "sum", num_items=16)


def test_registry():
    assert set(LOSSES) == {"dpo", "cpo", "simpo", "orpo", "mpo", "rdpo", "rorpo"}
    assert sorted(REWARD_LOSSES) == ["bt"] and sorted(TOKEN_LOSSES) == ["sft"]
    assert REWARD_LOSSES["bt"] is bradley_terry_loss and TOKEN_LOSSES["sft"] is sft_loss
    with pytest.raises(KeyError, match="nope.*known: cpo, dpo"):
        LOSSES.entry("nope")
    with pytest.raises(KeyError, match="registered twice"):
        LOSSES.add("mpo", lambda batch: None)
    for name in LOSSES:
        _, metrics = LOSSES[name](make_batch(24))
        for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
                    "logps/chosen", "logps/rejected"):  # fmt: skip
            assert metrics[key].ndim == 0 and not metrics[key].requires_grad, (name, key)


# What each preference loss's batch must carry, written once more here (independently of the
# registrations) so a wrong declaration fails: the fields the loss reads.
NEEDS = {"dpo": {"needs_reference"}, "rdpo": {"needs_reference", "needs_rationale"}, "mpo": {"needs_rewards"},
         "rorpo": {"needs_rationale"}, "cpo": set(), "simpo": set(), "orpo": set()}
NEEDED_FIELDS = {"needs_reference": ("ref_chosen_logps", "ref_rejected_logps"),
                 "needs_rewards": ("reward_chosen", "reward_rejected"),
                 "needs_rationale": ("rationale_logps", "rationale_lengths")}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_declarations_match_what_the_loss_reads(name):
    entry = LOSSES.entry(name)
    declared = {k for k in NEEDED_FIELDS if getattr(entry, k)}
    assert declared == NEEDS[name]
    for need, names in NEEDED_FIELDS.items():  # a declared need: the loss fails without those fields
        if need in declared:
            with pytest.raises(ValueError, match=names[0]):
                LOSSES[name](make_batch(3, **dict.fromkeys(names)))
    undeclared = [f for need, names in NEEDED_FIELDS.items() if need not in declared for f in names]
    LOSSES[name](make_batch(3, **dict.fromkeys(undeclared)))  # an undeclared one: not read


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_option_field_is_a_keyword_of_its_loss(name):
    """Fields == keyword options (so an option always reaches the maths), defaults == the function's."""
    entry = LOSSES.entry(name)
    params = inspect.signature(entry.obj).parameters
    kwargs = {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(params) - set(kwargs) == {"batch"}
    typed = entry.config()
    assert options(typed) == kwargs, name


@pytest.mark.parametrize("registry, name", [(TOKEN_LOSSES, "sft"), (REWARD_LOSSES, "bt")])
def test_token_and_reward_option_fields_are_keywords_of_their_loss(registry, name):
    entry = registry.entry(name)
    params = inspect.signature(entry.obj).parameters
    for key, value in options(entry.config()).items():
        assert params[key].default == value, (name, key)


# --------------------------------------------------------------------------------------------------
# conf/loss/*.yaml
# --------------------------------------------------------------------------------------------------
PAPER_DEFAULTS = {
    "mpo": {"lam": 0.8, "beta": 0.01, "gamma": 1.0, "margin_scale": "inside", "ce_reduction": "mean"},
    "cpo": {"beta": 0.1, "lam": 1.0},
    "simpo": {"beta": 2.0, "gamma": 0.5},
    "dpo": {"beta": 0.1},
    "orpo": {"lam": 0.1},
    "rdpo": {"gamma": 2.0},
    "rorpo": {"gamma": 10.0},
}


def test_the_loss_group_ships_exactly_the_preference_losses():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == LOSSES.names()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_config(name):
    """Each yaml composes, types against its entry and sets every option to the function default."""
    from rationalign.runner import compose

    text = (CONF / f"{name}.yaml").read_text()
    assert text.startswith("# @package loss")
    assert yaml.safe_load(text)["name"] == name
    node = compose([f"loss={name}"]).loss
    typed = LOSSES.typed(node)
    assert type(typed) is LOSSES.entry(name).config
    assert set(node) - {"name"} == set(options(typed)), "the yaml lists every option"
    for key, value in PAPER_DEFAULTS.get(name, {}).items():
        assert getattr(typed, key) == value, (name, key)
    # the yaml repeats the function defaults, so calling with or without the config is the same loss
    params = inspect.signature(LOSSES[name]).parameters
    for key, value in options(typed).items():
        assert params[key].default == value, (name, key)
    LOSSES[name](make_batch(25), **options(typed))


@pytest.mark.parametrize(("name", "key", "value"), [("dpo", "lam", 1.0), ("simpo", "margin_scale", "outside"),
                                                   ("mpo", "rationale_reduction", "sum")])
def test_a_key_the_loss_does_not_take_is_an_error_naming_it(name, key, value):
    known = ", ".join(sorted(options(LOSSES.entry(name).config())))
    with pytest.raises(ValueError, match=f"loss.{key}: unknown key \\(known: {known}\\)"):
        LOSSES.typed({"name": name, key: value})


def test_an_option_out_of_range_or_of_the_wrong_type_is_an_error_naming_it():
    with pytest.raises(ValueError, match="loss.beta=0.0: out of range"):
        LOSSES.typed({"name": "dpo", "beta": 0.0})
    with pytest.raises(ValueError, match="loss.margin_scale=sideways: expected one of inside, outside"):
        LOSSES.typed({"name": "mpo", "margin_scale": "sideways"})
    with pytest.raises(ValueError, match="loss.lam"):
        LOSSES.typed({"name": "orpo", "lam": "big"})
