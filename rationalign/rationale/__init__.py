"""Rationale sources: none, template (offline default), teacher (OpenAI-compatible LLM),
local (our generation engine), file (JSONL by id). Pick one by name with build_source()."""

from rationalign.rationale.base import (
    SOURCES,
    ExplainResult,
    Failure,
    RationaleError,
    RationaleSource,
    build_source,
    edits_for_records,
    register_source,
)
from rationalign.rationale.client import ChatClient, ChatError
from rationalign.rationale.file import FileConfig, FileSource
from rationalign.rationale.local import LocalConfig, LocalSource
from rationalign.rationale.none import NoneConfig, NoneSource
from rationalign.rationale.teacher import TeacherConfig, TeacherSource
from rationalign.rationale.template import TemplateConfig, TemplateSource, template_rationale

__all__ = [
    "SOURCES",
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
    "TeacherConfig",
    "TeacherSource",
    "TemplateConfig",
    "TemplateSource",
    "build_source",
    "edits_for_records",
    "register_source",
    "template_rationale",
]
