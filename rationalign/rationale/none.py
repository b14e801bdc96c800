"""`none`: no rationale at all (the suggestion-only baselines)."""

from __future__ import annotations

from dataclasses import dataclass

from rationalign.rationale.base import RationaleSource, register_source


@dataclass
class NoneConfig:
    name: str = "none"


@register_source("none", NoneConfig)
class NoneSource(RationaleSource):
    def __init__(self, config: NoneConfig | None = None) -> None:
        super().__init__()
        self.config = config or NoneConfig()

    def _explain(self, records, edits):
        return [None] * len(records), {}
