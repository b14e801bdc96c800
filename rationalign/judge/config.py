"""Judge options (the `judge` config group) and the default judge prompts.

The prompts are FAITHFUL IN SPIRIT to the seed papers (pairwise preference with order shuffling,
Just et al. 2024 App. B.7; rubric aspects of Rationalize & Align Sec. 5.3; rationale accuracy
checked against the edits), NOT their exact text; conf/judge/default.yaml carries the same text
and is where the verbatim wording goes when available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from rationalign.llm.asker import missing_placeholders
from rationalign.llm.client import EndpointConfig
from rationalign.registry import Registry

PAIRWISE_PROMPT = """\
You are an expert editor comparing two writing assistants. Both received the same instruction and \
text and answered with a revision (possibly followed by an explanation). Decide which answer carries \
out the instruction better: correct, fluent, faithful to the original meaning, and with changes that \
are needed and well explained. Ignore the order in which the answers are shown and their length.

Instruction: {instruction}
Original text: {source}

Answer 1:
{response_1}

Answer 2:
{response_2}

Give a one-sentence reason, then end with exactly one line "Winner: 1", "Winner: 2" or "Winner: tie"."""

RUBRIC_PROMPT = """\
You are an expert editor. A writing assistant received an instruction and a text, and answered with a \
revision followed by an explanation of its edits. Rate the answer from 1 (very poor) to 5 (excellent) on:
- grammaticality: the revision is free of grammatical errors;
- fluency: the revision reads naturally;
- coherence: the explanation is clear and logically organised;
- consistency: the explanation matches the changes actually made in the revision.

Instruction: {instruction}
Original text: {source}
Answer:
{response}

Reply with exactly four lines:
grammaticality: <1-5>
fluency: <1-5>
coherence: <1-5>
consistency: <1-5>"""

ACCURACY_PROMPT = """\
You check explanations of text edits. Below are an original text, its revision, the edits actually \
made (extracted automatically) and an explanation written by the editor. The explanation is accurate \
if every edit it describes was actually made as described and its reasons are correct; it is inaccurate \
if it describes a change that was not made, misstates a change, or gives a wrong reason.

Instruction: {instruction}
Original text: {source}
Revision: {suggestion}
Edits actually made:
{edits}
Explanation: {rationale}

Give a one-sentence reason, then end with exactly one line "Accurate: yes" or "Accurate: no"."""

REPAIR_PROMPT = ("Your answer could not be read. Reply again, ending with the required line in exactly "
                 "the format asked for.")

ASPECTS = ["grammaticality", "fluency", "coherence", "consistency"]


# `judge=<name>`: one entry today (default); its typed options are JudgeConfig.
JUDGES: Registry = Registry("judge", group="judge")


@dataclass
class JudgeConfig(EndpointConfig):
    name: str = "default"
    model: str = "gpt-4o"
    max_tokens: int = 256
    cache_dir: str | None = "~/.cache/rationalign/judge"
    parse_retries: int = 2         # re-asks after an unparseable answer (bounded; never guessed)
    temperature: float = 0.7       # k repeats are k samples (each cached under its repeat index)
    # What is judged: predictions of an evaluate stage (upstream, default) or a directory laid out
    # like one (<dir>/predictions/<system>/<task>.jsonl).
    predictions_dir: str | None = None
    systems: list[str] | None = None                 # null: evaluate.systems
    comparisons: list[list[str]] | None = None       # [[A, B], ...]; null: last system vs each other one
    field: str = "output"          # output (suggestion + rationale, what users see) | suggestion
    k: int = 3                     # judgements per pair (seed: 3), each with its own shuffled order
    pairwise: bool = True
    rubric: bool = True
    rationale_accuracy: bool = True
    aspects: list[str] = dc_field(default_factory=lambda: list(ASPECTS))
    max_items: int | None = None   # cap on judged inputs per task (cost control); null: all
    ci_level: float = 0.95
    bootstrap_samples: int = 1000
    pairwise_prompt: str = PAIRWISE_PROMPT
    rubric_prompt: str = RUBRIC_PROMPT
    accuracy_prompt: str = ACCURACY_PROMPT
    repair_prompt: str = REPAIR_PROMPT


# The judge is its options (the stage runs pairwise/rubric/accuracy from them), so the entry's
# object and its config are the same dataclass.
JUDGES.add("default", JudgeConfig, config=JudgeConfig)


def parse_judge_config(options: Mapping[str, Any]) -> JudgeConfig:
    options = dict(options)
    name = options.get("name", "default")
    if name not in JUDGES:
        raise ValueError(f"judge.name={name!r}: expected one of {', '.join(JUDGES.names())}")
    c = JUDGES.typed(options, name=name, where="judge")
    if c.k < 1:
        raise ValueError(f"judge.k: must be >= 1, got {c.k}")
    if c.field not in ("output", "suggestion"):
        raise ValueError(f"judge.field={c.field!r}: expected output or suggestion")
    for name, tpl, req in (("pairwise_prompt", c.pairwise_prompt, ("response_1", "response_2")),
                           ("rubric_prompt", c.rubric_prompt, ("response",)),
                           ("accuracy_prompt", c.accuracy_prompt, ("rationale", "edits"))):
        miss = missing_placeholders(tpl, req)
        if miss:
            raise ValueError(f"judge.{name}: template lacks placeholder(s) {miss}")
    for pair in c.comparisons or []:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"judge.comparisons: each entry must be two different systems, got {pair}")
    if not c.aspects:
        raise ValueError("judge.aspects: empty")
    return c
