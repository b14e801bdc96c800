"""The preference trainer hands each loss the right rows: its loss equals LOSSES[name] evaluated on
log-probs computed independently (one sequence at a time, full logits) for chosen, rejected and
rationale, with the reward and reference columns in their stated order.

Earlier tests checked only that training stayed finite and weights moved, which survives swapping
chosen/rejected rows, reward columns or reference columns (issue 13)."""

from __future__ import annotations

import pytest
import torch

from rationalign.losses import LOSSES, PreferenceLogps
from rationalign.models import load_base_model
from rationalign.training import preference as P
from rationalign.training.chat import Layout
from rationalign.training.logps import collate_completion, full_sequence_logps_reference
from rationalign.training.pairs_io import PrefPair

TINY = {"source": "tiny"}
T5 = {"source": "tiny", "architecture": "seq2seq", "dtype": "float32"}

# Chosen and rejected differ in length and content, rewards and references are asymmetric per row,
# so any swap of rows or columns changes every loss.
PAIRS = [
    PrefPair(id="a", task="gec", instruction="Fix:", source="he go home", chosen="He goes home.",
             rejected="He go home now, I think, maybe.", chosen_reward=2.5, rejected_reward=-1.0,
             rationale="A fixes the verb agreement."),
    PrefPair(id="b", task="gec", instruction="Fix:", source="she like cat", chosen="She likes cats very much.",
             rejected="She like.", chosen_reward=0.7, rejected_reward=0.2,
             rationale="A adds the missing s and keeps the meaning of the sentence intact."),
    PrefPair(id="c", task="gec", instruction="Fix:", source="we was late", chosen="We were late.",
             rejected="We was late late late.", chosen_reward=1.9, rejected_reward=-2.2,
             rationale="A uses were."),
]
# Reference log-probs: (chosen, rejected) per pair, deliberately unlike each other.
REF = torch.tensor([[-30.0, -5.0], [-12.0, -40.0], [-7.0, -21.0]])
# Hyper-parameters large enough that each term moves the loss well beyond float noise.
HPARAMS = {"dpo": {"beta": 0.5}, "cpo": {"beta": 0.5, "lam": 1.0}, "simpo": {"beta": 2.0, "gamma": 0.5, "lam": 0.3},
           "orpo": {"lam": 0.5}, "mpo": {"beta": 0.2, "gamma": 3.0, "lam": 0.8},
           "rdpo": {"beta": 0.5, "gamma": 2.0}, "rorpo": {"lam": 0.5, "gamma": 2.0}}


@pytest.fixture(scope="module", params=["causal", "seq2seq"])
def model_tok(request):
    torch.manual_seed(0)
    model, tok = load_base_model(TINY if request.param == "causal" else T5)
    model.eval()
    return model, tok, request.param == "seq2seq"


def _one_by_one(model, tok, seq2seq, prompt_ids, completion_ids):
    """(sum log-prob, length) of one sequence with the full-logits oracle, no batching or stacking."""
    batch = collate_completion([{"prompt_ids": prompt_ids, "completion_ids": completion_ids}], tok.pad_token_id,
                               seq2seq=seq2seq)
    lp, n = full_sequence_logps_reference(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    return float(lp[0]), float(n[0])


def test_loss_names_covered():
    assert set(HPARAMS) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(HPARAMS))
def test_trainer_loss_equals_the_loss_on_independent_logps(name, model_tok):
    model, tok, seq2seq = model_tok
    rationale, rewards = LOSSES.entry(name).needs_rationale, LOSSES.entry(name).needs_rewards
    msgs = [f"Fix the grammar:\n\nText: {p.source}" for p in PAIRS]
    ds = P.encode_preference(PAIRS, tok, msgs, 96, with_rationale=rationale, with_rewards=rewards, layout=Layout(),
                             seq2seq=seq2seq)
    P.attach_reference(ds, REF)
    batch = P.collate_preference(ds.rows, tok.pad_token_id, seq2seq=seq2seq)
    batch["n_pairs"] = len(PAIRS)
    with torch.no_grad():
        loss, metrics = P.make_loss_fn(name, HPARAMS[name])(model, batch)

        def col(prompt_key, ids_key):
            vals = [_one_by_one(model, tok, seq2seq, r[prompt_key], r[ids_key]) for r in ds.rows]
            return torch.tensor([v[0] for v in vals]), torch.tensor([v[1] for v in vals])

        cw, cn = col("c_prompt", "c_ids")
        rw, rn = col("r_prompt", "r_ids")
        fields = {"chosen_logps": cw, "rejected_logps": rw, "chosen_lengths": cn, "rejected_lengths": rn,
                  "ref_chosen_logps": REF[:, 0], "ref_rejected_logps": REF[:, 1]}
        if rewards:
            fields.update(reward_chosen=torch.tensor([p.chosen_reward for p in PAIRS]),
                          reward_rejected=torch.tensor([p.rejected_reward for p in PAIRS]))
        if rationale:
            xw, xn = col("x_prompt", "x_ids")
            fields.update(rationale_logps=xw, rationale_lengths=xn)
        expected, exp_metrics = LOSSES[name](PreferenceLogps(**fields), **HPARAMS[name])
    assert (cn != rn).all(), "the fixture must give chosen and rejected different lengths"
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5), name
    for key in ("logps/chosen", "logps/rejected", "rewards/margins"):
        assert metrics[key].item() == pytest.approx(exp_metrics[key].item(), rel=1e-4, abs=1e-5), (name, key)
    # The independent chosen log-probs are those of the chosen texts: the chosen sum is not the rejected one.
    assert metrics["logps/chosen"].item() == pytest.approx(cw.mean().item(), rel=1e-4)
    assert not torch.allclose(cw, rw)
