"""Rationale accuracy: the judge checks each rationale against the edits actually made between
the source and the system's suggestion (ERRANT), as in the paper's 87.3% human check."""

from __future__ import annotations

from collections.abc import Sequence

from rationalign.judge.items import Item
from rationalign.judge.stats import wilson
from rationalign.llm.asker import Answer, Question, fill


def build(cfg, system: str, items: Sequence[Item], preds: dict[str, dict],
          edits_fn=None) -> tuple[list[Question], list[dict], int]:
    """(questions, metadata, inputs skipped because the prediction has no rationale)."""
    from rationalign.edits import extract_edits, format_edits

    todo = [it for it in items if (preds[it.id].get("rationale") or "").strip()]
    edits = (edits_fn or extract_edits)([it.source for it in todo], [preds[it.id]["suggestion"] for it in todo])
    qs, metas = [], []
    for it, e in zip(todo, edits):
        p = preds[it.id]
        prompt = fill(cfg.accuracy_prompt, {"instruction": it.instruction, "source": it.source, "task": it.task,
                                            "suggestion": p["suggestion"], "rationale": p["rationale"].strip(),
                                            "edits": format_edits(e)})
        qs.append(Question(key=f"{system}|{it.id}", prompt=prompt))
        metas.append({"kind": "rationale_accuracy", "system": system, "id": it.id, "task": it.task,
                      "n_edits": len(e)})
    return qs, metas, len(items) - len(todo)


def rows_of(answers: Sequence[Answer], metas: Sequence[dict]) -> list[dict]:
    return [{**m, **a.record()} for a, m in zip(answers, metas)]


def aggregate(rows: Sequence[dict], no_rationale: int, level: float) -> dict:
    judged = [r["value"] for r in rows if r["value"] is not None]
    acc = sum(1 for v in judged if v)
    n = len(judged)
    return {"checked": n, "accurate": acc, "accuracy": acc / n if n else None, "accuracy_ci": wilson(acc, n, level),
            "unparsed": sum(1 for r in rows if (r["error"] or "").startswith("unparseable")),
            "failed": sum(1 for r in rows if (r["error"] or "").startswith("request failed")),
            "no_rationale": no_rationale}
