"""`teacher`: rationales distilled from an LLM behind an OpenAI-compatible endpoint (paper §3.1).

Bounded concurrency, retries in the client, an on-disk cache keyed by sha256(model, temperature,
prompt) so a rerun never pays twice, and a per-record failure report instead of silent drops.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from tqdm.auto import tqdm

from rationalign.io import sha256_json
from rationalign.llm.cache import ResponseCache
from rationalign.llm.client import ChatClient, ChatError, EndpointConfig, EndpointDown, client_for, messages_for
from rationalign.rationale.base import RationaleSource, register_source
from rationalign.rationale.prompt import TeacherPrompt, clean_output, paper_teacher_prompt

log = logging.getLogger(__name__)


@dataclass
class TeacherConfig(EndpointConfig):
    name: str = "teacher"
    # The prompt itself is prompts.teacher_template (paper Fig. 3) with the task's Table 10
    # instruction, rendered by rationalign.prompts; the stage passes it in as `prompt=`.
    strip_prefix: str | None = "###Explanation:"
    cache_dir: str | None = "~/.cache/rationalign/teacher"  # null: no cache
    progress: bool = True


@register_source("teacher", TeacherConfig)
class TeacherSource(RationaleSource):
    needs_edits = True
    needs_target = True

    def __init__(self, config: TeacherConfig | None = None, client: ChatClient | None = None,
                 prompt: TeacherPrompt | None = None) -> None:
        super().__init__()
        c = self.config = config or TeacherConfig()
        self.prompt = prompt or paper_teacher_prompt()
        if c.concurrency < 1:
            raise ValueError(f"rationale.concurrency: must be >= 1, got {c.concurrency}")
        self.client = client or client_for(c)
        self.cache = ResponseCache(c.cache_dir) if c.cache_dir else None

    def messages(self, prompt: str) -> list[dict[str, str]]:
        return messages_for(self.config, prompt)

    def cache_key(self, messages: list[dict[str, str]]) -> str:
        return sha256_json({"model": self.config.model, "temperature": self.config.temperature,
                            "messages": messages})

    def _explain(self, records, edits):
        c = self.config
        prompts = [self.prompt(r, e or []) for r, e in zip(records, edits)]
        answers: dict[str, str] = {}
        errors: dict[str, str] = {}
        todo = []
        for p in dict.fromkeys(prompts):  # identical prompts are asked once
            hit = self.cache.get(self.cache_key(self.messages(p))) if self.cache else None
            if hit is not None:
                answers[p] = hit
            else:
                todo.append(p)
        if todo:
            log.info("teacher: %d prompts (%d cached), %d workers", len(set(prompts)),
                     len(set(prompts)) - len(todo), c.concurrency)
            self._ask_all(todo, answers, errors)
        out: list[str | None] = []
        failed: dict[int, str] = {}
        for i, p in enumerate(prompts):
            text = clean_output(answers[p], c.strip_prefix) if p in answers else None
            if text:
                out.append(text)
            else:
                out.append(None)
                failed[i] = errors.get(p, "teacher returned an empty rationale")
        return out, failed

    def _ask(self, prompt: str) -> str:
        msgs = self.messages(prompt)
        text = getattr(self.client, "redact", str)(self.client.complete(msgs))  # the artifact and the cache
        if self.cache:
            self.cache.put(self.cache_key(msgs), {
                "model": self.config.model, "temperature": self.config.temperature,
                "messages": msgs, "response": text,
            })
        return text

    def _ask_all(self, prompts: list[str], answers: dict, errors: dict) -> None:
        bar = tqdm(total=len(prompts), desc="teacher rationales", disable=not self.config.progress)
        pool = ThreadPoolExecutor(max_workers=self.config.concurrency)
        try:
            futures = {pool.submit(self._ask, p): p for p in prompts}
            for fut in as_completed(futures):
                p = futures[fut]
                try:
                    answers[p] = fut.result()
                except ChatError as e:  # already retried; the key is scrubbed from e
                    errors[p] = str(e)
                except EndpointDown as e:  # the client's circuit breaker (rationale.max_consecutive_...)
                    for f in futures:
                        f.cancel()
                    raise EndpointDown(
                        f"rationale teacher: {e}; stopped with {len(answers)} of {len(prompts)} answered and "
                        "cached. Start the endpoint or fix rationale.base_url (or raise rationale.timeout_s), "
                        "then rerun (answered prompts are not asked again)") from None
                bar.update(1)
                bar.set_postfix(failed=len(errors), refresh=False)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
