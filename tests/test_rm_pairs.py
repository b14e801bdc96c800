"""Reward-model pairs, unit by unit: the text each side is encoded from, the chosen-then-rejected
batch, the Bradley-Terry loss on those rows, pairwise accuracy and the held-out split by input.
A fake scorer (score = sum of the token ids) makes every expected value computable by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from rationalign.training import reward as R
from rationalign.training.chat import Layout
from rationalign.training.pairs_io import RMPair
from rationalign.training.sft import EncodedDataset


class SumScorer(torch.nn.Module):
    """logits[:, 0] = sum of the non-pad token ids of each row."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=(self.w * (input_ids * attention_mask).sum(-1, keepdim=True).float()))


class WordTok:
    """A whitespace tokenizer: token id = word length (ids are easy to sum by hand); id 99 opens a
    text when special tokens are asked for, eos is 1."""

    pad_token_id = 0
    eos_token_id = 1
    bos_token_id = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [99] * add_special_tokens + [len(w) for w in text.split()]}


TEMPLATE = R.RMTemplate(rm_template="{instruction} || {source} || {response}",
                        rm_instructions={"gec": "Grade it.", "fluency": ""}, layout=Layout("plain"))


def pair(i, chosen, rejected, task="gec", source=None):
    return RMPair(id=f"p{i}", task=task, instruction="Fix:", source=source or f"src{i}", chosen=chosen,
                  rejected=rejected)


def test_user_message_uses_the_task_instruction_or_falls_back():
    assert TEMPLATE.user_message("gec", "Fix:", "a b", "A b.") == "Grade it. || a b || A b."
    assert TEMPLATE.user_message("fluency", "Fix:", "a b", "A b.") == "Fix: || a b || A b."  # empty rm_instruction
    assert TEMPLATE.user_message(None, "", None, "the answer", prompt="the prompt") == "the prompt\n\nthe answer"
    with pytest.raises(ValueError, match="no rm_instruction for task 'fluency'"):
        TEMPLATE.user_message("fluency", "", "a", "b")


def test_encode_keeps_chosen_and_rejected_apart_and_truncates_the_start():
    tok = WordTok()
    ds = R.encode_rm_pairs([pair(0, "aaaa", "b cc"), pair(1, "dd", "eee eee eee")], tok, TEMPLATE, 64)
    r0, r1 = ds.rows
    msg = TEMPLATE.user_message("gec", "Fix:", "src0", "aaaa")
    assert r0["chosen_ids"] == [len(w) for w in msg.split()] and r0["chosen_ids"][-1] == 4
    assert r0["rejected_ids"][-2:] == [1, 2]
    assert r0["input_ids"] == r0["rejected_ids"] and r1["input_ids"] == r1["rejected_ids"]  # the longer side
    short = R.encode_rm_pairs([pair(0, "aaaa", "b cc")], tok, TEMPLATE, 3).rows[0]
    assert short["chosen_ids"] == r0["chosen_ids"][-3:] and short["rejected_ids"] == r0["rejected_ids"][-3:]
    same = R.encode_rm_pairs([pair(0, "x yy", "zz w")], tok, TEMPLATE, 64).rows[0]
    assert same["input_ids"] == same["chosen_ids"]  # tie: the chosen side


def test_collate_puts_chosen_rows_first_right_padded():
    feats = [{"chosen_ids": [5, 6], "rejected_ids": [7]}, {"chosen_ids": [8], "rejected_ids": [9, 10, 11]}]
    b = R.collate_rm(feats, pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 0], [8, 0, 0], [7, 0, 0], [9, 10, 11]]
    assert b["attention_mask"].tolist() == [[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 1, 1]]


def test_bt_loss_on_chosen_minus_rejected():
    feats = [{"chosen_ids": [3, 4], "rejected_ids": [1]}, {"chosen_ids": [2], "rejected_ids": [6, 1]}]
    loss, metrics = R.bt_loss_fn(SumScorer(), R.collate_rm(feats, 0))
    # scores: chosen 7, 2; rejected 1, 7 -> -log sigma(6), -log sigma(-5)
    expected = (-math.log(1 / (1 + math.exp(-6))) - math.log(1 / (1 + math.exp(5)))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert metrics["rewards/accuracies"].item() == 0.5 and metrics["rewards/margins"].item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(-F.logsigmoid(torch.tensor([6.0, -5.0])).mean().item(), rel=1e-6)


def test_pairwise_accuracy_and_margin():
    rows = [{"chosen_ids": [5], "rejected_ids": [1, 1]}, {"chosen_ids": [1], "rejected_ids": [4]},
            {"chosen_ids": [2, 2], "rejected_ids": [3]}]
    model = SumScorer()
    model.train()
    res = R.pairwise_accuracy(model, SimpleNamespace(pad_token_id=0), EncodedDataset(rows), batch_size=2)
    # margins 3, -3, 1: two wins of three; mean margin 1/3
    assert res["accuracy"] == pytest.approx(2 / 3) and res["margin"] == pytest.approx(1 / 3) and res["pairs"] == 3
    assert model.training  # restored
    empty = R.pairwise_accuracy(model, None, EncodedDataset([]))
    assert empty["pairs"] == 0 and math.isnan(empty["accuracy"])


def test_heldout_split_keeps_each_input_on_one_side():
    pairs = [pair(i, "a", "b", source=f"input {i % 10}") for i in range(60)]
    train, held = R.split_heldout(pairs, 0.3, seed=0)
    assert len(train) + len(held) == 60 and held and train
    assert not ({p.source for p in train} & {p.source for p in held})
    assert (train, held) == R.split_heldout(pairs, 0.3, seed=0)
    assert R.split_heldout(pairs, 0.0, seed=0) == (pairs, [])
    inputs = [pair(i, "a", "b", source=f"s{i}") for i in range(400)]
    share = len(R.split_heldout(inputs, 0.25, seed=1)[1]) / 400
    assert 0.18 < share < 0.32  # the fraction is the share of inputs held out
    assert {p.source for p in R.split_heldout(inputs, 0.25, seed=1)[1]} != \
        {p.source for p in R.split_heldout(inputs, 0.25, seed=2)[1]}  # seeded
    with pytest.raises(ValueError, match="leaves no training pairs"):
        R.split_heldout(pairs, 1.0, seed=0)


def test_encode_seq2seq_ends_in_one_eos_and_user_layout_pairs_use_their_prompt():
    tok = WordTok()
    p = pair(0, "aaaa", "b cc")
    row = R.encode_rm_pairs([p], tok, TEMPLATE, 64, seq2seq=True).rows[0]
    msg = [len(w) for w in TEMPLATE.user_message("gec", "Fix:", "src0", "aaaa").split()]
    assert row["chosen_ids"] == msg + [1]  # encoder text, no special tokens, one </s>
    assert R.encode_rm_pairs([p], tok, TEMPLATE, 3, seq2seq=True).rows[0]["chosen_ids"] == msg[-2:] + [1]
    assert R.encode_rm_pairs([p], tok, TEMPLATE, 64).rows[0]["chosen_ids"] == msg  # causal: no eos added
    user = RMPair(id="u", task=None, instruction="", source=None, chosen="yes please", rejected="no",
                  prompt="tell me")
    row = R.encode_rm_pairs([user], tok, TEMPLATE, 64).rows[0]
    assert row["chosen_ids"] == [4, 2, 3, 6] and row["rejected_ids"] == [4, 2, 2]
