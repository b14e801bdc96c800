"""Issue 27's surviving mutants: each stage scores, samples and reports what the method says, checked
on purpose (experiments/hand_mutations.py applies each break and runs these):
- a report's SARI cell is corpus SARI, not the mean of sentence SARI;
- a malformed answer is scored on its suggestion, never on the raw text with the rationale marker;
- stage=sample passes engine.sampling (top_p 0.9 of App. B.4, ...) to the engine;
- stage=pairs asks the reward model about the suggestion only, never suggestion + rationale."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from rationalign.data.records import Record
from rationalign.metrics.sari import corpus_sari, sentence_sari
from rationalign.runner import compose
from rationalign.stages.base import Context

SIMPLE = [
    Record(id="s1", task="simplification", instruction="Simplify:", source="The cat , which was very old , slept .",
           target="The old cat slept .", references=["The old cat slept .", "The cat slept ."]),
    Record(id="s2", task="simplification", instruction="Simplify:", source="He departed from the station at noon .",
           target="He left the station at noon .", references=["He left the station at noon .", "He left at noon ."]),
]
PREDS = ["The old cat slept .", "He departed at noon ."]


def test_sari_cell_is_corpus_sari_not_the_sentence_mean():
    from rationalign.stages.evaluate import score_column

    sources, refs = [r.source for r in SIMPLE], [r.gold for r in SIMPLE]
    corpus = corpus_sari(sources, PREDS, refs)
    mean = sum(sentence_sari(s, p, g) for s, p, g in zip(sources, PREDS, refs)) / len(PREDS)
    assert abs(corpus - mean) > 1.0  # the case tells the two apart
    cell = score_column(["sari"], SIMPLE, PREDS)
    assert cell["metric"] == "sari" and cell["score"] == pytest.approx(corpus, abs=1e-9)


class RecordingEngine:
    def __init__(self, outputs=None):
        self.outputs = outputs or {}
        self.sample_calls: list[dict] = []

    def generate(self, prompts, **kw):
        return [self.outputs[i] for i in range(len(prompts))]

    def sample(self, prompts, n, **kw):
        self.sample_calls.append({"n": n, **kw})
        return [[f"Answer {i}.{j}\nExplanation: because {j}." for j in range(n)] for i in range(len(prompts))]

    def close(self):
        pass


def test_malformed_answer_is_scored_on_its_suggestion(tmp_path, monkeypatch):
    import rationalign.engines as E
    from rationalign.stages import evaluate as V

    cfg = compose(["model=tiny", "task=gec", f"paths.root={tmp_path}"])  # rationale after the suggestion
    recs = [Record(id=f"g{i}", task="gec", instruction="Fix:", source=f"She go home {i} .", target=f"She goes home {i} .")
            for i in range(3)]
    engine = RecordingEngine({0: "She goes home 0 .\nExplanation: the verb agrees with she.",
                              1: "She goes home 1 .\nExplanation:",  # malformed: empty rationale
                              2: ""})  # nothing at all

    @contextmanager
    def fake_build_engine(*a, **k):
        yield engine

    monkeypatch.setattr(E, "build_engine", fake_build_engine)
    monkeypatch.setattr(V, "resolve_system", lambda ctx, name: (None, cfg))
    rows = V.generate_predictions(Context(cfg=cfg, workdir=tmp_path), tmp_path / "eval", "sft", recs)["gec"]
    assert [r["ok"] for r in rows] == [True, False, False]
    assert [r["suggestion"] for r in rows] == ["She goes home 0 .", "She goes home 1 .", "She go home 2 ."]


def test_sample_stage_passes_the_configured_sampling_to_the_engine(tmp_path, monkeypatch):
    import rationalign.engines as E
    from rationalign.stages.sample import sample_records

    engine = RecordingEngine()
    monkeypatch.setattr(E, "build_engine", lambda *a, **k: engine)
    cfg = compose(["model=tiny", "task=gec", "sample.shard_size=2", "sample.max_new_tokens=40",
                   "engine.sampling.top_p=0.85", "engine.sampling.top_k=7", "engine.sampling.temperature=0.9",
                   "engine.sampling.presence_penalty=0.3", f"paths.root={tmp_path}"])
    recs = [Record(id=f"u{i}", task="gec", instruction="Fix:", source=f"He go {i} .") for i in range(3)]
    rows = sample_records(Context(cfg=cfg, workdir=tmp_path), tmp_path / "sample", recs, tmp_path / "adapter", m=3)
    assert len(rows) == 3 and len(engine.sample_calls) == 2  # two shards
    for call in engine.sample_calls:
        assert call["n"] == 3 and call["top_p"] == 0.85 and call["top_k"] == 7 and call["temperature"] == 0.9
        assert call["presence_penalty"] == 0.3 and call["max_new_tokens"] == 40
    assert compose([]).engine.sampling.top_p == 0.9  # the paper's App. B.4 default reaches the same call


def test_pairs_stage_scores_the_suggestion_not_the_rationale(tmp_path, monkeypatch):
    from rationalign.stages.pairs import run_pairs
    from rationalign.training import reward as R

    def cand(sugg, why):
        return {"text": f"{sugg}\nExplanation: {why}", "suggestion": sugg, "rationale": why, "ok": True, "reason": ""}

    # The long rationale sits on the short suggestion: scoring the whole text would invert the choice.
    rows = [{"id": f"u{i}", "task": "gec", "instruction": "Fix:", "source": f"He go {i} .",
             "candidates": [cand(f"He goes {i} .", "a very long explanation of the verb agreement rule here"),
                            cand(f"He goes to school {i} .", "short")]} for i in range(4)]
    sample_dir = tmp_path / "sample"
    sample_dir.mkdir()
    (sample_dir / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    class LengthScorer:  # a reward model that prefers longer texts
        def __init__(self):
            self.asked: list[str] = []

        def score(self, items):
            self.asked.extend(text for *_, text in items)
            return [float(len(text)) for *_, text in items]

    scorer = LengthScorer()
    monkeypatch.setattr(R.RewardScorer, "load", classmethod(lambda cls, *a, **k: scorer))
    cfg = compose(["model=tiny", "task=gec", "pairs.keep_fraction=1.0", f"paths.root={tmp_path}"])
    ctx = Context(cfg=cfg, workdir=tmp_path)
    monkeypatch.setattr(ctx, "require", lambda name: {"sample": sample_dir, "reward": tmp_path / "reward"}[name])
    out = tmp_path / "pairs"
    out.mkdir()
    m = run_pairs(ctx, out)
    assert sorted(scorer.asked) == sorted(c["suggestion"] for r in rows for c in r["candidates"])
    d_h = [json.loads(line) for line in Path(out / "d_h.jsonl").read_text().splitlines()]
    assert m["counts"]["pairs"] == 4
    assert all(p["chosen_suggestion"].startswith("He goes to school") for p in d_h)
