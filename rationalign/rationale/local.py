"""`local`: rationales from a model through our generation engine (self-rationalization or a
local teacher). Written against a minimal protocol so any engine (hf, vllm, a test double) fits."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from rationalign.rationale.base import RationaleSource, register_source
from rationalign.rationale.prompt import TeacherPrompt, clean_output, paper_teacher_prompt

log = logging.getLogger(__name__)


class GeneratorContractError(RuntimeError):
    """The engine returned the wrong number of outputs: a bug, not a per-record failure."""


class Generator(Protocol):
    def generate(self, prompts: list[str], **sampling: Any) -> list[str]: ...


@dataclass
class LocalConfig:
    name: str = "local"
    model: str | None = None  # what the stage loads into an engine; this module never loads it
    # The prompt is prompts.teacher_template (paper Fig. 3) with the task's Table 10 instruction; the
    # engine lays it out as prompts.layout says, like every other model input.
    strip_prefix: str | None = "###Explanation:"
    batch_size: int = 32
    sampling: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.0, "max_new_tokens": 256})


@register_source("local", LocalConfig)
class LocalSource(RationaleSource):
    needs_edits = True
    needs_target = True

    def __init__(self, config: LocalConfig | None = None, generator: Generator | None = None,
                 prompt: TeacherPrompt | None = None) -> None:
        super().__init__()
        self.config = config or LocalConfig()
        self.prompt = prompt or paper_teacher_prompt()
        if generator is None or not callable(getattr(generator, "generate", None)):
            raise ValueError("rationale=local needs a generator object with .generate(prompts, **sampling); "
                             "the stage builds it from rationale.model and passes generator=")
        if self.config.batch_size < 1:
            raise ValueError(f"rationale.batch_size: must be >= 1, got {self.config.batch_size}")
        self.generator = generator

    def _generate(self, prompts: list[str]) -> list[str]:
        outs = self.generator.generate(prompts, **self.config.sampling)
        if len(outs) != len(prompts):  # a broken engine contract, not a per-record problem
            raise GeneratorContractError(f"generator returned {len(outs)} outputs for {len(prompts)} prompts")
        return list(outs)

    def _explain(self, records, edits):
        prompts = [self.prompt(r, e or []) for r, e in zip(records, edits)]
        out: list[str | None] = [None] * len(prompts)
        failed: dict[int, str] = {}
        bs = self.config.batch_size
        for start in range(0, len(prompts), bs):
            idx = list(range(start, min(start + bs, len(prompts))))
            try:
                texts = self._generate([prompts[i] for i in idx])
            except GeneratorContractError:
                raise
            except Exception as e:  # noqa: BLE001
                # Isolate the bad record(s) rather than failing a whole batch.
                log.warning("local rationale batch %d failed (%s); retrying one by one", start // bs, e)
                texts = []
                for i in idx:
                    try:
                        texts.append(self._generate([prompts[i]])[0])
                    except GeneratorContractError:
                        raise
                    except Exception as e1:  # noqa: BLE001 -- reported per record below
                        texts.append(None)
                        failed[i] = f"generation failed: {type(e1).__name__}: {e1}"
            for i, t in zip(idx, texts):
                if t is None:
                    continue
                t = clean_output(t, self.config.strip_prefix) if isinstance(t, str) else None
                if t:
                    out[i] = t
                else:
                    failed[i] = "generator returned an empty rationale"
        return out, failed
