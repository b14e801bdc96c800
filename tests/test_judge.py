"""stage=judge against a scripted local judge server: pairwise win rate (order shuffled, k repeats,
mapped back to A/B), rubric scores, rationale accuracy, HTTP faults (429/500) and malformed answers
(re-asked, then counted, never guessed); plus the parsers and confidence intervals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from rationalign.judge import bootstrap_ci, wilson
from rationalign.judge.config import JudgeConfig, parse_judge_config
from rationalign.judge.pairwise import a_first_order, aggregate, outcome
from rationalign.judge.parsing import parse_accuracy, parse_pairwise, parse_rubric
from rationalign.judge.tables import render
from rationalign.runner import compose, run

try:
    from tests.chat_server import ChatServer
except ImportError:  # tests/ is not a package when pytest puts it on sys.path itself
    from chat_server import ChatServer

CONF = Path(__file__).resolve().parents[1] / "conf" / "judge"
ASPECTS = ["grammaticality", "fluency", "coherence", "consistency"]


class JudgeServer(ChatServer):
    """ChatServer whose successful answers come from `answer(messages, n)` (faults still injectable)."""

    def __init__(self, answer, **kw):
        super().__init__(**kw)
        self.answer = answer

    def _respond(self, h, fault, prompt, auth, body):
        if fault is not None:
            return super()._respond(h, fault, prompt, auth, body)
        self._send(h, 200, {"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": self.answer(body["messages"])}}]})


def judge_answer(messages):
    """Prefers the answer containing GOOD; garbles some items, once (re-ask works) or always."""
    first = messages[0]["content"]
    reask = len(messages) > 1
    if "Answer 1:" in first:
        if "ALWAYS-BAD-JUDGE" in first:
            return "Both have merits."
        if "ONCE-BAD-JUDGE" in first and not reask:
            return "Winner: 1 or maybe Winner: 2"  # ambiguous: unparseable, not guessed
        one = first.split("Answer 1:")[1].split("Answer 2:")[0]
        return "Reason: clearer.\nWinner: 1" if "GOOD" in one else "Reason: clearer.\nWinner: 2"
    if "grammaticality: <1-5>" in first:
        resp = first.split("Answer:\n")[1]
        if "ALWAYS-BAD-JUDGE" in resp:
            return "grammaticality: 5\nfluency: 4"  # an aspect missing
        s = 5 if "GOOD" in resp else 2
        return f"grammaticality: {s}\nfluency: {s - 1}\ncoherence: {s}\nconsistency: {s - 1}"
    if "Accurate: yes" in first:
        expl = first.split("Explanation: ")[-1]
        return "Fine.\nAccurate: yes" if "GOOD" in expl else "It invents a change.\nAccurate: no"
    return "?"


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def setup(tmp_path):
    """A test split of 8 inputs and predictions of two systems laid out like the evaluate stage's."""
    recs, good, bad = [], [], []
    for i in range(8):
        tag = " ONCE-BAD-JUDGE" if i == 2 else " ALWAYS-BAD-JUDGE" if i == 5 else ""
        src = f"he go to school number {i}{tag}."
        recs.append({"id": f"t{i}", "task": "gec", "instruction": "Fix the grammar:", "source": src,
                     "target": src.replace("he go", "He goes")})
        fixed = src.replace("he go", "He goes")
        good.append({"id": f"t{i}", "output": f"{fixed}\nExplanation: GOOD fix of go.", "suggestion": fixed,
                     "rationale": "GOOD: The word \"go\" should be replaced by \"goes\".", "ok": True})
        bad.append({"id": f"t{i}", "output": f"{src}\nExplanation: no change.", "suggestion": src,
                    "rationale": "The word \"school\" should be deleted." if i % 2 else None, "ok": True})
    test = write_jsonl(tmp_path / "test.jsonl", recs)
    pred = tmp_path / "eval"
    write_jsonl(pred / "predictions" / "good" / "gec.jsonl", good)
    write_jsonl(pred / "predictions" / "bad" / "gec.jsonl", bad)
    return test, pred


def overrides(tmp_path, srv, test, pred, *extra):
    return ["model=tiny", f"paths.root={tmp_path / 'out'}", "stage=judge", f"data.test={test}",
            f"judge.predictions_dir={pred}", "judge.systems=[bad,good]", f"judge.base_url={srv.base_url}",
            "judge.api_key_env=null", "judge.backoff_base_s=0.01", f"judge.cache_dir={tmp_path / 'cache'}",
            "judge.model=judge-test", "judge.concurrency=3", *extra]


def test_judge_stage_tables_faults_and_malformed(setup, tmp_path):
    test, pred = setup
    with JudgeServer(judge_answer, retry_after="0") as srv:
        srv.inject("429", "500", "429")
        cfg = compose(overrides(tmp_path, srv, test, pred))
        m = run(cfg)
        assert srv.faults_served == 3
        res = m["metrics"]
        (pw,) = res["pairwise"]
        assert (pw["a"], pw["b"]) == ("good", "bad")                 # default: last system vs the others
        # 8 inputs x k=3; t5 never parses (counted, no verdict), t2 parses after one re-ask.
        assert pw["judgements"] == 24 and pw["unparsed"] == 3 and pw["failed"] == 0
        assert pw["items"] == 7 and pw["win"] == 7 and pw["loss"] == 0 and pw["no_verdict_items"] == 1
        assert pw["win_rate"] == 1.0 and pw["win_rate_ci"][0] < 1.0 and pw["win_rate_ci"][1] == 1.0
        assert 0.3 <= pw["a_first_fraction"] <= 0.7                 # the order really is shuffled
        rub = res["rubric"]
        assert rub["good"]["unparsed"] == 1 and rub["good"]["scored"] == 7
        assert rub["good"]["aspects"]["grammaticality"]["mean"] == 5 and rub["bad"]["aspects"]["fluency"]["mean"] == 1
        acc = res["rationale_accuracy"]
        assert acc["good"]["checked"] == 8 and acc["good"]["accuracy"] == 1.0
        assert acc["bad"]["checked"] == 4 and acc["bad"]["accuracy"] == 0.0 and acc["bad"]["no_rationale"] == 4
        assert m["counts"]["pairwise"]["re_asked"] >= 3

        out = Path(m["report"]).parent
        rows = [json.loads(x) for x in (out / "judgements" / "pairwise.jsonl").read_text().splitlines()]
        assert len(rows) == 24 and all(r["prompt"] and r["raw"] for r in rows)
        t2 = [r for r in rows if r["id"] == "t2"]
        assert all(r["attempts"] == 2 and r["outcome"] == "win" for r in t2)
        t5 = [r for r in rows if r["id"] == "t5"]
        assert all(r["outcome"] is None and r["value"] is None and r["error"].startswith("unparseable")
                   and r["attempts"] == 3 for r in t5)                # parse_retries=2 -> 3 answers, no guess
        # verdicts were mapped back through the shown order: "Winner: 2" is a win when A was shown second
        assert {(r["a_first"], r["value"]) for r in rows if r["value"]} == {(True, "1"), (False, "2")}
        md = (out / "judge.md").read_text()
        assert "## Pairwise win rate" in md and "| good | bad | 7 | 7 | 0 | 0 | 100.0 [" in md
        assert "## Rubric scores" in md and "## Rationale accuracy" in md
        assert json.loads((out / "judge.json").read_text())["results"]["pairwise"][0]["win"] == 7

        n = srv.requests
        run(compose(overrides(tmp_path, srv, test, pred, "judge.ci_level=0.9")))   # new tables, cached answers
        assert srv.requests == n


def test_judge_options_select_work(setup, tmp_path):
    test, pred = setup
    with JudgeServer(judge_answer) as srv:
        m = run(compose(overrides(tmp_path, srv, test, pred, "judge.rubric=false", "judge.rationale_accuracy=false",
                                  "judge.k=1", "judge.max_items=3", "judge.comparisons=[[bad,good]]")))
        (pw,) = m["metrics"]["pairwise"]
        assert set(m["metrics"]) == {"pairwise"} and (pw["a"], pw["b"]) == ("bad", "good")
        assert pw["judgements"] == 3 and pw["loss"] == 3 and pw["win_rate"] == 0.0
        assert srv.requests == 3 + 1  # t2's ambiguous first answer is re-asked once


def test_identical_answers_are_ties_without_asking(setup, tmp_path):
    test, pred = setup
    import shutil

    shutil.copytree(pred / "predictions" / "good", pred / "predictions" / "same")
    with JudgeServer(judge_answer) as srv:
        m = run(compose(overrides(tmp_path, srv, test, pred, "judge.systems=[same,good]", "judge.rubric=false",
                                  "judge.rationale_accuracy=false")))
        (pw,) = m["metrics"]["pairwise"]
        assert srv.requests == 0 and pw["tie"] == 8 and pw["identical_items"] == 8 and pw["judgements"] == 0


# ------------------------------------------------------------------------------------ units
def test_parsers_never_guess():
    assert parse_pairwise("Reason.\nWinner: 2") == "2" and parse_pairwise("**Winner:** tie") == "tie"
    assert parse_pairwise("Winner: 1 ... Winner: 2") is None and parse_pairwise("Answer 1 is better") is None
    assert parse_accuracy("Accurate: Yes") is True and parse_accuracy("accurate: no") is False
    assert parse_accuracy("Accurate: yes. Accurate: no") is None
    full = "grammaticality: 4\nfluency: 5/5\ncoherence: 3\nconsistency: 2"
    assert parse_rubric(full, ASPECTS) == {"grammaticality": 4, "fluency": 5, "coherence": 3, "consistency": 2}
    assert parse_rubric("grammaticality: 4\nfluency: 5", ASPECTS) is None
    assert parse_rubric(full.replace("2", "7"), ASPECTS) is None


def test_outcome_mapping_and_balanced_order():
    assert outcome("1", True) == "win" and outcome("1", False) == "loss"
    assert outcome("2", False) == "win" and outcome("tie", False) == "tie" and outcome(None, True) is None
    orders = [a_first_order(0, "a", "b", f"i{i}", 2) for i in range(200)]
    assert all(o[0] != o[1] for o in orders)                            # each input sees both orders
    assert 0.35 < sum(o[0] for o in orders) / 200 < 0.65


def test_aggregate_counts_per_input():
    rows = [{"id": "x", "outcome": "win", "a_first": True, "error": None},
            {"id": "x", "outcome": "loss", "a_first": False, "error": None},
            {"id": "x", "outcome": "win", "a_first": True, "error": None},      # x: 2/3 -> win
            {"id": "y", "outcome": "tie", "a_first": True, "error": None},      # y: tie
            {"id": "z", "outcome": None, "a_first": False, "error": "unparseable after 3 answer(s)"}]
    r = aggregate(rows, 0.95, 200, 0)
    assert (r["items"], r["win"], r["tie"], r["loss"], r["unparsed"]) == (2, 1, 1, 0, 1)
    assert r["score"] == pytest.approx((2 / 3 + 0.5) / 2)
    md = render({"pairwise": [{"a": "A", "b": "B", **r}]}, {"model": "m", "k": 3, "ci_level": 0.95, "aspects": ASPECTS})
    assert "| A | B | 2 | 1 | 1 | 0 | 50.0 [" in md


def test_confidence_intervals():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) is None and wilson(0, 5)[0] == 0.0
    vals = [0, 1] * 20
    ci = bootstrap_ci(vals, 0.95, 500, seed=1)
    assert ci == bootstrap_ci(vals, 0.95, 500, seed=1) and ci[0] < 0.5 < ci[1]


def test_config_validation_and_yaml_defaults():
    with pytest.raises(ValueError, match=r"judge\.token: secrets are never read"):
        parse_judge_config({"token": "x"})
    with pytest.raises(ValueError, match=r"judge\.kk: unknown key"):
        parse_judge_config({"kk": 3})
    with pytest.raises(ValueError, match=r"judge\.pairwise_prompt: template lacks"):
        parse_judge_config({"pairwise_prompt": "{response_1} only"})
    y = yaml.safe_load((CONF / "default.yaml").read_text())
    d = JudgeConfig()
    for key in ("pairwise_prompt", "rubric_prompt", "accuracy_prompt", "repair_prompt", "k", "aspects", "model"):
        assert y[key] == getattr(d, key), key
    assert re.search(r"k: 3\b", (CONF / "default.yaml").read_text())
