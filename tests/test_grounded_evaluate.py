"""evaluate / judge / predict with `rationale_decoding=grounded`, on a scripted writing assistant whose
free rationale names one edit it made and one it did not: grounded rationales explain exactly the
edits made, the suggestions (and every report column) stay those of free decoding, the free run's
suggestions are reused, the mode is recorded, and the judge's rationale-accuracy criterion runs on
the grounded rationales."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

from rationalign.runner import compose, run

try:
    from tests.test_judge import JudgeServer
except ImportError:  # tests/ is not a package when pytest puts it on sys.path itself
    from test_judge import JudgeServer

FREE = 'The word "X" should be inserted because it helps. The word "nope" should be deleted because it is wrong.'


class ScriptedWA:
    """Every answer is 'X <source>' with the free rationale FREE; each forced prefix is continued with
    'it is needed. <more>' (the sentence ends at the full stop). The tokenizer is the real one."""

    generated: ClassVar[list[dict]] = []
    continued: ClassVar[list[str]] = []

    def __init__(self, *a, **k):
        from rationalign.models import load_tokenizer

        self.tok = load_tokenizer({"source": "tiny"})
        self.seq2seq = False

    def encode(self, prompts):
        return [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def generate(self, prompts, stop=None, **_):
        ScriptedWA.generated.append({"n": len(prompts), "stop": stop})
        sources = [p.split("###Input:\n")[1].split("\n\n###Response:")[0] for p in prompts]
        outs = [f"X {s}\nExplanation: {FREE}" for s in sources]
        if stop:  # as HF and vLLM do: the text ends with the stop string
            outs = [o[:o.index(stop[0]) + len(stop[0])] for o in outs]
        return outs

    def continue_ids(self, groups, *, max_new_tokens, stop=None):
        out = []
        for prefix, tails in groups:
            ScriptedWA.continued += [self.tok.decode(list(prefix) + list(t)) for t in tails]
            out.append(["it is needed. The word" for _ in tails])
        return out

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def scripted(monkeypatch):
    from rationalign import engines

    monkeypatch.setattr(engines, "build_engine", ScriptedWA)
    ScriptedWA.generated.clear()
    ScriptedWA.continued.clear()
    return ScriptedWA


def _evaluate(root, *extra):
    cfg = compose(["stage=evaluate", "model=tiny", "task=gec", "evaluate.systems=[base]", "data.max_test_per_task=3",
                   f"paths.root={root}", *extra])
    m = run(cfg)
    out = Path(m["report"]).parent
    preds = [json.loads(x) for x in (out / "predictions" / "base" / "gec.jsonl").read_text().splitlines()]
    return m, out, preds


def test_grounded_rationales_explain_the_edits_made_and_keep_every_column(scripted, tmp_path):
    free, free_dir, free_preds = _evaluate(tmp_path)
    assert len(scripted.generated) == 1 and scripted.generated[0]["stop"] is None
    assert free["analyses"]["faithfulness"]["base"]["overall"]["precision"] == 0.5

    grounded, g_dir, g_preds = _evaluate(tmp_path, "evaluate.rationale_decoding=grounded")
    assert g_dir != free_dir and g_dir.parent == free_dir.parent  # its own stage dir
    assert len(scripted.generated) == 1  # the free run's suggestions were read, not decoded again
    assert all(p["suggestion_reused"] for p in g_preds)
    assert [p["suggestion"] for p in g_preds] == [p["suggestion"] for p in free_preds]
    fa = grounded["analyses"]["faithfulness"]["base"]["overall"]
    assert (fa["coverage"], fa["precision"], fa["edits"], fa["claims"]) == (1.0, 1.0, 3, 3)
    assert all(p["rationale"] == 'The word "X" should be inserted because it is needed.' for p in g_preds)
    assert all(p["output"] == f'{p["suggestion"]}\nExplanation: {p["rationale"]}' for p in g_preds)
    assert [it["edit"]["target"] for p in g_preds for it in p["rationale_items"]] == ["X"] * 3
    assert all(c.endswith('Explanation: The word "X" should be inserted because') for c in scripted.continued)
    # every report column and the edit analysis are those of the free run; the mode is recorded
    free_rep, g_rep = (json.loads((d / "report.json").read_text()) for d in (free_dir, g_dir))
    assert g_rep["rows"] == free_rep["rows"] and g_rep["analyses"]["edits"] == free_rep["analyses"]["edits"]
    assert (g_rep["analyses"]["rationale_decoding"], free_rep["analyses"]["rationale_decoding"]) == ("grounded", "free")
    assert json.loads((g_dir / "manifest.json").read_text())["rationale_decoding"] == "grounded"
    md = (g_dir / "report.md").read_text()
    assert "Rationale decoding: grounded" in md and "| base | 100.0% / 100.0% | 100.0% / 100.0% (3 edits) |" in md

    # Without a free run to read, the suggestion is decoded up to the rationale marker: the same one.
    _, _, fresh = _evaluate(tmp_path / "fresh", "evaluate.rationale_decoding=grounded")
    assert scripted.generated[-1]["stop"] == ["Explanation:"]
    assert [(p["suggestion"], p["rationale"]) for p in fresh] == [(p["suggestion"], p["rationale"]) for p in g_preds]
    assert not any(p["suggestion_reused"] for p in fresh)


def test_a_system_without_rationales_keeps_its_free_predictions(scripted, tmp_path):
    _, _, free_preds = _evaluate(tmp_path, "rationale.position=none")
    _, _, g_preds = _evaluate(tmp_path, "rationale.position=none", "evaluate.rationale_decoding=grounded")
    assert g_preds == free_preds and len(scripted.generated) == 1 and not scripted.continued


def test_judge_rationale_accuracy_runs_on_grounded_rationales(scripted, tmp_path):
    """The scripted judge calls an explanation inaccurate when it describes an edit not in the list of
    edits made: the free rationale ("nope" deleted) fails, the grounded one passes."""

    def answer(messages):
        prompt = messages[0]["content"]
        made = prompt.split("Edits actually made:\n")[1].split("\nExplanation: ")[0]
        expl = prompt.split("Explanation: ")[-1].split("\n\nGive a one-sentence")[0]
        named = [w for w in ('"X"', '"nope"') if w in expl]
        return "Fine.\nAccurate: yes" if all(w in made for w in named) else "It invents a change.\nAccurate: no"

    results = {}
    with JudgeServer(answer) as srv:
        for mode in ("free", "grounded"):
            cfg = compose(["stage=judge", "model=tiny", "task=gec", "evaluate.systems=[base]",
                           "data.max_test_per_task=3", f"paths.root={tmp_path}",
                           f"evaluate.rationale_decoding={mode}", "judge.pairwise=false", "judge.rubric=false",
                           f"judge.base_url={srv.base_url}", "judge.api_key_env=null", "judge.model=judge-test",
                           f"judge.cache_dir={tmp_path / 'cache'}"])
            results[mode] = run(cfg)["metrics"]["rationale_accuracy"]["base"]
        prompts = [b["messages"][0]["content"] for b in srv.bodies]
    assert (results["free"]["checked"], results["free"]["accuracy"]) == (3, 0.0)
    assert (results["grounded"]["checked"], results["grounded"]["accuracy"]) == (3, 1.0)
    grounded_prompts = [p for p in prompts if '"X" should be inserted because it is needed.' in p]
    assert len(grounded_prompts) == 3 and all('1. "" -> "X" (insertion)' in p for p in grounded_prompts)


def test_predict_json_gives_each_edit_its_own_rationale(scripted, tmp_path, capsys):
    base = ["stage=predict", "model=tiny", "task=gec", "predict.format=json", f"paths.root={tmp_path}",
            "predict.text=She go home ."]
    run(compose(base))
    (free,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    run(compose([*base, "predict.rationale_decoding=grounded"]))
    (grounded,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert free["suggestion"] == grounded["suggestion"] == "X She go home ."
    assert [e["rationale"] for e in free["edits"]] == ['The word "X" should be inserted because it helps.']
    assert [e["rationale"] for e in grounded["edits"]] == ['The word "X" should be inserted because it is needed.']
    assert (free["rationale_decoding"], grounded["rationale_decoding"]) == ("free", "grounded")
    assert grounded["faithfulness"] == {"coverage": 1.0, "precision": 1.0}
    assert free["faithfulness"] == {"coverage": 1.0, "precision": 0.5}
