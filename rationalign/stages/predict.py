"""stage=predict: a system's answer to one text (`predict.text=...`) or a file of texts
(`predict.input=file.txt|file.jsonl`), with its edits and the explanation of each.

`predict.format=json` prints one JSON object per text and line (source, suggestion, edits, each
with its own `rationale` string, rationale, ...: rationalign.assistant.explain_outputs); the default
prints the text with the edits highlighted (rich) and each explanation under its edit.
`predict.rationale_decoding=grounded` writes one sentence per edit the suggestion makes
(rationalign/rationale/grounded.py). Nothing is trained and no stage dir is
written; `predict.output=F` also writes the answers as JSON Lines.
"""

from __future__ import annotations

import json
import logging
import sys

from rationalign.assistant import Assistant, PredictInputError, check_text, read_inputs
from rationalign.io import atomic_write_jsonl
from rationalign.stages.base import Context, register_stage

FORMATS = ("rich", "json")


def predict_items(cfg) -> list[tuple[str, str, str | None]]:
    """(task, text, id) triples named by predict.text / predict.input and task=."""
    p = cfg.predict
    tasks = list(cfg.task.names)
    if (p.text is None) == (p.input is None):
        raise PredictInputError("stage=predict: give exactly one of predict.text=... or predict.input=<file>")
    if p.input is not None:
        return read_inputs(p.input, tasks, int(p.max_chars))
    if not str(p.text).strip():
        raise PredictInputError("predict.text: empty")
    check_text(str(p.text), "predict.text", int(p.max_chars))
    if len(tasks) != 1:
        raise PredictInputError(f"predict.text: task= selects {len(tasks)} tasks {tasks}; choose one (task=gec)")
    return [(tasks[0], str(p.text), None)]


def render_answer(answer: dict, console) -> None:
    """The source with deletions struck through in red, insertions in green, each edit numbered, then
    the explanation of each edit and the explanations that name none."""
    from rich.text import Text

    src, edits = answer["source"], answer["edits"]
    line, at = Text(), 0
    for n, e in enumerate(edits, 1):
        s, t = e["source_chars"]
        line.append(src[at:s])
        if e["source"]:
            line.append(src[s:t], style="bold red strike")
        if e["target"]:
            line.append(("" if not e["source"] else " ") + e["target"], style="bold green")
        line.append(f"[{n}]", style="cyan")
        at = t
    line.append(src[at:])
    console.print(Text.assemble((f"[{answer['task']}] ", "bold"), line))
    expl = answer["rationale"]
    for n, e in enumerate(edits, 1):
        said = e["rationale"] or "(no explanation names this edit)"
        console.print(Text.assemble((f"  [{n}] ", "cyan"), f"{e['source'] or '∅'} -> {e['target'] or '∅'} ({e['type']}): ",
                                    (said, "italic" if e["rationale"] else "dim")))
    for x in expl:
        if x["edit"] is None:
            why = "names an edit not made" if x["claim"] else "names no edit"
            console.print(Text.assemble((f"  (explains no edit: {why}) ", "yellow"), (x["text"], "dim")))
    f = answer["faithfulness"]
    console.print(Text(f"  edit coverage {_pct(f['coverage'])}, rationale precision {_pct(f['precision'])}"
                       + ("" if answer["ok"] else f"; output malformed: {answer['reason']}"), style="dim"))


def _pct(x) -> str:
    return "N.A." if x is None else f"{100 * x:.0f}%"


@register_stage("predict", artifacts=False, generates=True)
def run_predict(ctx: Context, out=None) -> dict:
    """Answer texts with a system: suggestion, ERRANT edits, each edit's explanation; train nothing."""
    cfg = ctx.cfg
    fmt = str(cfg.predict.format)
    if fmt not in FORMATS:
        raise PredictInputError(f"predict.format={fmt}: expected one of {', '.join(FORMATS)}")
    items = predict_items(cfg)  # bad input fails before the model loads
    if fmt == "json":  # stdout carries the JSON lines alone
        logging.getLogger("rationalign").setLevel(logging.WARNING)
    assistant = Assistant(ctx, str(cfg.predict.system), int(cfg.predict.max_new_tokens),
                          str(cfg.predict.rationale_decoding), int(cfg.predict.reason_max_new_tokens))
    try:
        answers = assistant.answer([(task, text) for task, text, _ in items])
    finally:
        assistant.close()
    # an id given in a .jsonl input comes back first in its answer
    answers = [a if rid is None else {"id": rid, **a} for (_, _, rid), a in zip(items, answers)]
    if fmt == "json":
        for a in answers:
            sys.stdout.write(json.dumps(a, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        from rich.console import Console

        console = Console()
        for a in answers:
            render_answer(a, console)
    if cfg.predict.output:
        atomic_write_jsonl(cfg.predict.output, answers)
    return {"counts": {"texts": len(answers), "edits": sum(len(a["edits"]) for a in answers)}, "answers": answers}
