"""The one checker of a component's options: a config node -> the entry's typed dataclass, with
one-line errors naming `<where>.<key>`: a secret-bearing key, an unknown key (with a "did you
mean"), a wrong type, a value out of its `checked` range. `Registry.typed` calls it for every
component kind (losses, rationale and pair-rationale sources, judge, ...)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rationalign.checked import unknown_key_error
from rationalign.secrets import is_secret_key, secret_key_error


def typed_options(cls: type, options: Mapping[str, Any], where: str, label: str = "", prefix: str = "") -> Any:
    """cls(**options), after refusing secret-bearing and unknown keys and checking each value against
    its annotation by OmegaConf (`temperature=hot` names `<where>.temperature`, not a crash
    mid-stage) and against the field's `checked` range. Raises ValueError with every problem, `; `
    joined, after `prefix` (e.g. "loss=mpo: "). `label` follows "unknown key" (e.g. " for source 'x'").
    A '???' value stays as it is, for the component to report."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rationalign.config import schema_errors

    known = [f.name for f in dataclasses.fields(cls)]
    errors = []
    for key in options:
        if is_secret_key(key):
            errors.append(secret_key_error(where, key))
        elif key not in known:
            errors.append(unknown_key_error(f"{where}.{key}", known, label))
    if not errors:
        try:
            node = OmegaConf.merge(OmegaConf.structured(cls), dict(options))
        except OmegaConfBaseException as e:  # ValidationError and friends name the key
            key = getattr(e, "full_key", None) or "?"
            errors.append(f"{where}.{key}={getattr(e, 'value', None)!s}: wrong type ({str(e).splitlines()[0]})")
        else:
            errors = schema_errors(node, cls, prefix=f"{where}.")  # checked() ranges
    if errors:
        raise ValueError(prefix + "; ".join(errors))
    return cls(**OmegaConf.to_container(node, resolve=True, throw_on_missing=False))
