"""Where pair rationales come from: template (offline), teacher (OpenAI-compatible LLM), local (a
model through our engine) or file (JSONL by pair id). Each returns rationales aligned with the
views, {index: error} for the pairs that got none, and an audit row per LLM request."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rationalign.llm.asker import Asker, Question, fill
from rationalign.rationale.file import load_rationales
from rationalign.rationale.pairs.config import (
    PAIR_SOURCES,
    PairFileConfig,
    PairLocalConfig,
    PairTeacherConfig,
    PairTemplateConfig,
)
from rationalign.rationale.pairs.template import template_rationales
from rationalign.rationale.pairs.views import PairView
from rationalign.rationale.prompt import clean_output

log = logging.getLogger(__name__)

Result = tuple[list[str | None], dict[int, str], list[dict]]

REPAIR = "Your answer was empty. Please write the explanation now, in plain sentences."


def generation_prompts(pc: PairTeacherConfig, views: Sequence[PairView]) -> list[str]:
    """The LLM's prompt per pair, in the pair's order; ablation=opposite asks for the rejected one."""
    tpl = pc.general_prompt if pc.style == "general" else pc.detailed_prompt
    return [fill(tpl, v.values(opposite=pc.ablation == "opposite")) for v in views]


@PAIR_SOURCES.register("template", config=PairTemplateConfig)
def from_template(pc: PairTemplateConfig, views: Sequence[PairView], **_: Any) -> Result:
    texts = template_rationales(views, opposite=pc.ablation == "opposite", max_edits=pc.max_edits)
    return list(texts), {}, []


@PAIR_SOURCES.register("file", config=PairFileConfig)
def from_file(pc: PairFileConfig, views: Sequence[PairView], **_: Any) -> Result:
    table = load_rationales(pc.path, pc.id_field, pc.field)
    out: list[str | None] = []
    failed: dict[int, str] = {}
    for i, v in enumerate(views):
        text, where = table.get(v.id, (None, ""))
        if not where:
            failed[i] = f"pair id not found in {pc.path}"
        elif not (text or "").strip():
            failed[i] = f"{where}: no '{pc.field}' for this id"
        out.append(text.strip() if text and text.strip() else None)
    return out, failed, []


@PAIR_SOURCES.register("teacher", config=PairTeacherConfig)
def from_teacher(pc: PairTeacherConfig, views: Sequence[PairView], asker: Asker | None = None, **_: Any) -> Result:
    asker = asker or Asker(pc, parse_retries=pc.parse_retries)
    prompts = generation_prompts(pc, views)
    answers = asker.ask_all([Question(v.id, p) for v, p in zip(views, prompts)],
                            lambda t: clean_output(t, pc.strip_prefix) or None, REPAIR, desc="pair rationales")
    out = [a.value for a in answers]
    failed = {i: a.error for i, a in enumerate(answers) if a.error}
    return out, failed, [{"id": a.key, "prompt": a.prompt, "raw": a.raw, "attempts": a.attempts,
                          "cached": a.cached, "error": a.error} for a in answers]


@PAIR_SOURCES.register("local", config=PairLocalConfig)
def from_local(pc: PairLocalConfig, views: Sequence[PairView], generator: Any = None, **_: Any) -> Result:
    if generator is None or not callable(getattr(generator, "generate", None)):
        raise ValueError("pair_rationale=local needs a generator with .generate(prompts, **sampling)")
    prompts = generation_prompts(pc, views)
    out: list[str | None] = []
    failed: dict[int, str] = {}
    audit = []
    for start in range(0, len(prompts), max(1, pc.batch_size)):
        batch = prompts[start:start + pc.batch_size]
        texts = generator.generate(batch, **pc.sampling)
        if len(texts) != len(batch):
            raise RuntimeError(f"generator returned {len(texts)} outputs for {len(batch)} prompts")
        for j, (p, t) in enumerate(zip(batch, texts)):
            text = clean_output(t or "", pc.strip_prefix)
            if not text:
                failed[start + j] = "local model returned an empty rationale"
            out.append(text or None)
            audit.append({"id": views[start + j].id, "prompt": p, "raw": [t], "error": failed.get(start + j)})
    return out, failed, audit


def generate(pc: PairTemplateConfig, views: Sequence[PairView], **runtime: Any) -> Result:
    return PAIR_SOURCES.get(pc.name)(pc, views, **runtime)
