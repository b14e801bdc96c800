"""The SFT trainer's loss comes from TOKEN_LOSSES (sft.loss): with reduction=mean it is, bit for bit,
the summed completion-token NLL over the step's token count (what SFT trained with before the loss
was looked up); the per-sequence reductions match a direct computation per row."""

from __future__ import annotations

import pytest
import torch

from rationalign.models import load_for_training
from rationalign.training.chat import Layout
from rationalign.training.logps import collate_completion, completion_token_logps
from rationalign.training.sft import SFTExample, encode_sft, make_sft_loss_fn

TINY = {"source": "tiny", "lora": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
EXAMPLES = [SFTExample("Fix the grammar: the cat sat", "The cat sat."),
            SFTExample("Fix the grammar: a dog run fast on the road", "A dog runs fast on the road. It was fun."),
            SFTExample("Fix: he go", "He goes.")]


@pytest.fixture(scope="module")
def model_batch():
    torch.manual_seed(0)
    model, tok = load_for_training(TINY)
    ds = encode_sft(EXAMPLES, tok, 64, layout=Layout())
    return model, collate_completion(ds.rows, tok.pad_token_id)


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("num_items", [None, 40])
def test_mean_is_bitwise_the_summed_nll_over_the_token_count(model_batch, num_items):
    model, batch = model_batch
    loss_fn, per_token = make_sft_loss_fn({"name": "sft", "reduction": "mean"})
    assert per_token  # the Trainer must not divide by the GA steps again
    model.zero_grad()
    loss, metrics = loss_fn(model, batch, torch.tensor(num_items) if num_items else None)
    loss.backward()
    ours = _grads(model)
    model.zero_grad()
    tok_logp, _ = completion_token_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    n = tok_logp.numel()
    expected = -tok_logp.sum() / (torch.tensor(num_items) if num_items else max(n, 1))
    expected.backward()
    assert torch.equal(loss, expected)
    assert all(torch.equal(a, b) for a, b in zip(ours, _grads(model)))
    assert metrics == {"completion_tokens": torch.tensor(float(n))}


@pytest.mark.parametrize("reduction", ["sequence_mean", "sum"])
def test_per_sequence_reductions_match_a_row_by_row_computation(model_batch, reduction):
    model, batch = model_batch
    loss_fn, per_token = make_sft_loss_fn({"name": "sft", "reduction": reduction})
    assert not per_token
    with torch.no_grad():
        loss, _ = loss_fn(model, batch, torch.tensor(999))  # a step-wide count does not apply here
        tok_logp, rows = completion_token_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    per_row = [-tok_logp[rows == i] for i in range(len(EXAMPLES))]
    assert len({len(r) for r in per_row}) > 1  # rows of different lengths: the padding must not count
    want = [r.sum() / (len(r) if reduction == "sequence_mean" else 1) for r in per_row]
    torch.testing.assert_close(loss, torch.stack(want).mean())


def test_an_unknown_option_or_loss_fails_naming_it():
    with pytest.raises(ValueError, match="sft.loss.reductio: unknown key"):
        make_sft_loss_fn({"name": "sft", "reductio": "sum"})
    with pytest.raises(KeyError, match="unknown token loss 'bt'"):
        make_sft_loss_fn({"name": "bt"})
