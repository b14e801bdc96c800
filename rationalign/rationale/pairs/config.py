"""Options of stage=pair_rationales (the `pair_rationale` config group): one typed dataclass per
source, registered beside the source in PAIR_SOURCES, and the default prompts.

The generation prompts are FAITHFUL IN SPIRIT to the seed paper ("Data-Centric Human Preference
Optimization with Rationales", Just et al. 2024, App. B.5 general / B.6 detailed), NOT its exact
text; conf/pair_rationale/*.yaml carry the same text and are where the verbatim wording goes.
Placeholders: {prompt} {response_a} {response_b} {preferred} {other} (labels "A"/"B").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from rationalign.llm.asker import missing_placeholders
from rationalign.llm.client import EndpointConfig
from rationalign.registry import Registry

# What the policy scores r under: log pi(r | x, y_w > y_l). The two responses appear in the
# per-pair order recorded in the row (meta.rationale_order), so the preferred one is not always A.
CONDITION_TEMPLATE = """\
{prompt}

Response A:
{response_a}

Response B:
{response_b}

Response {preferred} is better than Response {other}. Explain why."""

GENERAL_PROMPT = """\
Below are a user's request and two responses to it. Response {preferred} is preferred over Response \
{other}. In two or three sentences, explain why Response {preferred} is better, in general terms \
such as correctness, clarity, conciseness, fluency and faithfulness to the request. Do not quote the \
responses and do not mention that you were told which one is preferred.

Request:
{prompt}

Response A:
{response_a}

Response B:
{response_b}

Rationale:"""

DETAILED_PROMPT = """\
Below are a user's request and two responses to it. Response {preferred} is preferred over Response \
{other}. Explain, specifically for this request and these two responses, why Response {preferred} is \
better: point to the concrete words or changes where the responses differ and say what each one \
gets right or wrong. Be brief (at most four sentences) and do not mention that you were told which \
one is preferred.

Request:
{prompt}

Response A:
{response_a}

Response B:
{response_b}

Rationale:"""

PLACEHOLDERS = ("prompt", "response_a", "response_b", "preferred", "other")

# name -> the source function and its typed options; the functions register in pairs/sources.py.
PAIR_SOURCES: Registry = Registry("pair-rationale source", group="pair_rationale")


@dataclass
class PairTemplateConfig:
    """Options of every pair source (conf/pair_rationale/template.yaml, which the others extend)."""

    name: str = "template"          # template | teacher | local | file
    pairs: str | None = None        # a pairs file ({prompt, chosen, rejected} or D_H); null: the pairs stage
    ablation: str = "none"          # none | permute (shuffled across pairs) | opposite (argues for y_l)
    order: str = "random"           # random (seeded per pair) | chosen_first (leaks the label) | rejected_first
    on_error: str = "fail"          # fail | skip: pairs whose rationale failed
    max_edits: int = 6              # template: differences named before "and N more"
    condition_template: str = CONDITION_TEMPLATE


@dataclass
class PairFileConfig(PairTemplateConfig):
    name: str = "file"
    path: str | None = None
    id_field: str = "id"
    field: str = "rationale"


@dataclass
class PairTeacherConfig(PairTemplateConfig, EndpointConfig):
    name: str = "teacher"
    style: str = "detailed"         # general | detailed (seed App. B.5 / B.6)
    general_prompt: str = GENERAL_PROMPT
    detailed_prompt: str = DETAILED_PROMPT
    strip_prefix: str | None = "Rationale:"
    parse_retries: int = 2          # re-asks after an empty answer
    cache_dir: str | None = "~/.cache/rationalign/pair_rationale"


@dataclass
class PairLocalConfig(PairTeacherConfig):
    """A model through our engine (null = the configured model); the prompts are the teacher's."""

    name: str = "local"
    model: str | None = None
    batch_size: int = 16
    sampling: dict[str, Any] = dc_field(default_factory=lambda: {"temperature": 0.0, "max_new_tokens": 192})


def parse_pair_rationale_config(options: Mapping[str, Any]) -> PairTemplateConfig:
    options = dict(options)
    name = options.get("name", "template")
    if name not in PAIR_SOURCES:
        raise ValueError(f"pair_rationale.name={name!r}: expected one of {', '.join(PAIR_SOURCES.names())}")
    c = PAIR_SOURCES.typed(options, name=name, where="pair_rationale")
    if isinstance(c, PairTeacherConfig) and c.style not in ("general", "detailed"):
        raise ValueError(f"pair_rationale.style={c.style!r}: expected general or detailed")
    if c.ablation not in ("none", "permute", "opposite"):
        raise ValueError(f"pair_rationale.ablation={c.ablation!r}: expected none, permute or opposite")
    if c.order not in ("random", "chosen_first", "rejected_first"):
        raise ValueError(f"pair_rationale.order={c.order!r}: expected random, chosen_first or rejected_first")
    if c.on_error not in ("fail", "skip"):
        raise ValueError(f"pair_rationale.on_error={c.on_error!r}: expected fail or skip")
    if isinstance(c, PairFileConfig) and not c.path:
        raise ValueError("pair_rationale.path: required for pair_rationale=file (a JSONL of {id, rationale})")
    if isinstance(c, PairFileConfig) and c.ablation == "opposite":
        raise ValueError("pair_rationale.ablation=opposite: a file's rationales cannot be turned around; "
                         "use template, teacher or local")
    templates = ["condition_template"] + (["general_prompt", "detailed_prompt"]
                                          if isinstance(c, PairTeacherConfig) else [])
    for key in templates:
        miss = missing_placeholders(getattr(c, key), ("response_a", "response_b", "preferred"))
        if miss:
            raise ValueError(f"pair_rationale.{key}: template lacks placeholder(s) {miss}")
    return c
