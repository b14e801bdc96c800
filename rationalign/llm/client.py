"""A small client for any OpenAI-compatible /chat/completions endpoint (OpenAI, vLLM serve,
llama.cpp server, TGI, ...), with retries, and the one EndpointConfig that says where it points.
Stdlib only, so it adds no dependency; the teacher rationale source, the teacher pair-rationale
source and the LLM-judge stage all use it.

The API key is read from the environment variable named by `api_key_env`, sent only in the
Authorization header, and scrubbed from every error message this module produces.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rationalign.config import checked

log = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx


@dataclass
class EndpointConfig:
    """Where and how to call an OpenAI-compatible chat-completions endpoint: the options every LLM
    caller shares (rationale=teacher, pair_rationale=teacher, judge), each adding its own beside them."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str | None = "OPENAI_API_KEY"  # the variable's NAME; the key stays in the env
    temperature: float = checked(0.0, ge=0, le=2)
    max_tokens: int = checked(512, ge=1)
    concurrency: int = checked(8, ge=1)
    max_retries: int = checked(5, ge=0)  # HTTP-level: 429 (Retry-After honoured), 5xx, timeouts, bad bodies
    timeout_s: float = checked(60.0, gt=0)
    backoff_base_s: float = checked(1.0, ge=0)
    backoff_max_s: float = checked(60.0, ge=0)
    # Circuit breaker: this many requests in a row (retries included, across workers) that get no
    # answer (cannot connect, or time out) end the stage with one line; 0 = off.
    max_consecutive_connection_failures: int = checked(5, ge=0)
    cache_dir: str | None = None  # answers on disk, keyed by sha256(model, temperature, messages); null: none
    system_prompt: str | None = None
    progress: bool = False


def client_for(c: EndpointConfig) -> ChatClient:
    """The ChatClient an EndpointConfig describes."""
    return ChatClient(c.base_url, c.model, api_key_env=c.api_key_env, temperature=c.temperature,
                      max_tokens=c.max_tokens, timeout_s=c.timeout_s, max_retries=c.max_retries,
                      backoff_base_s=c.backoff_base_s, backoff_max_s=c.backoff_max_s,
                      max_consecutive_connection_failures=c.max_consecutive_connection_failures)


def messages_for(c: EndpointConfig, prompt: str) -> list[dict[str, str]]:
    """The conversation for one prompt: the configured system turn (if any), then the prompt."""
    return ([{"role": "system", "content": c.system_prompt}] if c.system_prompt else []) + [
        {"role": "user", "content": prompt}]


class ChatError(RuntimeError):
    """A request that failed; `retryable` says whether trying again could help."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None, connection: bool = False, timed_out: bool = False) -> None:
        super().__init__(message)
        self.connection = connection  # no answer: could not connect, connection dropped, or timed out
        self.timed_out = timed_out  # connected (or tried to) and waited timeout_s in vain
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After is seconds or an HTTP date; anything unparseable is ignored."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def chat_url(base_url: str) -> str:
    """Accept 'http://host/v1' or the full '.../chat/completions' URL."""
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


class EndpointDown(RuntimeError):
    """The circuit breaker tripped: the endpoint is unreachable, so the stage ends now."""


class Breaker:
    """Counts attempts in a row that got no answer (across threads; an answer resets it). At `limit`
    it trips: every request in flight or waiting to retry then raises EndpointDown, so a dead endpoint
    costs about one timeout_s, not (max_retries + 1) x timeout_s per request. 0 = off."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self._lock = threading.Lock()
        self._failures: list[ChatError] = []
        self.tripped: EndpointDown | None = None

    def success(self) -> None:
        with self._lock:
            self._failures.clear()

    def failure(self, url: str, e: ChatError, timeout_s: float) -> None:
        with self._lock:
            self._failures.append(e)
            if self.limit and len(self._failures) >= self.limit and self.tripped is None:
                n, timeouts = len(self._failures), sum(f.timed_out for f in self._failures)
                if timeouts == n:
                    what = f"timed out (no answer within timeout_s={timeout_s:g}s) from"
                elif timeouts == 0:
                    what = "could not connect to"
                else:
                    what = f"got no answer ({timeouts} timed out, {n - timeouts} could not connect) from"
                self.tripped = EndpointDown(f"{n} requests in a row {what} {url} (last: {e})")
            if self.tripped is not None:
                raise EndpointDown(str(self.tripped)) from None


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_max_s: float = 300.0,
        extra_body: dict[str, Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_consecutive_connection_failures: int = 0,
    ) -> None:
        if not base_url:
            raise ValueError("base_url: empty (e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)")
        if not model:
            raise ValueError("model: empty")
        self.url = chat_url(base_url)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep
        self.breaker = Breaker(max_consecutive_connection_failures)
        self._api_key = ""
        if api_key_env:
            self._api_key = os.environ.get(api_key_env, "")
            if not self._api_key:
                # Name the variable, never a value.
                raise ValueError(f"api_key_env: environment variable '{api_key_env}' is not set or empty")
        host = urllib.parse.urlsplit(self.url).hostname or ""
        # Local servers must not be routed through an HTTP(S)_PROXY from the environment.
        handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # no key, ever
        return f"ChatClient(url={self.url!r}, model={self.model!r}, auth={'yes' if self._api_key else 'no'})"

    def redact(self, text: str) -> str:
        """Scrub the API key from text that may reach logs, exceptions or caches."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def complete(self, messages: Sequence[dict[str, str]]) -> str:
        """The assistant message's content, with the API key scrubbed (an endpoint may echo the
        Authorization header, and answers reach artifacts); retries retryable failures, then raises
        ChatError, or EndpointDown once the breaker has tripped."""
        body = {"model": self.model, "messages": list(messages), "temperature": self.temperature,
                "max_tokens": self.max_tokens, **self.extra_body}
        attempt = 0
        while True:
            if self.breaker.tripped is not None:
                raise EndpointDown(str(self.breaker.tripped))
            try:
                text = self._request_once(body)
            except ChatError as e:
                if e.connection:
                    self.breaker.failure(self.url, e, self.timeout_s)
                if not e.retryable or attempt >= self.max_retries:
                    if attempt:
                        raise ChatError(f"{e} (after {attempt + 1} attempts)", retryable=e.retryable,
                                        status=e.status, connection=e.connection, timed_out=e.timed_out) from None
                    raise
                delay = self._delay(attempt, e.retry_after)
                log.debug("chat request failed (%s); retry %d/%d in %.2fs", e, attempt + 1,
                          self.max_retries, delay)
                self._sleep(delay)
                attempt += 1
            else:
                self.breaker.success()
                return self.redact(text)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:  # the server knows its rate window better than we do
            return min(retry_after, self.retry_after_max_s)
        # Exponential backoff with jitter, so parallel workers don't retry in lockstep.
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return cap * random.uniform(0.5, 1.0)

    def _request_once(self, body: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"),
                                     headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read(500).decode("utf-8", "replace") if e.fp else ""
            status = e.code
            raise ChatError(
                self.redact(f"HTTP {status} from {self.url}: {detail.strip()[:300]}"),
                retryable=status in _RETRY_STATUS or status >= 500, status=status,
                retry_after=_parse_retry_after(e.headers.get("Retry-After") if e.headers else None),
            ) from None
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            # Timeouts, refused/reset connections, truncated responses: all transient.
            reason = getattr(e, "reason", None) or e
            raise ChatError(self.redact(f"{type(reason).__name__} talking to {self.url}: {reason}"),
                            retryable=True, connection=True, timed_out=isinstance(reason, TimeoutError)) from None
        return self._parse(raw)

    def _parse(self, raw: bytes) -> str:
        """Malformed bodies are retryable: proxies and overloaded servers do send them."""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            snippet = raw[:120].decode("utf-8", "replace")
            raise ChatError(self.redact(f"malformed response (not JSON): {snippet!r}"), retryable=True) from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ChatError(self.redact(f"malformed response (no choices[0].message.content; got {keys})"),
                            retryable=True) from None
        if not isinstance(content, str) or not content.strip():
            raise ChatError("malformed response (empty message content)", retryable=True)
        return content
