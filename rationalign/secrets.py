"""The one list of config-key names that carry a secret value (API keys, tokens, passwords).

Everything that refuses or masks secrets reads it: the command-line guard (argv_guard), the
rationale/pair-rationale/judge option checks, the tracker's config copy (tracking.redact) and the
sweep's result.json (sweep.parse_overrides). A key is matched on its last dotted part; names that
only *name* a secret (`api_key_env`) do not match.
"""

from __future__ import annotations

import re

# A bare `key`, or a name ending in one of these words (`api_key`, `hf_token`, `db_password`).
SECRET_KEY = re.compile(r"(^key$|(api[_-]?key|apikey|token|secret|password|passwd|authorization)$)",
                        re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    """Whether a config key (dotted or not) holds a secret by its name."""
    return bool(SECRET_KEY.search(str(name).rsplit(".", 1)[-1]))


def secret_key_error(where: str, key: str) -> str:
    """The one-line refusal for a secret-bearing key found in a config node `where`."""
    return (f"{where}.{key}: secrets are never read from config; put the key in an environment "
            f"variable and name that variable in {where}.api_key_env")
