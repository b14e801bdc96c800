"""Prompt rendering (pure functions, no model imports): the one place every consumer gets its text.

Configs come from `conf/prompts/*.yaml` (group `prompts`: the paper's Table 8, Table 7 and Fig. 3
templates) and `conf/task/*.yaml` (group `task`, one spec per task under `task.specs.<name>`:
Tables 12, 11 and 10). Both arrive as omegaconf DictConfig or plain dicts.

- `render_prompt`   the writing assistant's prompt (Table 8 with a Table 12 task prompt); under
                    `prompts.layout=chat` the user turn `prompts.chat.user_template` instead
- `render_rm`       the reward model's input (Table 7 with a Table 11 instruction): suggestion only
- `render_teacher`  the rationale teacher's prompt (Fig. 3 with a Table 10 instruction)
                    (its [Edit Content]: one `prompts.edits.line` per edit); the teacher and local
                    rationale sources render every prompt through it (rationale/prompt.py)
How the rendered text reaches a model (plain text or chat template) is `training.chat.Layout`;
joining and splitting suggestion and rationale is `rationalign.responses` (re-exported here); the
typed `prompts` node and the helpers that read config nodes are `rationalign.prompt_config`.

Instruction choice: the spec's `instructions` (with rationale, Table 12) or `plain_instructions`
(the no-rationale baseline) are authoritative, so the with/without-rationale switch always changes
the instruction. When a list has several entries the choice is a stable hash of the record id, so
reruns and other processes pick the same one. `record.instruction` is used only when the spec has
no instruction for that mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from string import Formatter
from typing import Any

from rationalign.cfg_access import cfg_get
from rationalign.prompt_config import (
    LAYOUTS,
    PromptConfigError,
    as_list,
    edit_list_format,
    require,
    response_format,
)
from rationalign.responses import POSITIONS, ParsedResponse, format_response, parse_response

SPEC_FIELDS = ("metric", "column", "instructions", "plain_instructions", "teacher_instruction", "rm_instruction")
TEMPLATE_FIELDS = {
    "instruction_template": ("instruction", "source"),
    "rm_template": ("instruction", "source", "response"),
    "teacher_template": ("instruction", "source", "target", "edits"),
}
# What a template may not leave out (the rest of its placeholders is optional: e.g. an RM template
# without the instruction).
REQUIRED_FIELDS = {"instruction_template": ("source",), "rm_template": ("response",),
                   "teacher_template": ("source", "target"), "chat.user_template": ("source",)}
CHAT_USER_FIELDS = ("instruction", "source")
EDIT_LINE_FIELDS = ("n", "source", "target", "type")


def get_spec(task_cfg: Any, name: str) -> Any:
    """`task_cfg.specs[name]`, with an error naming the known tasks."""
    specs = cfg_get(task_cfg, "specs") or {}
    spec = cfg_get(specs, name)
    if spec is None:
        raise PromptConfigError(f"task.specs: no spec for task '{name}' (known: {sorted(specs)})")
    return spec


def task_columns(spec: Any) -> list[str]:
    """Table 1 column name(s) of a task spec; `column` may be one name or a list."""
    return [str(c) for c in as_list(cfg_get(spec, "column"))]


def validate_spec(spec: Any, name: str = "<spec>") -> None:
    """Raise PromptConfigError naming the first missing or empty field of a task spec."""
    where = f"task.specs.{name}"
    for key in SPEC_FIELDS:
        value = cfg_get(spec, key)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PromptConfigError(f"{where}: missing field '{key}'")
        if key in ("instructions", "plain_instructions"):
            items = as_list(value)
            if not items or not all(isinstance(s, str) and s.strip() for s in items):
                raise PromptConfigError(f"{where}.{key}: needs a non-empty list of non-empty strings")


def template_fields(template: str) -> set[str]:
    """Names of the `{placeholders}` in a str.format template."""
    return {f for _, f, _, _ in Formatter().parse(template) if f}


def _check_fields(template: Any, key: str, allowed: Iterable[str]) -> None:
    if not isinstance(template, str):
        raise PromptConfigError(f"prompts.{key}: must be a string")
    fields = template_fields(template)
    unknown = sorted(fields - set(allowed))
    missing = sorted(set(REQUIRED_FIELDS.get(key, ())) - fields)
    if unknown or missing:
        raise PromptConfigError(f"prompts.{key}: placeholders {sorted(fields)}: "
                                + (f"unknown {unknown} " if unknown else "") + (f"missing {missing} " if missing else "")
                                + f"(allowed: {sorted(allowed)})")


def validate_prompts(prompts_cfg: Any) -> None:
    """The layout is known and every template uses only its documented placeholders, the essential ones
    included (REQUIRED_FIELDS)."""
    layout = cfg_get(prompts_cfg, "layout", "plain")
    if layout not in LAYOUTS:
        raise PromptConfigError(f"prompts.layout={layout}: expected one of {', '.join(LAYOUTS)}")
    for key, expected in TEMPLATE_FIELDS.items():
        _check_fields(require(prompts_cfg, key, "prompts"), key, expected)
    if layout == "chat":
        user = require(cfg_get(prompts_cfg, "chat") or {}, "user_template", "prompts.chat")
        _check_fields(user, "chat.user_template", CHAT_USER_FIELDS)
    _check_fields(edit_list_format(prompts_cfg)["line"], "edits.line", EDIT_LINE_FIELDS)
    response_format(prompts_cfg)


def _fill(template: str, where: str, **values: str) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise PromptConfigError(f"{where}: cannot fill template ({type(e).__name__}: {e})") from None


# ----------------------------------------------------------------------------- instructions


def stable_index(key: str, n: int) -> int:
    """Deterministic index in [0, n) from a string (independent of PYTHONHASHSEED)."""
    if n <= 0:
        raise ValueError("stable_index: n must be positive")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def choose_instruction(
    spec: Any,
    record_id: str,
    with_rationale: bool = True,
    instruction_index: int | None = None,
    fallback: str | None = None,
) -> str:
    """The instruction for one record: `instructions` (with rationale) or `plain_instructions`.

    `instruction_index` picks explicitly (modulo the list length); otherwise the record id's hash
    does. `fallback` (e.g. record.instruction) is used only when the list is empty.
    """
    key = "instructions" if with_rationale else "plain_instructions"
    options = [s for s in as_list(cfg_get(spec, key)) if isinstance(s, str) and s.strip()]
    if not options:
        if fallback and fallback.strip():
            return fallback
        raise PromptConfigError(f"task spec: no '{key}' and the record has no instruction")
    if instruction_index is not None:
        return options[instruction_index % len(options)]
    return options[stable_index(str(record_id), len(options))]


# ----------------------------------------------------------------------------- prompts


def render_prompt(
    prompts_cfg: Any,
    spec: Any,
    record: Any,
    with_rationale: bool = True,
    instruction_index: int | None = None,
) -> str:
    """The writing assistant's prompt for one record: Table 8 (`instruction_template`) under
    prompts.layout=plain, the user turn `chat.user_template` under prompts.layout=chat (the chat
    template itself is applied by `training.chat.Layout`, where the tokenizer is).

    `record` is a `Record` or a dict with at least `id` and `source` (and optionally `instruction`).
    """
    if cfg_get(prompts_cfg, "layout", "plain") == "chat":
        key, template = "chat.user_template", require(cfg_get(prompts_cfg, "chat") or {}, "user_template",
                                                       "prompts.chat")
    else:
        key, template = "instruction_template", require(prompts_cfg, "instruction_template", "prompts")
    record_id = cfg_get(record, "id")
    source = cfg_get(record, "source")
    if record_id is None or source is None:
        raise PromptConfigError("render_prompt: the record needs 'id' and 'source'")
    instruction = choose_instruction(
        spec, str(record_id), with_rationale, instruction_index, fallback=cfg_get(record, "instruction")
    )
    return _fill(template, f"prompts.{key}", instruction=instruction, source=source)


def render_rm(prompts_cfg: Any, spec: Any, source: str, suggestion: str) -> str:
    """Reward-model input (Table 7): the task's rm_instruction (Table 11), the source and the suggestion only."""
    template = require(prompts_cfg, "rm_template", "prompts")
    instruction = require(spec, "rm_instruction", "task spec")
    return _fill(template, "prompts.rm_template", instruction=instruction, source=source, response=suggestion)


def _edit_fields(edit: Any) -> tuple[str, str, str]:
    if isinstance(edit, Mapping):
        o = edit.get("o_str", edit.get("original", edit.get("source", "")))
        c = edit.get("c_str", edit.get("corrected", edit.get("target", "")))
        return str(o or ""), str(c or ""), str(edit.get("type", "") or "")
    if hasattr(edit, "o_str") and hasattr(edit, "c_str"):
        return str(edit.o_str), str(edit.c_str), str(getattr(edit, "type", "") or "")
    if isinstance(edit, (tuple, list)) and len(edit) in (2, 3):
        return str(edit[0]), str(edit[1]), str(edit[2]) if len(edit) == 3 else ""
    raise PromptConfigError(f"render_teacher: cannot read an edit from {edit!r}")


def _edit_list(edits: str | Iterable[Any] | None, prompts_cfg: Any = None) -> str:
    """[Edit Content] of Fig. 3: one `prompts.edits.line` per edit (`prompts.edits.none` when there
    are none). Accepts a pre-formatted string, or a sequence of `rationalign.edits.Edit`, objects
    with `o_str`/`c_str`, dicts (`o_str`/`c_str` or `original`/`corrected`), or (orig, corr[, type])."""
    if isinstance(edits, str):
        return edits
    fmt = edit_list_format(prompts_cfg)
    items = [_edit_fields(e) for e in (edits or [])]
    if not items:
        return fmt["none"]
    return "\n".join(_fill(fmt["line"], "prompts.edits.line", n=str(n), source=o, target=c, type=t)
                     for n, (o, c, t) in enumerate(items, 1))


def render_teacher(prompts_cfg: Any, spec: Any, source: str, target: str, edits: str | Iterable[Any] | None) -> str:
    """Rationale-teacher prompt (Fig. 3): the task's teacher_instruction (Table 10), the source, the
    gold revision and its edits."""
    template = require(prompts_cfg, "teacher_template", "prompts")
    instruction = require(spec, "teacher_instruction", "task spec")
    return _fill(template, "prompts.teacher_template", instruction=instruction, source=source, target=target,
                 edits=_edit_list(edits, prompts_cfg))


__all__ = [
    "POSITIONS",
    "ParsedResponse",
    "PromptConfigError",
    "choose_instruction",
    "format_response",
    "get_spec",
    "parse_response",
    "render_prompt",
    "render_rm",
    "render_teacher",
    "stable_index",
    "task_columns",
    "template_fields",
    "validate_prompts",
    "validate_spec",
]
