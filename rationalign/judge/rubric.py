"""1-5 rubric scores per system (grammaticality, fluency, coherence, consistency; paper Sec. 5.3)."""

from __future__ import annotations

from collections.abc import Sequence

from rationalign.judge.items import Item, response_text
from rationalign.judge.stats import bootstrap_ci, mean
from rationalign.llm.asker import Answer, Question, fill


def build(cfg, system: str, items: Sequence[Item], preds: dict[str, dict]) -> tuple[list[Question], list[dict]]:
    qs, metas = [], []
    for it in items:
        prompt = fill(cfg.rubric_prompt, {"instruction": it.instruction, "source": it.source, "task": it.task,
                                          "response": response_text(preds[it.id], "output")})
        qs.append(Question(key=f"{system}|{it.id}", prompt=prompt))
        metas.append({"kind": "rubric", "system": system, "id": it.id, "task": it.task})
    return qs, metas


def rows_of(answers: Sequence[Answer], metas: Sequence[dict]) -> list[dict]:
    return [{**m, **a.record()} for a, m in zip(answers, metas)]


def aggregate(rows: Sequence[dict], aspects: Sequence[str], level: float, samples: int, seed: int) -> dict:
    scored = [r["value"] for r in rows if r["value"] is not None]
    out: dict = {"items": len(rows), "scored": len(scored),
                 "unparsed": sum(1 for r in rows if (r["error"] or "").startswith("unparseable")),
                 "failed": sum(1 for r in rows if (r["error"] or "").startswith("request failed")), "aspects": {}}
    for a in aspects:
        vals = [float(v[a]) for v in scored]
        out["aspects"][a] = {"mean": mean(vals), "ci": bootstrap_ci(vals, level, samples, seed), "n": len(vals)}
    return out
