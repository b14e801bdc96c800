"""The shipped prompts against the paper's text (App. E of ../shared/papers/rationalize-and-align-paper.md).

Every expected string below is typed again from the paper (Tables 7, 8, 10, 11, 12 and Fig. 3, the
table lines rejoined and "expla-nation" hyphenation undone), not read from the yaml: a drift in
conf/prompts/paper.yaml or conf/task/*.yaml fails here. The layout tests check that the same text
reaches the model through training, generation and reward scoring, in both layouts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.data.records import Record
from rationalign.edits import Edit
from rationalign.prompts import render_prompt, render_rm, render_teacher
from rationalign.rationale.template import template_rationale
from rationalign.training.chat import Layout, encode_pair

CONF = Path(__file__).resolve().parents[1] / "conf"

TABLE8_PREAMBLE = ("Below is an instruction that describes a task, paired with an input that provides further "
                   "context. Write a response that appropriately completes the request.")
TEMPLATE_REQUEST = ('Please use this template for the explanation: "The word X should be '
                    'deleted/inserted/replaced by Y because"')
TABLE12 = {  # [Task Prompt]s
    "gec": "Correct grammatical errors in the text by first providing a response, followed by an explanation. ",
    "fluency": "Make the text more fluent and grammatical by initially providing a response, followed by an "
               "explanation. ",
    "clarity": "Enhance the readability of the text by initially providing a response, followed by an explanation. ",
    "coherence": "Enhance the cohesion of the text by initially providing a response, followed by an explanation. ",
    "paraphrase": "Paraphrase the text by initially providing a response, followed by an explanation. ",
    "neutralization": "Neutralize the text by initially providing a response, followed by an explanation. ",
    "simplification": "Simplify the text by first providing a response, followed by an explanation. ",
    "formality": "Convert the following informal text into formal style by initially providing a response, "
                 "followed by an explanation. ",
}
TABLE10 = {  # teacher [Task Instruction]s
    "gec": "Specifically, the target sentence corrects the grammar mistakes in the source sentence.",
    "fluency": "Specifically, the target sentence makes the source sentence more fluent.",
    "clarity": "Specifically, the target sentence provides a clarification of the source sentence.",
    "coherence": "Specifically, the target sentence provides a cohesive representation of the source sentence.",
    "paraphrase": "Specifically, the target sentence is a well-phrased paraphrase of the source sentence.",
    "neutralization": "Specifically, the target sentence provides a neutralization of the source sentence.",
    "simplification": "Specifically, the target sentence provides a simplification of the source sentence.",
    "formality": "Specifically, the target sentence transforms the source sentence into a formal style.",
}
TABLE11 = {  # reward-model [Task Instruction]s
    "gec": "The hypothesis corrects all grammar mistakes in the input.",
    "fluency": "The hypothesis makes the input more fluent.",
    "clarity": "The hypothesis is a good clarification of the input.",
    "coherence": "The hypothesis is a good cohesive representation of the input.",
    "paraphrase": "The hypothesis is a well-phrased paraphrase of the input.",
    "neutralization": "The hypothesis is a good neutralization of the input.",
    "simplification": "The hypothesis is a good simplification of the input.",
    "formality": "The hypothesis correctly transforms the input into a formal style.",
}
TASKS = list(TABLE12)


@pytest.fixture(scope="module")
def prompts():
    return OmegaConf.load(CONF / "prompts" / "paper.yaml")


def spec(name):
    return OmegaConf.load(CONF / "task" / f"{name}.yaml").specs[name]


def record(task="gec", source="She go to school yesterday .", target="She went to school yesterday ."):
    return Record(id="r1", task=task, instruction="(ignored)", source=source, target=target)


def table8(task_prompt: str, source: str) -> str:
    return (TABLE8_PREAMBLE + "\n\n###Instruction:\n" + task_prompt + "\n\n###Input:\n" + source
            + "\n\n###Response:\n")


@pytest.mark.parametrize("task", TASKS)
def test_table12_task_prompts_verbatim(task):
    assert list(spec(task).instructions) == [TABLE12[task] + TEMPLATE_REQUEST]


@pytest.mark.parametrize("task", TASKS)
def test_table10_and_table11_instructions_verbatim(task):
    assert spec(task).teacher_instruction == TABLE10[task]
    assert spec(task).rm_instruction == TABLE11[task]


@pytest.mark.parametrize("task", TASKS)
def test_table8_prompt_rendered_exactly(prompts, task):
    r = record(task)
    assert prompts.layout == "plain"  # Table 8 is the default for every model
    assert render_prompt(prompts, spec(task), r) == table8(TABLE12[task] + TEMPLATE_REQUEST, r.source)
    # the no-rationale baseline keeps the layout and changes only the task prompt
    plain = render_prompt(prompts, spec(task), r, with_rationale=False)
    assert plain == table8(spec(task).plain_instructions[0], r.source)


@pytest.mark.parametrize("task", TASKS)
def test_table7_reward_model_input_rendered_exactly(prompts, task):
    text = render_rm(prompts, spec(task), "She go home .", "She went home .")
    assert text == TABLE11[task] + "\n### Input:\nShe go home .\n### Hypothesis:\nShe went home ."


@pytest.mark.parametrize("task", TASKS)
def test_fig3_teacher_prompt_rendered_exactly(prompts, task):
    edits = [Edit(1, 2, "go", "went", "R:VERB:TENSE"), Edit(3, 3, "", "the", "M:DET")]
    text = render_teacher(prompts, spec(task), "She go home .", "She went the home .", edits)
    assert text == (
        "You are given a pair of English sentences along with a list of atomic edits. For each edit, the first "
        "word identifies content in the source sentence that is less appropriate, while the second word suggests "
        "a better phrase in the target sentence. " + TABLE10[task] + " Please generate a succinct explanation for "
        "each edit using the following template:\n\n"
        "The word X should be deleted/inserted/replaced by Y because ...\n\n"
        "###Source sentence:\nShe go home .\n\n"
        "###Target sentence:\nShe went the home .\n\n"
        '###Edits:\n1. "go" -> "went"\n2. "" -> "the"\n\n'
        "###Explanation:")


def test_template_rationales_have_exactly_the_paper_form():
    import re

    form = re.compile(r'^The word "[^"]+" should be (deleted|inserted|replaced by "[^"]+") because [^.]+\.$')
    edits = [Edit(1, 2, "go", "goes", "R:VERB:SVA"), Edit(2, 2, "", "a", "M:DET"), Edit(2, 3, "the", "", "U:DET"),
             Edit(0, 3, "in the morning", "", "U:OTHER"), Edit(4, 5, ",", ".", "R:PUNCT"),
             Edit(2, 4, "fast ran", "ran fast", "R:WO"), Edit(1, 2, "big", "large", "R:ADJ")]
    for task in TASKS:
        text = template_rationale(edits, task)
        sentences = re.split(r"(?<=\.) (?=The word)", text)
        assert len(sentences) == len(edits)
        assert all(form.match(s) for s in sentences), text


def test_no_stand_in_left_anywhere():
    readme = (CONF.parent / "README.md").read_text()
    texts = {"README.md#Prompt templates": readme[readme.index("## Prompt templates"):]}
    for path in [CONF / "prompts" / "paper.yaml", *sorted((CONF / "task").glob("*.yaml")),
                 *sorted((CONF / "rationale").glob("*.yaml"))]:
        texts[str(path)] = path.read_text()
    for where, text in texts.items():
        assert "NOT the paper's verbatim" not in text and "NOT verbatim" not in text, where
        assert "stand-in" not in text.lower() and "in spirit" not in text.lower(), where


# ----------------------------------------------------------------------------------- layouts

@pytest.fixture(scope="module")
def tok():
    from rationalign.models import load_tokenizer
    from rationalign.runner import compose

    return load_tokenizer(compose(["model=tiny"]).model)


def test_plain_layout_is_the_rendered_text_and_the_completion_follows(prompts, tok):
    text = render_prompt(prompts, spec("gec"), record())
    layout = Layout.from_cfg(prompts)
    assert layout.text(tok, text) == text  # SmolLM2 adds no BOS by default
    p, c = encode_pair(tok, text, "She went to school yesterday .", 512, layout=layout)
    assert tok.decode(p) == text
    assert tok.decode(c) == "She went to school yesterday .<|im_end|>"


def test_chat_layout_wraps_the_user_turn_in_the_chat_template(prompts, tok):
    chat = OmegaConf.merge(prompts, {"layout": "chat"})
    text = render_prompt(chat, spec("gec"), record())
    assert text == "###Instruction:\n" + TABLE12["gec"] + TEMPLATE_REQUEST + "\n\n###Input:\n" + record().source
    full = Layout.from_cfg(chat).text(tok, text)
    assert full == ("<|im_start|>system\n" + TABLE8_PREAMBLE + "<|im_end|>\n<|im_start|>user\n" + text
                    + "<|im_end|>\n<|im_start|>assistant\n")


def test_plain_layout_adds_bos_only_for_tokenizers_that_add_it():
    class Tok:
        bos_token, bos_token_id = "<s>", 1

        def __init__(self, adds):
            self.adds = adds

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": ([1] if self.adds and add_special_tokens else []) + [5]}

    assert Layout().text(Tok(True), "x") == "<s>x"
    assert Layout().text(Tok(False), "x") == "x"
    assert Layout("chat").text(Tok(True), "x", seq2seq=True) == "x"
    with pytest.raises(ValueError, match="no chat template"):
        Layout("chat").text(Tok(True), "x")
    with pytest.raises(ValueError, match="prompts.layout='sideways'"):
        Layout("sideways")


@pytest.mark.parametrize("layout_name", ["plain", "chat"])
def test_every_model_input_goes_through_the_layout(prompts, tok, layout_name):
    """Generation (HFEngine), training (encode_pair) and reward scoring (RewardScorer's encoder)
    put the same laid-out text before the model."""
    import torch

    from rationalign.engines.hf import HFEngine
    from rationalign.training.reward import RMTemplate, encode_rm_text

    cfg = OmegaConf.merge(prompts, {"layout": layout_name})
    layout = Layout.from_cfg(cfg)
    text = render_prompt(cfg, spec("gec"), record())
    expected = tok(layout.text(tok, text), add_special_tokens=False)["input_ids"]
    assert encode_pair(tok, text, "x", 4096, layout=layout)[0] == expected

    seen = []

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids, attention_mask, **kw):
            seen.append(input_ids[0][attention_mask[0].bool()].tolist())
            return torch.cat([input_ids, torch.full((1, 1), tok.eos_token_id)], 1)

    HFEngine(Model(), tok, layout=layout, progress=False).generate([text], temperature=0, max_new_tokens=1)
    assert seen == [expected]

    rm = RMTemplate.from_cfg(cfg, {"specs": {"gec": spec("gec")}})
    assert rm.layout == layout
    rm_text = rm.user_message("gec", "", "She go .", "She goes .")
    assert rm_text == TABLE11["gec"] + "\n### Input:\nShe go .\n### Hypothesis:\nShe goes ."
    assert encode_rm_text(tok, rm_text, 4096, layout=layout) == tok(layout.text(tok, rm_text),
                                                                    add_special_tokens=False)["input_ids"]


def test_bad_layout_fails_validation_in_one_line():
    from rationalign.components import import_components
    from rationalign.runner import compose
    from rationalign.validate import ConfigError, validate

    import_components()
    with pytest.raises(ConfigError, match=r"^prompts.layout=sideways: expected one of plain, chat$"):
        validate(compose(["prompts.layout=sideways"]))
    validate(compose(["prompts.layout=chat"]))


def test_only_the_layout_applies_chat_templates():
    """No consumer lays prompts out on its own: apply_chat_template lives in training/chat.py only."""
    pkg = CONF.parent / "rationalign"
    users = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*.py") if "apply_chat_template" in p.read_text())
    assert users == ["training/chat.py"]
