"""Ask an OpenAI-compatible endpoint many questions: on-disk cache, bounded concurrency, HTTP
retries (in ChatClient) and bounded *re-asks* when an answer cannot be parsed.

An unparseable answer is never guessed: the conversation continues with the raw answer and a
repair message ("answer in the required format"), at most `parse_retries` times; after that the
question is reported as unparsed. Every attempt's prompt and raw answer is kept in the Answer, so
stages can store each judgement with what was asked and what came back.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from rationalign.io import sha256_json
from rationalign.llm.cache import ResponseCache
from rationalign.llm.client import ChatClient, ChatError, EndpointConfig, client_for, messages_for

log = logging.getLogger(__name__)


_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Fill the known {placeholders} only: other braces and braces inside the values stay as written."""
    return _FIELD.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), template)


def missing_placeholders(template: str, required: Sequence[str]) -> list[str]:
    return ["{" + p + "}" for p in required if "{" + p + "}" not in template]


@dataclass
class Question:
    key: str                       # the caller's id for this question
    prompt: str                    # the user message
    sample: int = 0                # repeat index: part of the cache key, so k repeats are k answers


@dataclass
class Answer:
    key: str
    prompt: str
    sample: int
    value: Any = None              # the parsed value; None when unparsed or failed
    raw: list[str] = field(default_factory=list)   # every raw answer, in order
    attempts: int = 0              # answers received (1 + re-asks)
    cached: int = 0                # how many of them came from the cache
    error: str | None = None       # "unparseable ..." or the request error

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def unparsed(self) -> bool:
        return self.error is not None and self.error.startswith("unparseable")

    def record(self) -> dict:
        return dataclasses.asdict(self)


class Asker:
    """`parse_retries`: re-asks after an unparseable answer (bounded; never guessed). The configs
    that use an Asker (judge, pair_rationale=teacher) declare it beside their EndpointConfig."""

    def __init__(self, config: EndpointConfig, client: ChatClient | None = None, *, parse_retries: int = 2) -> None:
        c = self.config = config
        self.parse_retries = int(parse_retries)
        if c.concurrency < 1:
            raise ValueError(f"concurrency: must be >= 1, got {c.concurrency}")
        if self.parse_retries < 0:
            raise ValueError(f"parse_retries: must be >= 0, got {self.parse_retries}")
        self.client = client or client_for(c)
        self.cache = ResponseCache(c.cache_dir) if c.cache_dir else None

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        return messages_for(self.config, prompt)

    def _key(self, messages: list[dict[str, str]], sample: int) -> str:
        return sha256_json({"model": self.config.model, "temperature": self.config.temperature,
                            "sample": sample, "messages": messages})

    def _complete(self, messages: list[dict[str, str]], sample: int) -> tuple[str, bool]:
        key = self._key(messages, sample)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit, True
        text = self.client.complete(messages)
        text = getattr(self.client, "redact", str)(text)
        if self.cache is not None:
            self.cache.put(key, {"model": self.config.model, "temperature": self.config.temperature,
                                 "sample": sample, "messages": messages, "response": text})
        return text, False

    def ask_one(self, q: Question, parse: Callable[[str], Any], repair: str) -> Answer:
        ans = Answer(q.key, q.prompt, q.sample)
        messages = self._messages(q.prompt)
        for _attempt in range(self.parse_retries + 1):
            try:
                raw, cached = self._complete(messages, q.sample)
            except ChatError as e:  # already retried by the client; the key is scrubbed from e
                ans.error = f"request failed: {e}"
                return ans
            ans.raw.append(raw)
            ans.attempts += 1
            ans.cached += int(cached)
            value = parse(raw)
            if value is not None:
                ans.value = value
                return ans
            messages = messages + [{"role": "assistant", "content": raw}, {"role": "user", "content": repair}]
        ans.error = f"unparseable after {ans.attempts} answer(s)"
        return ans

    def ask_all(self, questions: Sequence[Question], parse: Callable[[str], Any], repair: str,
                desc: str = "llm") -> list[Answer]:
        """Answers aligned with `questions`; failures are reported per question, never raised."""
        from tqdm.auto import tqdm

        out: list[Answer | None] = [None] * len(questions)
        bar = tqdm(total=len(questions), desc=desc, disable=not self.config.progress)
        pool = ThreadPoolExecutor(max_workers=self.config.concurrency)
        try:
            futs = {pool.submit(self.ask_one, q, parse, repair): i for i, q in enumerate(questions)}
            for fut in as_completed(futs):
                out[futs[fut]] = fut.result()
                bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        bad = [a for a in out if a is not None and not a.ok]
        if bad:
            log.warning("%s: %d/%d questions got no usable answer (e.g. %s: %s)", desc, len(bad), len(out),
                        bad[0].key, bad[0].error)
        return out  # type: ignore[return-value]
