"""Reward trainer (BT, 1-logit head + LoRA), RM pair validation, RewardScorer and stage=reward."""

from __future__ import annotations

import json
import random

import pytest
import torch

from rationalign.runner import compose, run
from rationalign.training.pairs_io import PairsError, load_rm_pairs

SUBJECTS = ["The cat", "My brother", "The old man", "Our teacher", "A small dog", "The girl", "His friend", "The bird"]
VERBS = ["sat on", "looked at", "walked to", "painted", "cleaned", "found", "liked", "visited"]
OBJECTS = ["the mat", "the house", "a red car", "the garden", "the river", "a new book", "the station", "the park"]
MARKER = " zz qq"  # the learnable defect: rejected suggestions carry this marker


def toy_rm_rows(n: int, seed: int = 0, tasks=("gec",)) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        rows.append({"id": f"p{i}", "task": tasks[i % len(tasks)], "instruction": "Fix the grammar:",
                     "source": s.lower(), "chosen": s, "rejected": s[:-1] + MARKER + ".",
                     "chosen_score": 1.0, "rejected_score": 0.0, "metric": "m2"})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def reward_overrides(tmp_path, pairs, *extra):
    return ["model=tiny", f"paths.root={tmp_path / 'out'}",
            "stage=reward", f"reward.pairs={pairs}", "reward.train.batch_size=8", "reward.train.lr=3e-3",
            "reward.train.logging_steps=1", "reward.heldout_fraction=0.25", *extra]


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.pop("chosen"), ":2: field 'chosen' is missing"),
    (lambda r: r.update(rejected=3), ":2: field 'rejected' must be a string"),
    (lambda r: r.update(chosen_score="high"), ":2: field 'chosen_score' must be a finite number"),
    (lambda r: r.update(rejected=r["chosen"]), ":2: fields 'chosen' and 'rejected' are identical"),
    (lambda r: r.update(colour="red"), ":2: unknown field(s) ['colour']"),
    (lambda r: r.update(id="p0"), ":2: field 'id': duplicate 'p0'"),
])
def test_rm_pairs_errors_name_file_line_field(tmp_path, mutate, needle):
    rows = toy_rm_rows(3)
    mutate(rows[1])
    path = write_jsonl(tmp_path / "rm.jsonl", rows)
    with pytest.raises(PairsError) as e:
        load_rm_pairs(path)
    assert str(path) + needle in str(e.value)


def test_rm_pairs_user_layout_and_count(tmp_path):
    rows = toy_rm_rows(4) + [{"prompt": "Say hi", "chosen": "Hi!", "rejected": "Bye."}]
    pairs = load_rm_pairs(write_jsonl(tmp_path / "rm.jsonl", rows))
    assert len(pairs) == 5 and pairs[-1].task is None and pairs[-1].prompt == "Say hi"


# ------------------------------------------------------------------------------------ trainer
def test_reward_stage_learns_and_scorer_agrees(tmp_path):
    pairs = write_jsonl(tmp_path / "rm.jsonl", toy_rm_rows(64))
    cfg = compose(reward_overrides(tmp_path, pairs, "reward.train.epochs=4"))
    manifest = run(cfg)
    m = manifest["metrics"]
    assert manifest["counts"]["pairs"] == 64
    assert manifest["counts"]["train_pairs"] + manifest["counts"]["heldout_pairs"] == 64
    assert manifest["counts"]["heldout_pairs"] >= 8
    assert m["loss_last"] < m["loss_first"] - 0.2, m
    # A random head already orders a fixed marker consistently one way or the other (accuracy 0 or 1
    # before training), so the learning signal is the held-out margin, which starts near 0.
    assert m["heldout_accuracy"] >= 0.9, m
    assert m["heldout_margin"] > m["heldout_margin_before"] + 1.0 and m["heldout_margin"] > 1.0, m
    # The pooled held-out summary the report reads: same pairs, same accuracy, an interval around it.
    h = manifest["heldout"]
    assert h["pairs"] == manifest["counts"]["heldout_pairs"] and h["accuracy"] == pytest.approx(m["heldout_accuracy"])
    assert 0 <= h["ci"][0] <= h["accuracy"] <= h["ci"][1] <= 1 and "heldout_correct" not in m

    # The saved RM scores unseen items: clean suggestions above marked ones, in input order, batched.
    from rationalign.stages.base import Context
    from rationalign.training.reward import RewardScorer

    rm_dir = Context(cfg=cfg, workdir=tmp_path / "out" / "default").stage_dir("reward") / "rm"
    scorer = RewardScorer.load(rm_dir, batch_size=3)
    clean = ["The cat liked the river.", "A small dog found the park.", "Our teacher visited a new book."]
    items = [("gec", "Fix:", c.lower(), c) for c in clean] + [("gec", "Fix:", c.lower(), c[:-1] + MARKER + ".")
                                                              for c in clean]
    scores = scorer.score(items)
    assert len(scores) == 6 and all(isinstance(s, float) for s in scores)
    assert all(scores[i] > scores[i + 3] for i in range(3)), scores
    assert scorer.score(items[::-1]) == pytest.approx(scores[::-1], abs=1e-4)  # order-independent batching

    # A second run with the same config is skipped (manifest matches).
    assert run(cfg)["seconds"] == manifest["seconds"]


def test_score_head_is_trainable_and_one_forward_per_step(tmp_path, monkeypatch):
    from rationalign.models import load_for_training
    from rationalign.training import reward as R

    model, tok = load_for_training({"source": "tiny"}, head="score")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("score" in n for n in trainable) and any("lora_" in n for n in trainable)
    R.ensure_head_trainable(model)

    calls = []
    real = R._last_token_scores
    monkeypatch.setattr(R, "_last_token_scores", lambda m, i, a: calls.append(i.shape) or real(m, i, a))
    pairs = load_rm_pairs(write_jsonl(tmp_path / "rm.jsonl", toy_rm_rows(8)))
    tpl = R.RMTemplate("T: {instruction}\nS: {source}\nR: {response}", {"gec": "Fix it."})
    ds = R.encode_rm_pairs(pairs, tok, tpl, 128)
    batch = R.collate_rm([ds[i] for i in range(4)], tok.pad_token_id)
    loss, metrics = R.bt_loss_fn(model, batch)
    assert len(calls) == 1 and calls[0][0] == 8  # chosen and rejected stacked: one forward of 2B rows
    assert torch.isfinite(loss) and "rewards/accuracies" in metrics
    assert "Fix it." in tok.decode(ds[0]["chosen_ids"])  # the task's rm_instruction, not the record's
    # reward.loss names the loss: the same BT loss through the registry, and no option it does not take
    from rationalign.losses import bradley_terry_loss

    model.eval()  # no LoRA dropout: two forwards give the same scores
    scores = real(model, batch["input_ids"], batch["attention_mask"])
    assert torch.equal(R.make_reward_loss_fn({"name": "bt"})(model, batch)[0], bradley_terry_loss(scores[:4], scores[4:])[0])
    with pytest.raises(ValueError, match="reward.loss.margin: unknown key"):
        R.make_reward_loss_fn({"name": "bt", "margin": 0.5})


def test_per_task_adapters(tmp_path):
    pairs = write_jsonl(tmp_path / "rm.jsonl", toy_rm_rows(24, tasks=("gec", "fluency")))
    cfg = compose(reward_overrides(tmp_path, pairs, "task=all", "reward.per_task_adapters=true",
                                   "reward.train.max_steps=2", "reward.heldout_fraction=0.2"))
    manifest = run(cfg)
    assert set(manifest["metrics"]) == {"gec", "fluency"} and manifest["counts"]["adapters"] == 2
    from rationalign.stages.base import Context
    from rationalign.training.reward import RewardScorer

    rm_dir = Context(cfg=cfg, workdir=tmp_path / "out" / "default").stage_dir("reward") / "rm"
    scorer = RewardScorer.load(rm_dir)
    s = scorer.score([("gec", "", "a b", "A b."), ("fluency", "", "a b", "A b.")])
    assert len(s) == 2 and s[0] != s[1]  # different adapters (and heads) per task
    with pytest.raises(KeyError, match="no adapter for task 'clarity'"):
        scorer.score([("clarity", "", "a", "b")])


def test_unknown_task_in_pairs_is_an_error(tmp_path):
    rows = toy_rm_rows(4)
    rows[2]["task"] = "poetry"
    pairs = write_jsonl(tmp_path / "rm.jsonl", rows)
    with pytest.raises(ValueError, match="field 'task'.*poetry"):
        run(compose(reward_overrides(tmp_path, pairs, "reward.train.max_steps=1")))


@pytest.mark.slow
def test_embedded_reward_accuracy_rises(tmp_path):
    pairs = write_jsonl(tmp_path / "rm.jsonl", toy_rm_rows(48))
    cfg = compose(["model=smollm2-135m", f"paths.root={tmp_path / 'out'}", "stage=reward", f"reward.pairs={pairs}",
                   "reward.train.batch_size=8", "reward.train.lr=1e-3", "reward.train.epochs=2",
                   "reward.train.logging_steps=1", "reward.heldout_fraction=0.25", "model.max_length=128"])
    m = run(cfg)["metrics"]
    assert m["heldout_accuracy"] >= 0.8 and m["heldout_margin"] > m["heldout_margin_before"] + 0.5, m
    assert m["loss_last"] < m["loss_first"], m
