"""Prompt configs (conf/task, conf/prompts) and rationalign.prompts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.data.records import Record
from rationalign.edits import Edit
from rationalign.prompts import (
    POSITIONS,
    ParsedResponse,
    PromptConfigError,
    choose_instruction,
    format_response,
    get_spec,
    parse_response,
    render_prompt,
    render_rm,
    render_teacher,
    stable_index,
    task_columns,
    template_fields,
    validate_prompts,
    validate_spec,
)

CONF = Path(__file__).resolve().parents[1] / "conf"
TASKS = ["gec", "fluency", "clarity", "coherence", "paraphrase", "neutralization", "simplification", "formality"]
METRICS = {"m2", "sari", "bleu", "formality", "errant"}
EXPECTED = {  # task -> (primary metric, Table 1 columns)
    "gec": ("m2", ["CoN"]),
    "fluency": ("sari", ["ITR-F"]),
    "clarity": ("sari", ["ITR-L"]),
    "coherence": ("sari", ["ITR-O"]),
    "paraphrase": ("sari", ["STS"]),
    "neutralization": ("sari", ["WNC"]),
    "simplification": ("sari", ["AST"]),
    "formality": ("bleu", ["GYAFC-EM", "GYAFC-FR"]),
}


@pytest.fixture(scope="module")
def prompts():
    return OmegaConf.load(CONF / "prompts" / "paper.yaml")


@pytest.fixture(scope="module")
def task_all(tmp_path_factory):
    """Compose task=all and prompts=paper with Hydra from a minimal copy of conf/."""
    from hydra import compose, initialize_config_dir

    root = tmp_path_factory.mktemp("conf")
    shutil.copytree(CONF / "task", root / "task")
    shutil.copytree(CONF / "prompts", root / "prompts")
    (root / "config.yaml").write_text("defaults:\n  - task: all\n  - prompts: paper\n  - _self_\n")
    with initialize_config_dir(config_dir=str(root), version_base=None):
        return compose(config_name="config")


def _spec(name):
    cfg = OmegaConf.load(CONF / "task" / f"{name}.yaml")
    return cfg.specs[name]


def _record(rid="r1", source="She go to school yesterday .", instruction=""):
    return Record(id=rid, task="gec", instruction=instruction, source=source, target="She went to school yesterday .")


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", TASKS)
def test_task_file_has_every_field(name):
    raw = (CONF / "task" / f"{name}.yaml").read_text()
    assert raw.startswith("# @package task")
    cfg = OmegaConf.load(CONF / "task" / f"{name}.yaml")
    assert list(cfg.names) == [name]
    spec = cfg.specs[name]
    validate_spec(spec, name)
    metric, columns = EXPECTED[name]
    assert spec.metric == metric and spec.metric in METRICS
    assert set(spec.report_metrics) <= METRICS and spec.metric in spec.report_metrics
    assert task_columns(spec) == columns
    # one Table 12 prompt per task, and our no-rationale counterpart
    assert len(spec.instructions) == 1 and len(spec.plain_instructions) == 1
    # the rationale instructions ask for an explanation; the plain ones do not
    assert all("expla" in s.lower() for s in spec.instructions)
    assert not any("expla" in s.lower() for s in spec.plain_instructions)
    # no stand-in is left (the verbatim texts are checked in test_paper_prompts.py)
    assert "NOT the paper" not in raw and "stand-in" not in raw.lower()


def test_formality_reports_bleu_and_accuracy():
    assert list(_spec("formality").report_metrics) == ["bleu", "formality"]


def test_plain_instruction_is_the_table12_prompt_without_the_explanation_request():
    for name in TASKS:
        spec = _spec(name)
        head = spec.instructions[0].split(" by ")[0]
        assert spec.plain_instructions[0] == head + "."


def test_all_composes_eight_specs(task_all):
    assert list(task_all.task.names) == TASKS
    assert sorted(task_all.task.specs) == sorted(TASKS)
    for name in TASKS:
        validate_spec(task_all.task.specs[name], name)
        assert get_spec(task_all.task, name).metric == EXPECTED[name][0]
    validate_prompts(task_all.prompts)


def test_single_task_composes(tmp_path):
    from hydra import compose, initialize_config_dir

    shutil.copytree(CONF / "task", tmp_path / "task")
    (tmp_path / "config.yaml").write_text("defaults:\n  - task: gec\n  - _self_\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base=None):
        cfg = compose(config_name="config", overrides=["task=formality"])
    assert list(cfg.task.names) == ["formality"] and list(cfg.task.specs) == ["formality"]


def test_get_spec_unknown_task_names_known(task_all):
    with pytest.raises(PromptConfigError, match="no spec for task 'nope'"):
        get_spec(task_all.task, "nope")


def test_validate_spec_names_missing_field():
    spec = dict(OmegaConf.to_container(_spec("gec")))
    del spec["rm_instruction"]
    with pytest.raises(PromptConfigError, match=r"task.specs.gec: missing field 'rm_instruction'"):
        validate_spec(spec, "gec")


def test_prompt_templates_placeholders(prompts):
    validate_prompts(prompts)
    assert template_fields(prompts.instruction_template) == {"instruction", "source"}
    assert template_fields(prompts.rm_template) == {"instruction", "source", "response"}
    assert template_fields(prompts.teacher_template) == {"instruction", "source", "target", "edits"}
    raw = (CONF / "prompts" / "paper.yaml").read_text()
    assert raw.startswith("# @package prompts")
    for table in ("Table 8", "Table 7", "Fig. 3"):
        assert table in raw
    assert "NOT the paper" not in raw and "stand-in" not in raw.lower()


def test_validate_prompts_rejects_wrong_placeholder(prompts):
    bad = OmegaConf.merge(prompts, {"rm_template": "{instruction} {source}"})
    with pytest.raises(PromptConfigError, match="prompts.rm_template"):
        validate_prompts(bad)


# ----------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("as_dict", [False, True])
def test_render_prompt(prompts, as_dict):
    spec = _spec("gec")
    p_cfg = OmegaConf.to_container(prompts) if as_dict else prompts
    s_cfg = OmegaConf.to_container(spec) if as_dict else spec
    text = render_prompt(p_cfg, s_cfg, _record())
    assert "She go to school yesterday ." in text
    assert any(i in text for i in spec.instructions)
    assert "{" not in text and "}" not in text
    plain = render_prompt(p_cfg, s_cfg, _record(), with_rationale=False)
    assert any(i in plain for i in spec.plain_instructions)
    assert not any(i in plain for i in spec.instructions)


def test_instruction_choice_deterministic_and_spread():
    spec = {"instructions": ["one", "two", "three"], "plain_instructions": ["p"]}
    a = [choose_instruction(spec, f"id-{i}") for i in range(60)]
    b = [choose_instruction(spec, f"id-{i}") for i in range(60)]
    assert a == b
    assert set(a) == set(spec["instructions"])  # 60 ids hit all three
    assert stable_index("id-7", 3) == stable_index("id-7", 3)
    assert choose_instruction(spec, "x", instruction_index=1) == spec["instructions"][1]
    assert choose_instruction(spec, "x", instruction_index=4) == spec["instructions"][1]


def test_record_instruction_is_fallback_only(prompts):
    spec = {"instructions": [], "plain_instructions": ["Fix it"]}
    text = render_prompt(prompts, spec, _record(instruction="Custom instruction, explain."))
    assert "###Instruction:\nCustom instruction, explain.\n\n###Input:" in text
    assert "###Instruction:\nFix it\n" in render_prompt(prompts, spec, _record(instruction="Custom"),
                                                         with_rationale=False)
    with pytest.raises(PromptConfigError, match="no 'instructions'"):
        render_prompt(prompts, spec, _record(instruction=""))


def test_render_prompt_accepts_dict_record(prompts):
    text = render_prompt(prompts, _spec("fluency"), {"id": "a", "source": "x y z"})
    assert text.endswith("###Input:\nx y z\n\n###Response:\n")


def test_render_rm(prompts):
    spec = _spec("simplification")
    text = render_rm(prompts, spec, "A complicated sentence .", "A simple sentence .")
    assert spec.rm_instruction in text
    assert "A complicated sentence ." in text and "A simple sentence ." in text
    assert "Explanation:" not in text


def test_render_teacher_with_edit_objects_and_tuples(prompts):
    spec = _spec("gec")
    edits = [Edit(1, 2, "go", "went", "R:VERB:TENSE")]
    text = render_teacher(prompts, spec, "She go home .", "She went home .", edits)
    assert spec.teacher_instruction in text
    assert "She go home ." in text and "She went home ." in text
    assert '###Edits:\n1. "go" -> "went"\n' in text
    same = render_teacher(prompts, spec, "She go home .", "She went home .", [("go", "went")])
    assert same == text
    two = render_teacher(prompts, spec, "s", "t", [{"o_str": "", "c_str": "a", "type": "M:DET"}, ("the", "")])
    assert '1. "" -> "a"\n2. "the" -> ""' in two
    typed = OmegaConf.merge(prompts, {"edits": {"line": "{n}) {source} => {target} [{type}]"}})
    assert "1)  => a [M:DET]" in render_teacher(typed, spec, "s", "t", [{"o_str": "", "c_str": "a", "type": "M:DET"}])
    pre = render_teacher(prompts, spec, "s", "t", "my edits")
    assert "my edits" in pre
    assert "no edits" in render_teacher(prompts, spec, "s", "s", [])


# ----------------------------------------------------------------------------- responses

SUG = "She went to school yesterday ."
RAT = 'The verb "go" must be in the past tense because of "yesterday".'


@pytest.mark.parametrize("position", POSITIONS)
def test_format_parse_round_trip(prompts, position):
    text = format_response(SUG, RAT, position, prompts)
    parsed = parse_response(text, position, prompts)
    assert parsed.ok and parsed.reason == ""
    assert parsed.suggestion == SUG
    assert parsed.rationale == ("" if position == "none" else RAT)


def test_format_layouts(prompts):
    assert format_response(SUG, RAT, "after", prompts) == f"{SUG}\nExplanation: {RAT}"
    assert format_response(SUG, RAT, "before", prompts) == f"Explanation: {RAT}\nRevised text: {SUG}"
    assert format_response(SUG, None, "none", prompts) == SUG
    assert format_response(SUG, RAT, "after") == format_response(SUG, RAT, "after", prompts)  # defaults


def test_format_errors():
    with pytest.raises(ValueError, match="position"):
        format_response(SUG, RAT, "middle")
    with pytest.raises(ValueError, match="non-empty rationale"):
        format_response(SUG, "  ", "after")
    with pytest.raises(ValueError, match="empty suggestion"):
        format_response("", RAT, "none")


def test_parse_custom_markers():
    cfg = {"response": {"rationale_marker": "Rationale:", "suggestion_marker": "Answer:", "separator": "\n\n"}}
    for position in POSITIONS:
        parsed = parse_response(format_response(SUG, RAT, position, cfg), position, cfg)
        assert parsed.ok and parsed.suggestion == SUG


@pytest.mark.parametrize(
    "text,position,ok,suggestion,rationale,reason",
    [
        # missing separator: marker inline
        (f"{SUG} Explanation: {RAT}", "after", True, SUG, RAT, ""),
        # missing marker entirely
        (SUG, "after", False, SUG, "", "missing rationale marker"),
        # only a rationale
        (f"Explanation: {RAT}", "after", False, "", RAT, "empty suggestion"),
        # empty rationale after the marker
        (f"{SUG}\nExplanation:   ", "after", False, SUG, "", "empty rationale"),
        # extra whitespace everywhere
        (f"\n\n   {SUG}   \n\n\n  Explanation:    {RAT}  \n\n", "after", True, SUG, RAT, ""),
        # repeated markers, odd case and markdown
        (f"{SUG}\n**explanation:** Explanation: {RAT}", "after", True, SUG, RAT, "repeated"),
        # a looping model repeats the whole rationale block
        (f"{SUG}\nExplanation: {RAT}\nExplanation: {RAT}", "after", True, SUG, RAT, "second rationale block"),
        # the model echoed the suggestion marker in 'after' mode
        (f"Revised text: {SUG}\nExplanation: {RAT}", "after", True, SUG, RAT, "suggestion marker"),
        # before: missing suggestion marker
        (f"Explanation: {RAT}", "before", False, "", RAT, "missing suggestion marker"),
        # before: suggestion only
        (f"Revised text: {SUG}", "before", False, SUG, "", "empty rationale"),
        # before: rationale without its marker
        (f"{RAT}\nRevised text: {SUG}", "before", True, SUG, RAT, "no marker"),
        # before: rationale mentions the marker words mid-line; the line-start marker wins
        (f"Explanation: the revised text: fixes tense.\nRevised text: {SUG}", "before", True, SUG,
         "the revised text: fixes tense.", ""),
        # none: a rationale the model was not asked for is cut off
        (f"{SUG}\nExplanation: {RAT}", "none", True, SUG, RAT, "unexpected rationale"),
        # empty and blank outputs
        ("", "after", False, "", "", "empty output"),
        ("   \n ", "none", False, "", "", "empty output"),
        (None, "before", False, "", "", "empty output"),
    ],
)
def test_parse_malformed_reports(prompts, text, position, ok, suggestion, rationale, reason):
    parsed = parse_response(text, position, prompts)
    assert isinstance(parsed, ParsedResponse)
    assert parsed.ok is ok
    assert parsed.suggestion == suggestion
    assert parsed.rationale == rationale
    assert reason in parsed.reason
    if not ok:
        assert parsed.reason


def _junk_cases():
    """(junk, position, expected ParsedResponse): non-strings are parsed as their str(); a lone
    marker leaves nothing to suggest; text without markers is a suggestion ('after'/'none') or a
    rationale ('before') and fails for the missing marker."""
    plain = {"after": lambda t: ParsedResponse(t, "", False, "missing rationale marker"),
             "before": lambda t: ParsedResponse("", t, False, "missing suggestion marker"),
             "none": lambda t: ParsedResponse(t, "", True, "")}
    cases = []
    for junk in (123, b"bytes", ["list"], "::::", "\x00"):
        cases += [(junk, pos, plain[pos](str(junk))) for pos in POSITIONS]
    cases += [
        ("Explanation:", "after", ParsedResponse("", "", False, "empty suggestion (output has only a rationale)")),
        ("Explanation:", "before", ParsedResponse("", "", False, "missing suggestion marker")),
        ("Explanation:", "none", ParsedResponse("", "", False, "empty suggestion")),
        ("Revised text:", "after", ParsedResponse("", "", False, "missing rationale marker")),
        ("Revised text:", "before", ParsedResponse("", "", False, "empty suggestion")),
        ("Revised text:", "none", ParsedResponse("", "", False, "empty suggestion")),
    ]
    return cases


def test_junk_cases_cover_every_position():
    assert {p for _, p, _ in _junk_cases()} == set(POSITIONS) and len(_junk_cases()) == 7 * len(POSITIONS)


@pytest.mark.parametrize("junk, position, expected", _junk_cases())
def test_parse_junk_gives_the_stated_result(prompts, junk, position, expected):
    assert parse_response(junk, position, prompts) == expected


@pytest.mark.parametrize("junk", [123, b"bytes", ["list"], "Explanation:", "Revised text:", "::::", "\x00"])
def test_parse_unknown_position_reports(prompts, junk):
    assert parse_response(junk, "sideways", prompts) == ParsedResponse("", "", False, "unknown position 'sideways'")


def test_parse_bad_config_reports():
    parsed = parse_response(SUG, "after", {"response": {"rationale_marker": " "}})
    assert not parsed.ok and "bad response config" in parsed.reason


def test_validate_prompts_allows_dropping_optional_placeholders(prompts):
    validate_prompts(OmegaConf.merge(prompts, {"rm_template": "{source} => {response}"}))
    with pytest.raises(PromptConfigError, match=r"prompts.rm_template: .*unknown \['hypothesis'\]"):
        validate_prompts(OmegaConf.merge(prompts, {"rm_template": "{source} {hypothesis} {response}"}))
    with pytest.raises(PromptConfigError, match=r"prompts.teacher_template: .*missing \['target'\]"):
        validate_prompts(OmegaConf.merge(prompts, {"teacher_template": "{source} {edits}"}))
