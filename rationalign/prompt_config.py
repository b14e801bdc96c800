"""The `prompts` config group as a typed dataclass (PromptsConfig, RootConfig.prompts), and reading
prompts/task config nodes: DictConfig, dicts and plain objects alike (tests and library callers pass
plain dicts). Validation of the templates' placeholders is `rationalign.prompts.validate_prompts`,
run once before any stage (cli.validate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rationalign.cfg_access import cfg_get

# How a rendered prompt reaches the model (training.chat.Layout).
LAYOUTS = ("plain", "chat")


class PromptConfigError(ValueError):
    """A prompts/task config is missing a field or has a bad template; the message names it."""


@dataclass
class ChatPrompts:
    """prompts.layout=chat only: the system turn and the user turn's template."""

    system: str | None = None
    user_template: str | None = None


@dataclass
class ResponseFormat:
    """How the writing assistant's answer joins suggestion and rationale. Their ORDER is
    `rationale.position` (after | before | none), the one switch every stage reads."""

    rationale_marker: str = "Explanation:"
    suggestion_marker: str = "Revised text:"
    separator: str = "\n"


@dataclass
class EditListFormat:
    """[Edit Content] of the teacher prompt (Fig. 3): one `line` per edit, `none` for no edit."""

    line: str = '{n}. "{source}" -> "{target}"'
    none: str = "(no edits)"


@dataclass
class PromptsConfig:
    """conf/prompts/*.yaml. A template left null is reported by validate_prompts ("missing field")."""

    layout: str = "plain"  # plain | chat (checked by validate_prompts, with its own message)
    instruction_template: str | None = None  # Table 8
    chat: ChatPrompts = field(default_factory=ChatPrompts)
    response: ResponseFormat = field(default_factory=ResponseFormat)
    rm_template: str | None = None  # Table 7
    teacher_template: str | None = None  # Fig. 3
    edits: EditListFormat = field(default_factory=EditListFormat)


def require(cfg: Any, key: str, where: str) -> Any:
    value = cfg_get(cfg, key)
    if value is None:
        raise PromptConfigError(f"{where}: missing field '{key}'")
    return value


def as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _section(prompts_cfg: Any, key: str, defaults: Any) -> dict[str, str]:
    """A prompts sub-node as {field: text}, its dataclass defaults where the node leaves a field out."""
    node = cfg_get(prompts_cfg, key)
    out = {k: str(v) for k, v in vars(defaults).items()}
    for k in out:
        value = cfg_get(node, k) if node is not None else None
        if value is not None:
            out[k] = str(value)
    return out


def response_format(prompts_cfg: Any) -> dict[str, str]:
    """prompts.response as {rationale_marker, suggestion_marker, separator}; an empty marker is an error."""
    out = _section(prompts_cfg, "response", ResponseFormat())
    for key in ("rationale_marker", "suggestion_marker"):
        if not out[key].strip():
            raise PromptConfigError(f"prompts.response.{key}: must not be empty")
    return out


def edit_list_format(prompts_cfg: Any) -> dict[str, str]:
    """prompts.edits as {line, none}."""
    return _section(prompts_cfg, "edits", EditListFormat())
