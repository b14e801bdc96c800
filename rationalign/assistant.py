"""The writing assistant as its user meets it: a text and a task in; the suggestion, its ERRANT edits
and its rationale cut into explanations, each aligned to the edit it explains, out.

`Assistant` loads a system once (the base model, a trained stage of this run, or `path:<dir>`) and
answers many requests (stage=predict, stage=serve); `explain_outputs` turns raw model outputs into
answers and is what the tests drive with scripted outputs.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rationalign.data.records import Record
from rationalign.io import iter_jsonl, read_text_located
from rationalign.rationale.grounded import check_mode

SYSTEM_STAGES = {"sft": "sft", "aligned": "align", "quark": "quark"}


class PredictInputError(ValueError):
    """Bad input to predict/serve; the message names the file, line and field (or the request field)."""


def explain_outputs(tasks: Sequence[str], sources: Sequence[str], outputs: Sequence[str], position: str,
                    prompts_cfg: Any = None, grounded: Sequence[Any] | None = None) -> list[dict]:
    """One answer per (task, source, raw model output); see the module docstring. `grounded`: the
    rationale/grounded.GroundedAnswer of each output (rationale_decoding=grounded), whose sentences
    are the edits' own rationales; otherwise each edit's rationale is the explanations that name it."""
    from rationalign.explanations import align, span_edits
    from rationalign.metrics.faithfulness import text_counts
    from rationalign.prompts import parse_response

    if grounded is None:
        parsed = [parse_response(o, position, prompts_cfg) for o in outputs]
        # As in stage=evaluate: an output with no suggestion proposes no change (and says why in `reason`).
        suggestions = [p.suggestion or s for p, s in zip(parsed, sources)]
        rationales = [p.rationale for p in parsed]
        status = [(bool(p.ok), p.reason or ("" if p.suggestion else "no suggestion: source kept")) for p in parsed]
    else:
        suggestions = [g.suggestion for g in grounded]
        rationales = [g.rationale for g in grounded]
        status = [(g.ok, g.reason) for g in grounded]
    all_edits = span_edits(list(sources), suggestions)
    answers = []
    for n, (task, source, out, sug, rat, edits) in enumerate(zip(tasks, sources, outputs, suggestions, rationales,
                                                                  all_edits)):
        expl = align(edits, rat)
        edit_rows = []
        for i, e in enumerate(edits):
            by = [j for j, x in enumerate(expl) if x.edit == i]
            own = grounded[n].sentences[i].sentence if grounded is not None else " ".join(expl[j].text for j in by)
            edit_rows.append(e.to_dict() | {"explained_by": by, "rationale": own or None})
        summary = text_counts(edits, expl).summary()
        answers.append({
            "task": task, "source": source, "suggestion": sug, "edits": edit_rows,
            "rationale": [x.to_dict() for x in expl], "rationale_text": rat,
            "rationale_decoding": "free" if grounded is None else "grounded",
            "faithfulness": {"coverage": summary["coverage"], "precision": summary["precision"]},
            "ok": status[n][0], "reason": status[n][1], "output": out,
        })
    return answers


def resolve_system(ctx, name: str) -> tuple[Path | None, DictConfig]:
    """(adapter or model dir, config the system was trained with) for predict.system. A trained stage
    must have finished under this run's config: predict never starts training."""
    cfg = ctx.cfg
    if name == "base":
        return None, cfg
    if name.startswith("path:"):
        path = Path(name[5:])
        if not path.is_dir():
            raise PredictInputError(f"predict.system={name}: no such directory")
        return path, cfg
    stage = SYSTEM_STAGES.get(name)
    if stage is None:
        raise PredictInputError(f"predict.system={name}: expected base, {', '.join(SYSTEM_STAGES)} or path:<dir>")
    if not ctx.is_done(stage):
        raise PredictInputError(f"predict.system={name}: stage {stage} has not finished under this config "
                                f"(expected {ctx.stage_dir(stage)}); run `rationalign stage={stage}` with the same "
                                "overrides first, or give path:<dir>")
    return ctx.stage_dir(stage) / "adapter", cfg


class Assistant:
    """One loaded system answering (task, text) requests; thread-safe (one generation at a time)."""

    def __init__(self, ctx, system: str = "base", max_new_tokens: int = 128, rationale_decoding: str = "free",
                 reason_max_new_tokens: int = 40):
        from rationalign.engines import build_engine
        from rationalign.quark.control import inference_prefix, is_quark_dir
        from rationalign.stages.common import position, with_rationale

        model_dir, self.sys_cfg = resolve_system(ctx, system)
        self.cfg = ctx.cfg
        self.system = system
        self.prefix = inference_prefix(model_dir) if is_quark_dir(model_dir) else ""
        self.position = position(self.sys_cfg) if with_rationale(self.sys_cfg) else "none"
        self.max_new_tokens = int(max_new_tokens)
        self.rationale_decoding = check_mode(rationale_decoding, "predict.rationale_decoding")
        self.reason_max_new_tokens = int(reason_max_new_tokens)
        self.tasks = list(self.cfg.task.names)
        self._lock = threading.Lock()
        self.engine = build_engine(self.cfg, adapter=model_dir, progress=False)

    def answer(self, items: Sequence[tuple[str, str]], rationale_decoding: str | None = None) -> list[dict]:
        """Answers for (task, text) pairs, greedy, in order; rationale_decoding (free | grounded) defaults
        to the assistant's. Grounded decoding of a system that writes no rationale is free decoding."""
        from rationalign.rationale.grounded import grounded_answers
        from rationalign.stages.common import user_message

        mode = check_mode(rationale_decoding or self.rationale_decoding, "rationale_decoding")
        for task, text in items:
            if task not in self.tasks:
                raise PredictInputError(f"task '{task}': not one of the loaded tasks {self.tasks} (choose with task=...)")
            if not text.strip():
                raise PredictInputError("text: empty")
            check_text(text, "text")
        records = [Record(id=f"predict-{i}", task=t, instruction="", source=s) for i, (t, s) in enumerate(items)]
        prompts = [self.prefix + user_message(self.sys_cfg, r) for r in records]
        sources, tasks = [r.source for r in records], [r.task for r in records]
        grounded = None
        with self._lock:
            if mode == "grounded" and self.position != "none":
                grounded = grounded_answers(self.engine, prompts, sources, tasks, position=self.position,
                                            prompts_cfg=self.cfg.prompts, max_new_tokens=self.max_new_tokens,
                                            reason_max_new_tokens=self.reason_max_new_tokens)
                outs = [g.output for g in grounded]
            else:
                outs = self.engine.generate(prompts, temperature=0, max_new_tokens=self.max_new_tokens)
        return explain_outputs(tasks, sources, outs, self.position, self.cfg.prompts, grounded)

    def close(self) -> None:
        self.engine.close()


def check_text(text: str, where: str, max_chars: int | None = None) -> None:
    """A text a model can be given: valid Unicode (JSON can carry a lone surrogate such as \\ud800, which
    no tokenizer encodes) and, with `max_chars`, no longer than that."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise PredictInputError(f"{where}: not valid Unicode (lone surrogate {text[e.start]!r} at character "
                                f"{e.start + 1})") from None
    if max_chars is not None and len(text) > max_chars:
        raise PredictInputError(f"{where}: {len(text)} characters, over the limit of {max_chars} "
                                "(predict.max_chars; split the text, or raise the limit and model.max_length)")


def read_inputs(path: str | Path, tasks: Sequence[str], max_chars: int | None = None) -> list[tuple[str, str, str | None]]:
    """(task, text, id) triples from a .txt file (one text per non-blank line) or a .jsonl file (objects
    with `source`, optional `task` and `id`). A line without a task takes the one task `tasks` holds.
    A text over `max_chars` characters or not valid Unicode is an error naming its line."""
    p = Path(path)
    if p.suffix not in (".txt", ".jsonl"):
        raise PredictInputError(f"predict.input={p}: expected a .txt or .jsonl file")
    if not p.is_file():
        raise PredictInputError(f"predict.input: file not found: {p}")
    default_task = tasks[0] if len(tasks) == 1 else None
    items = []
    if p.suffix == ".txt":
        for n, line in enumerate(re.split(r"\r?\n", read_text_located(p, PredictInputError)), 1):
            if not line.strip():
                continue
            if default_task is None:
                raise PredictInputError(f"{p}:{n}: task= selects {len(tasks)} tasks; a .txt input needs one "
                                        "(task=gec), or use .jsonl with a 'task' per line")
            check_text(line.strip(), f"{p}:{n}", max_chars)
            items.append((default_task, line.strip(), None))
    else:
        for where, _, obj in iter_jsonl(p, PredictInputError):  # bad JSON / non-objects named by file:line
            unknown = sorted(set(obj) - {"source", "task", "id"})
            if unknown:
                raise PredictInputError(f"{where}: unknown field(s) {unknown} (expected source, task, id)")
            text, task, rid = obj.get("source"), obj.get("task", default_task), obj.get("id")
            if not isinstance(text, str) or not text.strip():
                raise PredictInputError(f"{where}: field 'source' must be a non-empty string")
            if task is None:
                raise PredictInputError(f"{where}: no 'task' field, and task= selects {len(tasks)} tasks")
            if task not in tasks:
                raise PredictInputError(f"{where}: field 'task': '{task}' is not one of the selected tasks "
                                        f"{list(tasks)} (task=all selects the eight)")
            check_text(text, f"{where}: field 'source'", max_chars)
            if rid is not None and not isinstance(rid, (str, int)):
                raise PredictInputError(f"{where}: field 'id' must be a string or a number")
            items.append((task, text, None if rid is None else str(rid)))
    if not items:
        raise PredictInputError(f"predict.input={p}: no texts in the file")
    return items
