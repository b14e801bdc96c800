"""Reading the prompts/task config nodes: DictConfig, dicts and plain objects alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PromptConfigError(ValueError):
    """A prompts/task config is missing a field or has a bad template; the message names it."""


def cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """`cfg.key` or `cfg[key]`, for DictConfig, dicts and plain objects; `default` if absent."""
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    try:  # DictConfig supports .get; attribute access on a missing key may raise in struct mode
        return cfg.get(key, default)  # type: ignore[union-attr]
    except AttributeError:
        return getattr(cfg, key, default)


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
