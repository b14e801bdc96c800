"""Rationale faithfulness on hand-made cases whose answers are counted by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from rationalign.explanations import Claim, align, parse_claim, span_edits, split_explanations
from rationalign.metrics.faithfulness import corpus_faithfulness

GO = 'The word "go" should be replaced by "went" because the verb tense must fit the time.'


def test_split_keeps_quoted_full_stops_and_list_items():
    assert split_explanations('The word "." should be deleted because x. The word "a" should be inserted.') == [
        'The word "." should be deleted because x.', 'The word "a" should be inserted.']
    assert split_explanations("1. First one.\n2) Second one!\n- Third") == ["First one.", "Second one!", "Third"]
    assert split_explanations("") == [] and split_explanations(None) == []


@pytest.mark.parametrize("sentence,claim", [
    (GO, Claim("replace", "go", "went")),
    ("The word go should be replaced with went because of tense.", Claim("replace", "go", "went")),
    ('The word "a" should be inserted before "car" because a determiner is needed.', Claim("insert", "", "a")),
    ("The word 'the' should be removed.", Claim("delete", "the", "")),
    ('The words "to school" should be deleted because ...', Claim("delete", "to school", "")),
    ('Changing "go" to \u201cwent\u201d fixes the tense.', Claim("replace", "go", "went")),
    ("The sentence is now grammatically correct.", None),
    ('The word "go" is fine.', None),
])
def test_parse_claim(sentence, claim):
    assert parse_claim(sentence) == claim


def test_edit_spans_in_both_texts():
    (rep,), (ins,) = span_edits(["She go to school yesterday.", "I have car."],
                                ["She went to school yesterday.", "I have a car."])
    assert (rep.source, rep.target, rep.source_chars, rep.target_chars) == ("go", "went", (4, 6), (4, 8))
    assert rep.type == "R:VERB:TENSE" or rep.type.startswith("R:VERB")
    assert (ins.source, ins.target, ins.type, ins.source_chars, ins.target_chars) == ("", "a", "M:DET", (7, 7), (7, 8))
    assert span_edits(["Same."], ["Same."]) == [[]]


def test_align_marks_what_each_explanation_explains():
    edits = span_edits(["He go to school every days ."], ["He goes to school every day ."])[0]
    assert [(e.source, e.target) for e in edits] == [("go", "goes"), ("days", "day")]
    rationale = ('The word "go" should be replaced by "goes" because of agreement. The word "is" should be '
                 'replaced by "are" because of number. Overall it reads well. The word "Days" should be replaced '
                 'by "day" because of number.')
    got = [(x.edit, x.claim is not None) for x in align(edits, rationale)]
    assert got == [(0, True), (None, True), (None, False), (1, True)]  # case is ignored ("Days")


CASES = [  # (task, source, suggestion, rationale): coverage and precision counted by hand below
    ("gec", "She go to school yesterday.", "She went to school yesterday.", GO),  # 1/1 edits, 1/1 claims
    ("gec", "He go to school every days .", "He goes to school every day .",      # 1/2 edits, 1/2 claims
     ('The word "go" should be replaced by "goes" because of agreement. The word "is" should be replaced by '
      '"are" because of number. Overall it reads well.')),
    ("gec", "He go to school .", "He goes to school .",                           # 0/1 edits, 0/2 claims
     'The word "go" should be replaced by "went" because of tense. The word "school" should be deleted.'),
    ("fluency", "I have car.", "I have a car.",                                   # 1/1 edits, 2/2 claims
     ('The word "a" should be inserted because a determiner is needed. Adding "a" ... the word "a" should be '
      'inserted.')),
    ("fluency", "It is fine.", "It is fine.",                                      # no edits, no claims
     "The text is already fluent, so no change is needed."),
]


def test_corpus_faithfulness_per_task_and_overall():
    tasks, sources, suggestions, rationales = zip(*CASES)
    res = corpus_faithfulness(tasks, sources, suggestions, rationales)
    gec, flu, overall = res["per_task"]["gec"], res["per_task"]["fluency"], res["overall"]
    assert (gec["edits"], gec["explained_edits"], gec["claims"], gec["true_claims"], gec["unaligned"]) == (4, 2, 5, 2, 1)
    assert gec["coverage"] == pytest.approx(2 / 4) and gec["precision"] == pytest.approx(2 / 5)
    # the fluency insertion is explained twice: one edit covered, both claims true
    assert (flu["edits"], flu["explained_edits"], flu["claims"], flu["true_claims"]) == (1, 1, 2, 2)
    assert flu["coverage"] == 1.0 and flu["precision"] == 1.0 and flu["unaligned"] == 2 and flu["texts"] == 2
    assert overall["coverage"] == pytest.approx(3 / 5) and overall["precision"] == pytest.approx(4 / 7)
    assert overall["texts"] == 5


def test_nothing_to_count_is_none_not_zero():
    res = corpus_faithfulness(["gec"], ["It is fine."], ["It is fine."], ["No change is needed."])
    assert res["overall"]["coverage"] is None and res["overall"]["precision"] is None
    res = corpus_faithfulness(["gec"], ["She go home."], ["She goes home."], [""])
    assert res["overall"]["coverage"] == 0.0 and res["overall"]["precision"] is None


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 tasks, 1 sources"):
        corpus_faithfulness(["gec", "gec"], ["a"], ["b"], ["c"])


class _ScriptedEngine:
    """Answers every prompt with 'X <source>' and a rationale naming that insertion and one edit not made."""

    def __init__(self, *a, **k):
        pass

    def generate(self, prompts, **_):
        sources = [p.split("###Input:\n")[1].split("\n\n###Response:")[0] for p in prompts]
        return [f'X {s}\nExplanation: The word "X" should be inserted because it helps. The word "nope" should '
                'be deleted because it is wrong.' for s in sources]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_evaluate_report_shows_both_figures_per_system(tmp_path, monkeypatch):
    import json

    from rationalign import engines
    from rationalign.runner import compose, run

    monkeypatch.setattr(engines, "build_engine", _ScriptedEngine)
    cfg = compose(["stage=evaluate", "model=tiny", "task=gec", "evaluate.systems=[base]", "data.max_test_per_task=3",
                   f"paths.root={tmp_path}"])
    m = run(cfg)
    fa = m["analyses"]["faithfulness"]["base"]
    assert fa["overall"]["edits"] == 3 and fa["overall"]["texts"] == 3  # one insertion per text
    assert fa["overall"]["coverage"] == 1.0 and fa["overall"]["precision"] == 0.5
    assert fa["per_task"]["gec"]["claims"] == 6
    report = json.loads((tmp_path / "default" / "evaluate").glob("*/report.json").__next__().read_text())
    assert report["analyses"]["faithfulness"]["base"]["overall"]["precision"] == 0.5
    md = Path(m["report"]).read_text()
    assert "### Rationale faithfulness: edit coverage / rationale precision" in md
    assert "| base | 100.0% / 50.0% | 100.0% / 50.0% (3 edits) |" in md
    assert "Rationale decoding: free" in md


def test_report_marks_a_system_without_rationales():
    from rationalign.report import faithfulness_markdown

    fa = {"sft": {"overall": {"coverage": 0.25, "precision": None}, "per_task": {"gec": {"coverage": 0.25,
                                                                                         "precision": None}}},
          "sft_no_rationale": None}
    md = "\n".join(faithfulness_markdown(fa))
    assert "| sft | 25.0% / N.A. | 25.0% / N.A. |" in md and "| sft_no_rationale | N.A. | N.A. |" in md
    assert faithfulness_markdown(None) == []
