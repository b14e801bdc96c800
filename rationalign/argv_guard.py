"""Refuse secrets on the command line before Hydra sees them.

Hydra writes every override to <run>/.hydra/overrides.yaml, config.yaml and hydra.yaml before the
task function runs, and the job's result.json, log and tracker copy them again; scrubbing all of
those afterwards is fragile. So the entrypoint checks sys.argv first and exits with one line that
names the argument (never its value). Keys belong in an environment variable whose NAME goes in
`*.api_key_env`.
"""

from __future__ import annotations

import re
import urllib.parse

from rationalign.secrets import is_secret_key

# Values that look like a credential whatever key they are given to.
_SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{12,}"          # OpenAI / Anthropic style
    r"|hf_[A-Za-z0-9]{20,}"             # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{20,}"      # GitHub
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"   # Slack
    r"|AKIA[0-9A-Z]{16}"                # AWS access key id
    r"|AIza[0-9A-Za-z_\-]{30,}"         # Google API key
    r"|Bearer\s+\S{8,})"
)
_URL_SECRET_PARAMS = {"key", "api_key", "apikey", "api-key", "token", "access_token", "secret", "password", "sig"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

HINT = ("put the key in an environment variable and pass the variable's NAME "
        "(e.g. rationale.api_key_env=OPENAI_API_KEY)")


def _looks_random(value: str) -> bool:
    """A long token mixing letters and digits with no separators: how keys look, not names."""
    return len(value) >= 24 and bool(re.search(r"[0-9]", value)) and bool(re.search(r"[a-z]", value)) \
        and bool(re.search(r"[A-Z]", value))


def _url_problem(value: str) -> str | None:
    for m in re.finditer(r"[a-z][a-z0-9+.\-]*://\S+", value, re.IGNORECASE):
        parts = urllib.parse.urlsplit(m.group(0))
        if parts.password:
            return "a URL with credentials in it"
        for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
            if k.lower() in _URL_SECRET_PARAMS:
                return f"a URL whose query carries '{k}'"
    return None


def secret_problem(arg: str) -> str | None:
    """Why one command-line argument looks like it carries a secret, or None."""
    key, sep, value = arg.partition("=")
    key = key.lstrip("+~").strip()
    if not sep:
        value, key = key, ""
    leaf = key.rsplit(".", 1)[-1]
    if key and is_secret_key(leaf) and value.strip() and value.strip().lower() not in ("null", "none", "''", '""'):
        return f"{key}= is a secret-bearing key"
    if key and leaf.endswith("_env") and value:
        # *_env names a variable; a value that is not a plain identifier (or looks random) is a key.
        if not _ENV_NAME.match(value) or _SECRET_VALUE.search(value) or _looks_random(value):
            return f"{key}= must name an environment variable, and this value looks like a key"
        return None
    if _SECRET_VALUE.search(value):
        return f"{key or 'an argument'} looks like an API key or token"
    url = _url_problem(value)
    if url:
        return f"{key or 'an argument'} is {url}"
    return None


def check_argv(argv: list[str]) -> str | None:
    """The first refusal message for argv (without argv[0]), or None when nothing looks secret."""
    for i, arg in enumerate(argv, 1):
        why = secret_problem(arg)
        if why:
            return f"refusing argument {i}: {why}; nothing was written. Secrets never go on the command line: {HINT}"
    return None


def guard_argv(argv: list[str]) -> None:
    """Exit 2 with one line (the value never echoed) when an argument looks like a secret."""
    import sys

    msg = check_argv(argv)
    if msg:
        print(f"rationalign: {msg}", file=sys.stderr)
        raise SystemExit(2)
