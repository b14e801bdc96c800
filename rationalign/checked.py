"""`checked(...)`: a dataclass field with its allowed range or values beside it, and the check itself;
the one wording of an unknown-key error.

Below rationalign.config so that component modules (losses, rationale sources, LLM endpoints) can
declare their typed options without importing the root schema (and Hydra) it pulls in.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from omegaconf import MISSING


def checked(default: Any = MISSING, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: tuple[str, ...] | None = None, factory: Any = None) -> Any:
    """A dataclass field with its allowed range or values beside it; `schema_errors` enforces them
    before any stage runs (OmegaConf only checks types)."""
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt), ("choices", choices)) if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def range_error(key: str, value: Any, meta: dict) -> str | None:
    """'key=value: why' when value breaks the range or choices in a checked() field's metadata, else None."""
    if value is None:
        return None
    if "choices" in meta:
        if str(value) not in meta["choices"]:
            return f"{key}={value}: expected one of {', '.join(meta['choices'])}"
        return None
    bounds = (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
              ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b))
    for name, sym, ok in bounds:
        if name in meta and not ok(value, meta[name]):
            want = " and ".join(f"{s} {meta[n]}" for n, s, _ in bounds if n in meta)
            return f"{key}={value}: out of range (must be {want})"
    return None


def unknown_key_error(dotted: str, known: list[str], label: str = "") -> str:
    """`<dotted>: unknown key` with the known keys that start alike, or all of them."""
    key = dotted.rsplit(".", 1)[-1]
    close = [k for k in known if k.startswith(key[:3])]
    if close:
        hint = f" (did you mean {', '.join(close)}?)"
    else:
        hint = f" (known: {', '.join(sorted(known))})" if known else " (it takes no options)"
    return f"{dotted}: unknown key{label}{hint}"
