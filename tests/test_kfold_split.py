"""K-fold RM pairs (paper Sec. 3.2): each fold's model never trains on the inputs it samples for,
every labeled input is held out exactly once, an interrupted run resumes at the next fold, and the
pairs are ordered by the task metric. Training and sampling are replaced by a recorder."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rationalign.data.records import Record
from rationalign.runner import compose, run
from rationalign.stages import kfold as K
from rationalign.stages.base import Context


def records(n):
    return [Record(id=f"r{i}", task="fluency", instruction="Fix:", source=f"s{i}", target=f"t{i}") for i in range(n)]


@pytest.mark.parametrize("n, k", [(10, 3), (7, 7), (12, 4), (5, 2)])
def test_folds_partition_the_records_evenly(n, k):
    folds = K.assign_folds(records(n), k, seed=3)
    sizes = Counter(folds)
    assert set(sizes) == set(range(k))
    assert max(sizes.values()) - min(sizes.values()) <= 1 and sum(sizes.values()) == n
    assert folds == K.assign_folds(records(n), k, seed=3)  # seeded
    assert any(K.assign_folds(records(n), k, seed=s) != folds for s in range(4, 10))  # the seed matters


def test_folds_are_a_shuffle_not_blocks():
    folds = K.assign_folds(records(40), 2, seed=0)
    assert folds != [i % 2 for i in range(40)] and folds != sorted(folds)


OVER = ["stage=kfold", "model=tiny", "task=fluency", "kfold.k=3", "data.max_labeled_per_task=7"]


class Recorder:
    """Stands in for K._train_and_sample: records (train ids, held ids); the held-out samples are
    the gold target (best) and a degraded copy of the source (worst)."""

    def __init__(self, fail_at_fold: int | None = None):
        self.calls: list[tuple[str, set[str], set[str]]] = []
        self.fail_at_fold = fail_at_fold

    def __call__(self, ctx, fold_dir: Path, train, held):
        fold = int(fold_dir.name.split("_")[1])
        self.calls.append((fold_dir.name, {r.id for r in train}, {r.id for r in held}))
        if fold == self.fail_at_fold:
            self.fail_at_fold = None
            raise KeyboardInterrupt("simulated kill in fold training")
        return [{"id": r.id, "samples": [r.target, "zz qq " + r.source + " zz"]} for r in held]


def _labeled_ids(cfg):
    from rationalign.data.splits import load_split

    return {r.id for r in load_split(cfg, "labeled") if r.target is not None}


def test_each_fold_trains_only_on_other_folds_and_every_input_is_held_out_once(tmp_path, monkeypatch):
    cfg = compose([*OVER, f"paths.root={tmp_path}"])
    rec = Recorder()
    monkeypatch.setattr(K, "_train_and_sample", rec)
    m = run(cfg)
    ids = _labeled_ids(cfg)
    assert len(ids) == 7 and [c[0] for c in rec.calls] == ["fold_0", "fold_1", "fold_2"]
    held_all = [i for _, _, held in rec.calls for i in held]
    assert sorted(held_all) == sorted(ids)  # each input held out exactly once
    for _, train, held in rec.calls:
        assert held and not (train & held)
        assert train | held == ids
    # ranked by the metric: the gold target beats the degraded source on every input
    out = Context(cfg, Path(cfg.paths.workdir)).stage_dir("kfold")
    pairs = [json.loads(x) for x in (out / "rm_pairs.jsonl").read_text().splitlines()]
    assert m["counts"]["pairs"] == len(pairs) == 7
    by_id = {r.id: r for r in _records(cfg)}
    for p in pairs:
        assert p["chosen"] == by_id[p["id"]].target.strip() and p["chosen_score"] > p["rejected_score"]


def _records(cfg):
    from rationalign.data.splits import load_split

    return load_split(cfg, "labeled")


def test_interrupted_kfold_resumes_at_the_next_fold_with_identical_pairs(tmp_path, monkeypatch):
    cfg = compose([*OVER, f"paths.root={tmp_path / 'a'}"])
    rec = Recorder(fail_at_fold=1)
    monkeypatch.setattr(K, "_train_and_sample", rec)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert [c[0] for c in rec.calls] == ["fold_0", "fold_1"]
    run(cfg)
    assert [c[0] for c in rec.calls] == ["fold_0", "fold_1", "fold_1", "fold_2"]  # fold 0 not retrained
    assert rec.calls[1][1:] == rec.calls[2][1:]  # the resumed fold has the same split
    resumed = (Context(cfg, Path(cfg.paths.workdir)).stage_dir("kfold") / "rm_pairs.jsonl").read_text()

    clean = compose([*OVER, f"paths.root={tmp_path / 'b'}"])
    monkeypatch.setattr(K, "_train_and_sample", Recorder())
    run(clean)
    assert (Context(clean, Path(clean.paths.workdir)).stage_dir("kfold") / "rm_pairs.jsonl").read_text() == resumed


def test_rank_pairs_orders_by_metric_and_counts_ties():
    cfg = compose(["task=fluency"])
    recs = [Record(id="a", task="fluency", instruction="Fix:", source="he go home .", target="He goes home ."),
            Record(id="b", task="fluency", instruction="Fix:", source="x y", target="x y z"),
            Record(id="c", task="fluency", instruction="Fix:", source="one two", target="one three")]
    samples = {"a": ["zz zz", "He goes home ."], "b": [" only ", "only", ""], "c": ["one four", "one five"]}
    pairs, dropped = K.rank_pairs(cfg, recs, samples, seed=0)
    assert dropped == {"fewer_than_two_distinct_samples": 1, "metric_tie": 1, "over_pairs_per_input": 0}
    assert len(pairs) == 1 and pairs[0]["id"] == "a"
    assert pairs[0]["chosen"] == "He goes home ." and pairs[0]["rejected"] == "zz zz"
    assert pairs[0]["chosen_score"] > pairs[0]["rejected_score"]


def _four_samples():
    rec = Record(id="a", task="fluency", instruction="Fix:", source="he go home .", target="He goes home now .")
    # Four distinct samples with four distinct BLEU scores against the gold: six ranked pairs.
    samples = {"a": ["He goes home now .", "He goes home .", "He home .", "zz"]}
    return rec, samples


def test_rank_pairs_keeps_every_ranked_pair_per_input_by_default():
    rec, samples = _four_samples()
    pairs, dropped = K.rank_pairs(compose(["task=fluency"]), [rec], samples, seed=0)
    assert len(pairs) == 6 and sum(dropped.values()) == 0
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {
        (a, b) for i, a in enumerate(samples["a"]) for b in samples["a"][i + 1:]}  # listed best first
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)


def test_rank_pairs_caps_pairs_per_input():
    rec, samples = _four_samples()
    capped, dropped = K.rank_pairs(compose(["task=fluency", "kfold.pairs_per_input=2"]), [rec], samples, seed=0)
    assert len(capped) == 2 and dropped["over_pairs_per_input"] == 4
    again, _ = K.rank_pairs(compose(["task=fluency", "kfold.pairs_per_input=2"]), [rec], samples, seed=0)
    assert again == capped  # seeded
    every, _ = K.rank_pairs(compose(["task=fluency"]), [rec], samples, seed=0)
    assert {(p["chosen"], p["rejected"]) for p in capped} <= {(p["chosen"], p["rejected"]) for p in every}
    assert len({p["id"] for p in every}) == 6  # one id per pair: pairs files need unique ids


def test_reward_min_metric_gap_keeps_clear_pairs_and_needs_scores(tmp_path):
    import pytest

    from rationalign.stages.reward import apply_min_gap
    from rationalign.training.pairs_io import RMPair

    def pair(c, r):
        return RMPair(id="a", task="fluency", instruction="", source="s", chosen="x", rejected="y",
                      chosen_score=c, rejected_score=r)

    pairs = [pair(50.0, 10.0), pair(30.0, 25.0), pair(40.0, 30.0)]
    assert apply_min_gap(pairs, 0.0, tmp_path) == (pairs, 0)
    assert apply_min_gap(pairs, 10.0, tmp_path) == ([pairs[0]], 2)  # a gap of exactly 10 is not > 10
    with pytest.raises(ValueError, match=r"line 2: reward.min_metric_gap=5.0 needs 'chosen_score'"):
        apply_min_gap([pairs[0], pair(None, None)], 5.0, tmp_path / "rm.jsonl")


def test_kfold_models_train_as_the_sft_model_unless_set():
    cfg = compose(["sft.train.epochs=4", "sft.train.lr=1e-3", "sft.train.batch_size=8"])
    t = K.kfold_train(cfg)
    assert (t.epochs, t.lr, t.batch_size) == (4, 1e-3, 8)
    t = K.kfold_train(compose(["sft.train.epochs=4", "kfold.train.epochs=1"]))
    assert (t.epochs, t.lr) == (1, compose([]).sft.train.lr)  # only the set value differs
