"""Pairwise win rate of system A vs B: each input judged k times, the order of the two answers
balanced across repeats (random start per input, then alternating), verdicts mapped back to A/B."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from rationalign.io import sha256_json
from rationalign.judge.items import Item, response_text
from rationalign.judge.stats import bootstrap_ci, mean, wilson
from rationalign.llm.asker import Answer, Question, fill

SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def a_first_order(seed: int, a: str, b: str, item_id: str, k: int) -> list[bool]:
    """Per repeat, whether A is shown first: random start per input (seeded), then alternating."""
    start = random.Random(sha256_json([seed, a, b, item_id])).random() < 0.5
    return [start if j % 2 == 0 else not start for j in range(k)]


def build(cfg, a: str, b: str, items: Sequence[Item], preds: dict[str, dict[str, dict]],
          seed: int) -> tuple[list[Question], list[dict], list[dict]]:
    """(questions, their metadata, rows for inputs decided without asking: identical answers)."""
    questions, metas, decided = [], [], []
    for it in items:
        ra, rb = response_text(preds[a][it.id], cfg.field), response_text(preds[b][it.id], cfg.field)
        base = {"kind": "pairwise", "comparison": [a, b], "id": it.id, "task": it.task}
        if ra == rb:  # nothing to judge: a tie by construction, recorded as such
            decided += [{**base, "repeat": j, "identical": True, "outcome": "tie", "prompt": None, "raw": [],
                         "value": None, "error": None} for j in range(cfg.k)]
            continue
        for j, a_first in enumerate(a_first_order(seed, a, b, it.id, cfg.k)):
            r1, r2 = (ra, rb) if a_first else (rb, ra)
            prompt = fill(cfg.pairwise_prompt, {"instruction": it.instruction, "source": it.source,
                                                "task": it.task, "response_1": r1, "response_2": r2})
            questions.append(Question(key=f"{a}|{b}|{it.id}|{j}", prompt=prompt, sample=j))
            metas.append({**base, "repeat": j, "a_first": a_first, "identical": False})
    return questions, metas, decided


def outcome(verdict: str | None, a_first: bool) -> str | None:
    """A's outcome from a verdict on the shown order ('1' = the first answer shown)."""
    if verdict is None:
        return None
    if verdict == "tie":
        return "tie"
    first_won = verdict == "1"
    return "win" if first_won == a_first else "loss"


def rows_of(answers: Sequence[Answer], metas: Sequence[dict]) -> list[dict]:
    return [{**m, **a.record(), "outcome": outcome(a.value, m["a_first"])} for a, m in zip(answers, metas)]


def aggregate(rows: Sequence[dict], level: float, samples: int, seed: int) -> dict:
    """Per input: mean of its parsed judgements (win 1, tie 0.5, loss 0) -> win / tie / loss;
    Wilson intervals on the three rates, a bootstrap interval on the mean score."""
    per: dict[str, list[float]] = defaultdict(list)
    asked = [r for r in rows if not r.get("identical")]
    for r in rows:
        if r["outcome"] is not None:
            per[r["id"]].append(SCORE[r["outcome"]])
    item_scores = [mean(v) for v in per.values()]
    n = len(item_scores)
    wins = sum(s > 0.5 for s in item_scores)
    losses = sum(s < 0.5 for s in item_scores)
    ties = n - wins - losses
    shown = [r for r in asked if "a_first" in r]
    return {
        "items": n, "win": wins, "tie": ties, "loss": losses,
        "win_rate": wins / n if n else None, "win_rate_ci": wilson(wins, n, level),
        "tie_rate": ties / n if n else None, "tie_rate_ci": wilson(ties, n, level),
        "loss_rate": losses / n if n else None, "loss_rate_ci": wilson(losses, n, level),
        "score": mean(item_scores), "score_ci": bootstrap_ci(item_scores, level, samples, seed),
        "judgements": len(asked), "parsed": sum(1 for r in asked if r["outcome"] is not None),
        "unparsed": sum(1 for r in asked if r.get("error", "") and r["error"].startswith("unparseable")),
        "failed": sum(1 for r in asked if r.get("error", "") and r["error"].startswith("request failed")),
        "identical_items": len({r["id"] for r in rows if r.get("identical")}),
        "a_first_fraction": (sum(r["a_first"] for r in shown) / len(shown)) if shown else None,
        "no_verdict_items": len({r["id"] for r in rows}) - n,
    }
