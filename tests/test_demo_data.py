"""The shipped demo data: equal to a fresh regeneration, valid, balanced, no test leakage."""

from __future__ import annotations

import collections

import pytest

from rationalign.data import demo_rules
from rationalign.data import make_demo as demo
from rationalign.data.records import load_records
from rationalign.data.tasks import TASKS

DEMO_DIR = demo.SENTENCES_FILE.parent
SPLITS = ("labeled", "unlabeled", "dev", "test")


@pytest.fixture(scope="module")
def shipped():
    return {s: load_records(DEMO_DIR / f"{s}.jsonl") for s in SPLITS}  # validates every record


def test_shipped_files_equal_fresh_regeneration(tmp_path):
    demo.main(["--out", str(tmp_path)])
    for s in SPLITS:
        fresh = (tmp_path / f"{s}.jsonl").read_bytes()
        assert (DEMO_DIR / f"{s}.jsonl").read_bytes() == fresh, (
            f"{s}.jsonl drifted: run python -m rationalign.data.make_demo --out rationalign/data/demo")


def test_every_task_in_every_split_balanced(shipped):
    sizes = {"labeled": 40, "unlabeled": 30, "dev": 10, "test": 15}
    for s, recs in shipped.items():
        counts = collections.Counter(r.task for r in recs)
        assert counts == {t: sizes[s] for t in TASKS}, (s, counts)


def test_ids_unique_across_splits(shipped):
    ids = [r.id for recs in shipped.values() for r in recs]
    assert len(ids) == len(set(ids))


def test_no_test_source_in_training(shipped):
    train = {r.source for s in ("labeled", "unlabeled") for r in shipped[s]}
    assert not [r.id for r in shipped["test"] if r.source in train]
    # stronger: the underlying written sentences are disjoint too
    train_idx = {r.meta["sentence"] for s in ("labeled", "unlabeled") for r in shipped[s]}
    assert not train_idx & {r.meta["sentence"] for r in shipped["test"]}


def test_dev_is_held_out_like_test(shipped):
    """No dev source in any other split; no dev sentence in training in any form, nor in the same
    task's test."""
    others = {r.source for s in ("labeled", "unlabeled", "test") for r in shipped[s]}
    assert not [r.id for r in shipped["dev"] if r.source in others]
    train_idx = {r.meta["sentence"] for s in ("labeled", "unlabeled") for r in shipped[s]}
    assert not train_idx & {r.meta["sentence"] for r in shipped["dev"]}
    test_idx = {(r.task, r.meta["sentence"]) for r in shipped["test"]}
    assert not test_idx & {(r.task, r.meta["sentence"]) for r in shipped["dev"]}


def test_adding_dev_left_the_other_splits_unchanged():
    """dev is drawn last with its own RNG: any dev size gives the same labeled/unlabeled/test."""
    a, b = demo.generate(n_dev=0), demo.generate(n_dev=12)
    for s in ("labeled", "unlabeled", "test"):
        assert [r.to_dict() for r in a[s]] == [r.to_dict() for r in b[s]]
    assert len(a["dev"]) == 0 and len(b["dev"]) == 12 * len(TASKS)


def test_split_fields(shipped):
    for r in shipped["labeled"]:
        assert r.target and r.target != r.source and r.references is None
    for r in shipped["unlabeled"]:
        assert r.target is None
    for r in shipped["test"] + shipped["dev"]:
        assert r.references and r.references[0] == r.target and r.source not in r.references
    for recs in shipped.values():
        for r in recs:
            assert len(r.source.split()) <= demo.MAX_SOURCE_WORDS
            assert r.meta["rules"] and all(n in demo.RULES[r.task] for n in r.meta["rules"])


def test_targets_are_written_sentences_except_paraphrase(shipped):
    written = set(demo.CLEAN_SENTENCES)
    for r in shipped["labeled"] + shipped["test"]:
        if r.task == "paraphrase":
            assert r.source in written and r.target not in written
        else:
            assert r.target in written


def test_generation_depends_on_seed_and_sizes():
    a = demo.generate(seed=1, n_labeled=5, n_unlabeled=3, n_test=2)
    b = demo.generate(seed=1, n_labeled=5, n_unlabeled=3, n_test=2)
    c = demo.generate(seed=2, n_labeled=5, n_unlabeled=3, n_test=2)
    assert [r.to_dict() for r in a["labeled"]] == [r.to_dict() for r in b["labeled"]]
    assert [r.source for r in a["labeled"]] != [r.source for r in c["labeled"]]
    assert len(a["test"]) == 2 * len(TASKS)
    with pytest.raises(ValueError, match="only .* examples for requested"):
        demo.generate(n_test=500)


def test_some_rules_behave():
    import random
    rng = random.Random(0)
    assert demo_rules.GEC_RULES["agreement"]("The cat is here.", rng) == "The cat are here."
    assert demo_rules.GEC_RULES["article_drop"]("I saw the dog.", rng) == "I saw dog."
    assert demo_rules.CLARITY_RULES["because_wordy"]("It fell because of rain.", rng) is None
    assert demo_rules.PARAPHRASE_RULES["front_time"]("We met the mayor on Sunday.", rng) == \
        "On Sunday, we met the mayor."
    assert demo_rules.FORMALITY_RULES["contraction"]("I am sure it is not late.", rng) == "I'm sure it's not late."
