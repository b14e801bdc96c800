"""Rationale sources: none, template (offline default), teacher (OpenAI-compatible LLM),
local (our generation engine), file (JSONL by id), each registered in SOURCES with its typed
options. Pick one by name with build_source(). Their pair mode (preference rationales for
(x, y_w, y_l), stage=pair_rationales) is rationalign.rationale.pairs."""

from rationalign.llm.client import ChatClient, ChatError
from rationalign.rationale.base import (
    SOURCES,
    STAGE_KEYS,
    ExplainResult,
    Failure,
    RationaleError,
    RationaleSource,
    StageOptions,
    build_source,
    edits_for_records,
    local_generator,
    parse_config,
    register_source,
    source_options,
)
from rationalign.rationale.file import FileConfig, FileSource
from rationalign.rationale.local import LocalConfig, LocalSource
from rationalign.rationale.none import NoneConfig, NoneSource
from rationalign.rationale.teacher import TeacherConfig, TeacherSource
from rationalign.rationale.template import TemplateConfig, TemplateSource, template_rationale

__all__ = [
    "SOURCES",
    "STAGE_KEYS",
    "ChatClient",
    "ChatError",
    "ExplainResult",
    "Failure",
    "FileConfig",
    "FileSource",
    "LocalConfig",
    "LocalSource",
    "NoneConfig",
    "NoneSource",
    "RationaleError",
    "RationaleSource",
    "StageOptions",
    "TeacherConfig",
    "TeacherSource",
    "TemplateConfig",
    "TemplateSource",
    "build_source",
    "edits_for_records",
    "local_generator",
    "parse_config",
    "register_source",
    "source_options",
    "template_rationale",
]
