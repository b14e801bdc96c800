"""reward.per_task_adapters=true (paper App. B.4: "we train a task-specific adapter for each individual
task"): training gives each task its own adapter trained on its own pairs, and every scoring path
(pairs stage, evaluate's reward-model analysis, QUARK's rm reward) scores each item with the
adapter of the item's task."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from rationalign.data.records import Record
from rationalign.runner import compose, run

try:
    from tests.test_reward_trainer import reward_overrides, toy_rm_rows, write_jsonl
except ImportError:  # tests/ is not a package when pytest puts it on sys.path itself
    from test_reward_trainer import reward_overrides, toy_rm_rows, write_jsonl

TASKS = ("gec", "fluency")


@pytest.fixture(scope="module")
def per_task_rm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rm")
    rows = toy_rm_rows(30, tasks=TASKS)
    rows += toy_rm_rows(6, seed=1, tasks=("fluency",))  # unequal counts: 15 gec, 21 fluency
    for i, r in enumerate(rows):
        r["id"] = f"q{i}"
    pairs = write_jsonl(tmp / "rm.jsonl", rows)
    cfg = compose(reward_overrides(tmp, pairs, "task=all", "reward.per_task_adapters=true",
                                   "reward.train.max_steps=3", "reward.heldout_fraction=0.2"))
    manifest = run(cfg)
    from rationalign.stages.base import Context

    rm_dir = Context(cfg=cfg, workdir=Path(cfg.paths.workdir)).stage_dir("reward") / "rm"
    return cfg, manifest, rm_dir, rows


def test_training_gives_each_task_its_own_adapter_on_its_own_pairs(per_task_rm):
    _, manifest, rm_dir, rows = per_task_rm
    meta = json.loads((rm_dir / "reward_model.json").read_text())
    assert meta["adapters"] == {"fluency": "adapter-fluency", "gec": "adapter-gec"}
    n = Counter(r["task"] for r in rows)
    for t in TASKS:
        m = manifest["metrics"][t]
        assert m["train_pairs"] + m["heldout_pairs"] == n[t]  # trained on this task's pairs only
        assert (rm_dir / f"adapter-{t}" / "adapter_config.json").exists()
    heads = [_state(rm_dir / f"adapter-{t}") for t in TASKS]
    assert heads[0].keys() == heads[1].keys()
    assert any(not torch.equal(heads[0][k], heads[1][k]) for k in heads[0])  # trained apart


def _state(adapter_dir):
    from safetensors.torch import load_file

    return load_file(str(adapter_dir / "adapter_model.safetensors"))


def test_scorer_uses_each_tasks_own_adapter(per_task_rm):
    """Scores from the multi-adapter scorer equal those of each task's adapter loaded alone, and
    differ from scoring the same text through the other task's adapter: a scorer that served every
    task through one shared adapter fails here."""
    from rationalign.models import load_trained
    from rationalign.training.reward import RewardScorer

    _, _, rm_dir, _ = per_task_rm
    meta = json.loads((rm_dir / "reward_model.json").read_text())
    scorer = RewardScorer.load(rm_dir)
    items = [("gec", "", "the cat sat on the mat.", "The cat sat on the mat."),
             ("fluency", "", "the cat sat on the mat.", "The cat sat on the mat."),
             ("gec", "", "a small dog found the park.", "A small dog found the park."),
             ("fluency", "", "his friend liked a new book.", "His friend liked a new book.")]
    got = scorer.score(items)
    alone = {}
    for t in TASKS:
        model, tok = load_trained(meta["model"], rm_dir / f"adapter-{t}", head="score")
        alone[t] = RewardScorer(model, tok, scorer.template, scorer.max_length, {t: f"adapter-{t}"})
    for (task, *rest), g in zip(items, got):
        own = alone[task].score([(task, *rest)])[0]
        other_task = TASKS[1 - TASKS.index(task)]
        other = RewardScorer(alone[other_task].model, alone[other_task].tokenizer, scorer.template,
                             scorer.max_length, {"*": "x"}).score([(task, *rest)])[0]
        assert g == pytest.approx(own, abs=1e-5)
        assert abs(g - other) > 1e-4, (task, g, other)
    with pytest.raises(KeyError, match="no adapter for task 'clarity'"):
        scorer.score([("clarity", "", "a", "b")])


class SpyScorer:
    """Records the task each item was scored under; the reward says which task's adapter served it."""

    def __init__(self):
        self.items = []

    def score(self, items):
        self.items.extend(items)
        return [float(len(sug) + 10 * ("gec", "fluency", "simplification").index(task))
                for task, _, _, sug in items]


@pytest.fixture
def spy(monkeypatch):
    from rationalign.training import reward as R

    s = SpyScorer()
    monkeypatch.setattr(R.RewardScorer, "load", classmethod(lambda cls, *a, **k: s))
    return s


def test_pairs_stage_scores_each_candidate_under_its_rows_task(tmp_path, spy):
    from rationalign.stages.pairs import run_pairs

    rows = [{"id": f"{t}-{i}", "task": t, "instruction": "", "source": f"{t} source {i}",
             "candidates": [{"text": f"a{i}", "suggestion": f"A {i}", "rationale": "", "ok": True},
                            {"text": f"b{i}", "suggestion": f"BB {i}", "rationale": "", "ok": True}]}
            for t in ("gec", "fluency", "simplification") for i in range(2)]
    dirs = {"sample": tmp_path / "sample", "reward": tmp_path / "reward"}
    dirs["sample"].mkdir()
    (dirs["sample"] / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    class Ctx:
        cfg = compose(["task=all", "pairs.keep_fraction=1.0"])

        def require(self, name):
            return dirs[name]

        def stage_dir(self, name):
            return dirs[name]

    out = tmp_path / "pairs"
    out.mkdir()
    run_pairs(Ctx(), out)
    by_source = {r["source"]: r["task"] for r in rows}
    assert len(spy.items) == 12 and all(task == by_source[src] for task, _, src, _ in spy.items)


def test_evaluate_reward_analysis_scores_under_each_records_task(tmp_path, spy):
    from rationalign.stages.evaluate import reward_model_analysis, sentence_scores

    records = [Record(id=f"{t}-{i}", task=t, instruction="", source=f"the {t} text {i} .",
                      target=f"The {t} text {i}.") for t in ("fluency", "simplification") for i in range(3)]
    preds = {"sft": {t: [{"id": r.id, "suggestion": r.target} for r in records if r.task == t]
                     for t in ("fluency", "simplification")},
             "aligned": {t: [{"id": r.id, "suggestion": r.source} for r in records if r.task == t]
                         for t in ("fluency", "simplification")}}

    class Ctx:
        cfg = compose(["task=all"])

        def stage_dir(self, name):
            return tmp_path / name

    (tmp_path / "reward" / "rm").mkdir(parents=True)
    reward_model_analysis(Ctx(), records, preds, sentence_scores(Ctx.cfg, records, preds))
    by_source = {r.source: r.task for r in records}
    assert len(spy.items) == 12 and all(task == by_source[src] for task, _, src, _ in spy.items)


def test_quark_rm_reward_scores_under_each_records_task(tmp_path, spy):
    from rationalign.quark.rewards import RewardEnv, Sample, build_reward

    reward = build_reward("rm", RewardEnv(rm_dir=tmp_path))
    samples = [Sample(Record(id=f"{t}{i}", task=t, instruction="", source=f"{t} src {i}", target="x"), f"S{i}",
                      "r") for t in ("gec", "fluency") for i in range(3)]
    reward.score(samples)
    assert [task for task, *_ in spy.items] == [s.record.task for s in samples]
