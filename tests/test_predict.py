"""stage=predict on model=tiny, and the answer format on scripted model outputs."""

from __future__ import annotations

import json

import pytest

from rationalign.assistant import PredictInputError, explain_outputs
from rationalign.runner import compose, run

SCRIPTED = ('She went to school yesterday.\nExplanation: The word "go" should be replaced by "went" because the '
            "verb tense must fit the time the sentence describes. The sentence is now correct.")


def test_cli_json_prints_one_object_per_text(tmp_path, capsys):
    cfg = compose(["stage=predict", "model=tiny", "task=gec", "predict.text=She go to school yesterday.",
                   "predict.format=json", f"paths.root={tmp_path}"])
    run(cfg)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert {"source", "suggestion", "edits", "rationale"} <= set(obj)
    assert obj["source"] == "She go to school yesterday." and obj["task"] == "gec"
    assert isinstance(obj["edits"], list) and isinstance(obj["rationale"], list)
    assert not (tmp_path / "default").exists()  # nothing written


def test_answer_aligns_edits_and_explanations():
    (a,) = explain_outputs(["gec"], ["She go to school yesterday."], [SCRIPTED], "after")
    assert a["suggestion"] == "She went to school yesterday." and a["ok"]
    (e,) = a["edits"]
    assert (e["source"], e["target"], e["source_chars"], e["target_chars"]) == ("go", "went", [4, 6], [4, 8])
    assert e["explained_by"] == [0] and e["type"].startswith("R:VERB")
    assert [x["edit"] for x in a["rationale"]] == [0, None]
    assert a["rationale"][0]["claim"] == {"op": "replace", "source": "go", "target": "went"}
    assert a["faithfulness"] == {"coverage": 1.0, "precision": 1.0}


def test_rationale_first_and_malformed_outputs():
    before = 'Explanation: The word "go" should be replaced by "goes" because of agreement.\nRevised text: He goes home.'
    a, b = explain_outputs(["gec", "gec"], ["He go home.", "He go home."], [before, ""], "before")
    assert a["suggestion"] == "He goes home." and a["edits"][0]["explained_by"] == [0]
    # an empty output proposes no change, and says so
    assert b["suggestion"] == "He go home." and not b["ok"] and b["edits"] == [] and b["reason"]


def test_rich_output_highlights_each_edit_with_its_explanation():
    from rich.console import Console

    from rationalign.stages.predict import render_answer

    (a,) = explain_outputs(["gec"], ["She go to school yesterday."], [SCRIPTED], "after")
    console = Console(record=True, width=200, color_system="truecolor")
    render_answer(a, console)
    text = console.export_text(clear=False)
    assert "She go went[1] to school yesterday." in text
    assert '[1] go -> went' in text and 'The word "go" should be replaced by "went"' in text
    assert "(explains no edit: names no edit) The sentence is now correct." in text
    assert "edit coverage 100%, rationale precision 100%" in text
    styled = console.export_html(inline_styles=True)
    assert "line-through" in styled  # the deleted word is struck through


def test_file_input_txt_and_jsonl(tmp_path, capsys):
    txt = tmp_path / "in.txt"
    txt.write_text("She go home.\n\nHe like it.\n")
    cfg = compose(["stage=predict", "model=tiny", "task=gec", f"predict.input={txt}", "predict.format=json",
                   f"paths.root={tmp_path}", f"predict.output={tmp_path / 'answers.jsonl'}"])
    run(cfg)
    out = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    assert [o["source"] for o in out] == ["She go home.", "He like it."]
    assert [json.loads(ln)["source"] for ln in (tmp_path / "answers.jsonl").read_text().splitlines()] == \
        ["She go home.", "He like it."]


def test_jsonl_tasks_and_ids(tmp_path, capsys):
    f = tmp_path / "in.jsonl"
    f.write_text('{"source": "She go home.", "task": "fluency", "id": 7}\n{"source": "He like it.", "task": "gec"}\n')
    run(compose(["stage=predict", "model=tiny", "task=all", f"predict.input={f}", "predict.format=json",
                 "predict.max_new_tokens=4", f"paths.root={tmp_path}"]))
    out = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    assert [(o.get("id"), o["task"], o["source"]) for o in out] == [("7", "fluency", "She go home."),
                                                                    (None, "gec", "He like it.")]


@pytest.mark.parametrize("content,message", [
    ('{"source": "x", "task": "poetry"}\n', r"in.jsonl:1: field 'task': 'poetry' is not one of the selected"),
    ('{"source": "ok", "task": "gec"}\n{"text": "x"}\n', r"in.jsonl:2: unknown field\(s\) \['text'\]"),
    ('{"source": ""}\n', r"in.jsonl:1: field 'source' must be a non-empty string"),
    ('{"source": "x"\n', r"in.jsonl:1: invalid JSON"),
    ('[1]\n', r"in.jsonl:1: expected a JSON object"),
])
def test_bad_jsonl_names_file_line_and_field(tmp_path, content, message):
    f = tmp_path / "in.jsonl"
    f.write_text(content)
    cfg = compose(["stage=predict", "model=tiny", f"predict.input={f}", f"paths.root={tmp_path}"])
    with pytest.raises(PredictInputError, match=message):
        run(cfg)


@pytest.mark.parametrize("overrides,message", [
    ([], "exactly one of predict.text"),
    (["predict.text=x", "predict.input=y.txt"], "exactly one of predict.text"),
    (["predict.text=x", "task=all"], "selects 8 tasks"),
    (["predict.text=x", "predict.format=html"], "predict.format=html: expected one of rich, json"),
    (["predict.text=x", "predict.system=sft"], "stage sft has not finished"),
    (["predict.text=x", "predict.system=other"], "expected base, sft, aligned, quark or path:<dir>"),
    (["predict.input=missing.txt"], "file not found: missing.txt"),
])
def test_bad_settings_fail_before_training(tmp_path, overrides, message):
    cfg = compose(["stage=predict", "model=tiny", f"paths.root={tmp_path}", *overrides])
    with pytest.raises(PredictInputError, match=message):
        run(cfg)
    assert not (tmp_path / "default" / "sft").exists()  # predict never trains


def test_trained_system_by_stage_name_and_by_path(tiny_overrides, capsys, monkeypatch):
    from pathlib import Path

    from rationalign import engines
    from rationalign.stages.base import Context

    sft = compose(["stage=sft", "task=gec", *tiny_overrides])
    run(sft)
    adapter = Context(cfg=sft, workdir=Path(sft.paths.workdir)).stage_dir("sft") / "adapter"
    loaded = []
    real = engines.build_engine
    monkeypatch.setattr(engines, "build_engine", lambda cfg, **k: loaded.append(k.get("adapter")) or real(cfg, **k))
    capsys.readouterr()
    for system in ("base", "sft", f"path:{adapter}"):
        run(compose(["stage=predict", "task=gec", "predict.text=He go home.", "predict.format=json",
                     "predict.max_new_tokens=12", f"predict.system={system}", *tiny_overrides]))
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["source"] == "He go home."
    assert loaded == [None, adapter, adapter]  # the base model, then the SFT adapter either way
    with pytest.raises(PredictInputError, match="no such directory"):
        run(compose(["stage=predict", "predict.text=x", f"predict.system=path:{adapter}-missing", *tiny_overrides]))
