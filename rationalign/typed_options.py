"""A component's options (a config node) -> its typed dataclass, with one-line errors naming
`<where>.<key>`: a secret-bearing key, an unknown key, a wrong type, a value out of its `checked`
range. Used by every component group whose options are checked against the chosen entry's
dataclass: rationale, pair_rationale and judge (their entries sit in a `Registry`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rationalign.secrets import is_secret_key, secret_key_error


def check_keys(where: str, options: Mapping[str, Any], cls: type, label: str = "") -> None:
    """Refuse secret-bearing and unknown keys, naming the first one (`label`: e.g. " for source 'x'")."""
    known = {f.name for f in dataclasses.fields(cls)}
    for key in options:
        if is_secret_key(key):
            raise ValueError(secret_key_error(where, key))
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown option{label} (known: {sorted(known)})")


def typed_options(cls: type, options: Mapping[str, Any], where: str, label: str = "") -> Any:
    """cls(**options) after check_keys, each value checked against its annotation by OmegaConf
    (`temperature=hot` is an error naming `<where>.temperature`, not a crash mid-stage) and against
    the field's `checked` range. A '???' value stays as it is, for the component to report."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from rationalign.config import schema_errors

    check_keys(where, options, cls, label)
    try:
        node = OmegaConf.merge(OmegaConf.structured(cls), dict(options))
    except ValidationError as e:
        key = getattr(e, "full_key", None) or "?"
        raise ValueError(f"{where}.{key}={getattr(e, 'value', None)!s}: wrong type "
                         f"({str(e).splitlines()[0]})") from None
    errors = schema_errors(node, cls, prefix=f"{where}.")
    if errors:
        raise ValueError(errors[0])
    return cls(**OmegaConf.to_container(node, resolve=True, throw_on_missing=False))
