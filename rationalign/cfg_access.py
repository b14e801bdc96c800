"""One getter for config nodes: components receive DictConfigs from Hydra, plain dicts from tests
and scripts, and dataclass instances from `Registry.typed`, and read them all the same way."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


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


def cache_dir(cfg: Any) -> Path:
    """The run's model/download cache (`paths.cache`)."""
    return Path(cfg.paths.cache)


def device_of(cfg: Any) -> str:
    """`device`, with `auto` resolved to cuda when one is visible."""
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device
