"""Issue 12 bugs: every stage prompts and parses in the mode SFT trained with, and answers stopped
at the rationale marker (evaluate.stop_at_rationale) count as well formed."""

from pathlib import Path

from rationalign.data.splits import load_split
from rationalign.responses import format_response, parse_stopped_response
from rationalign.runner import compose
from rationalign.stages.base import Context


def _cfg(tmp_path, *extra):
    return compose(["model=tiny", "task=gec", f"paths.root={tmp_path}", "data.max_labeled_per_task=2",
                    "data.max_unlabeled_per_task=2", "data.max_test_per_task=2", *extra])


def test_sft_without_rationale_makes_sample_align_and_evaluate_drop_it_too(tmp_path):
    from rationalign.stages.align import user_messages
    from rationalign.stages.common import response_position, user_message
    from rationalign.stages.evaluate import resolve_system
    from rationalign.stages.sample import parse_candidates
    from rationalign.stages.sft import sft_examples
    from rationalign.training.pairs_io import PrefPair

    cfg = _cfg(tmp_path, "sft.use_rationale=false")
    rec = load_split(cfg, "labeled")[0]
    sft_prompt = sft_examples(cfg, [rec])[0].prompt
    assert sft_examples(cfg, [rec])[0].completion == rec.target  # trained on the bare suggestion
    # Sampling prompts as SFT trained, and a bare suggestion is a well-formed sample.
    assert user_message(cfg, rec) == sft_prompt
    [cand] = parse_candidates(cfg, ["A better sentence ."])
    assert cand["ok"] and cand["suggestion"] == "A better sentence ." and cand["reason"] == ""
    # Alignment prompts as SFT trained.
    pair = PrefPair(id=rec.id, task=rec.task, instruction=rec.instruction, source=rec.source,
                    chosen="a", rejected="b")
    assert user_messages(cfg, [pair], Path("d_h.jsonl")) == [sft_prompt]
    # Evaluation of the SFT system prompts and parses without a rationale.
    _, sys_cfg = resolve_system(Context(cfg=cfg, workdir=Path(cfg.paths.workdir)), "base")
    assert response_position(sys_cfg) == "none"

    # The default (rationale after) still prompts for and expects one.
    cfg_r = _cfg(tmp_path)
    assert response_position(cfg_r) == "after"
    assert user_message(cfg_r, rec) == sft_examples(cfg_r, [rec])[0].prompt != sft_prompt
    assert not parse_candidates(cfg_r, ["A better sentence ."])[0]["ok"]


def test_a_stopped_answer_is_well_formed_and_one_without_the_marker_is_not():
    full = format_response("I went home .", "The word go should be replaced by went because past.", "after")
    stopped = full[: full.index("Explanation:") + len("Explanation:")]
    p = parse_stopped_response(stopped)
    assert (p.suggestion, p.rationale, p.ok, p.reason) == ("I went home .", "", True, "")
    q = parse_stopped_response("I went home .")  # ran out of tokens / eos before the marker
    assert (q.suggestion, q.ok, q.reason) == ("I went home .", False, "missing rationale marker")
    assert parse_stopped_response("Explanation:").reason == "empty suggestion"
    assert not parse_stopped_response(None).ok
    assert parse_stopped_response("Revised text: I went home .\nExplanation:").suggestion == "I went home ."


class _StoppingEngine:
    """Stands in for an engine that honours `stop` as HF and vLLM do: the stop string stays in the text."""

    def __init__(self):
        self.stops = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def generate(self, prompts, temperature, max_new_tokens, stop=None):
        self.stops.append(stop)
        return [f"revision {i} .\n{stop[0]}" if stop else f"revision {i} ." for i, _ in enumerate(prompts)]


def test_evaluate_with_stop_at_rationale_counts_stopped_answers_well_formed(tmp_path, monkeypatch):
    from rationalign import engines
    from rationalign.stages.evaluate import generate_predictions, score_system

    engine = _StoppingEngine()
    monkeypatch.setattr(engines, "build_engine", lambda cfg, adapter=None: engine)
    cfg = _cfg(tmp_path, "evaluate.stop_at_rationale=true")
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    records = load_split(cfg, "test")
    preds = generate_predictions(ctx, tmp_path / "ev", "base", records)
    assert engine.stops == [["Explanation:"]]
    rows = preds["gec"]
    assert [r["suggestion"] for r in rows] == [f"revision {i} ." for i in range(len(records))]
    assert all(r["ok"] for r in rows)
    cells = score_system(cfg, records, preds)
    assert sum(c["malformed"] for c in cells.values()) == 0
