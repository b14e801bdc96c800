"""Rationale faithfulness: does the rationale explain the edits the suggestion makes, and only those?

- edit coverage: share of the suggestion's edits (ERRANT, source -> suggestion) that at least one
  explanation of the rationale names (rationalign.explanations.align);
- rationale precision: share of the explanations that name an edit (a claim) whose edit the
  suggestion actually makes. Sentences that name no edit ("The sentence is now correct.") are
  counted apart (`unaligned`), not as wrong claims.

Both are pooled over texts (micro averages: every edit and every claim weighs the same), per task and
overall; a figure with nothing to count (no edits, or no claims) is None, shown as N.A.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rationalign.explanations import Explanation, SpanEdit, align, span_edits


@dataclass(frozen=True)
class Counts:
    edits: int = 0
    explained_edits: int = 0
    claims: int = 0  # explanations that name an edit
    true_claims: int = 0  # ... that name an edit the suggestion makes
    unaligned: int = 0  # explanations that name no edit
    texts: int = 0

    def __add__(self, o: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self._fields(), o._fields())))

    def _fields(self) -> tuple[int, ...]:
        return (self.edits, self.explained_edits, self.claims, self.true_claims, self.unaligned, self.texts)

    def summary(self) -> dict:
        return {"coverage": self.explained_edits / self.edits if self.edits else None,
                "precision": self.true_claims / self.claims if self.claims else None,
                "edits": self.edits, "explained_edits": self.explained_edits, "claims": self.claims,
                "true_claims": self.true_claims, "unaligned": self.unaligned, "texts": self.texts}


def text_counts(edits: Sequence[SpanEdit], explanations: Sequence[Explanation]) -> Counts:
    claims = [x for x in explanations if x.claim is not None]
    return Counts(edits=len(edits), explained_edits=len({x.edit for x in claims if x.edit is not None}),
                  claims=len(claims), true_claims=sum(x.edit is not None for x in claims),
                  unaligned=len(explanations) - len(claims), texts=1)


def pooled(items: Iterable[tuple[str, Sequence[SpanEdit], Sequence[Explanation]]]) -> dict:
    """{'overall': summary, 'per_task': {task: summary}} over (task, edits, explanations) items."""
    per: dict[str, Counts] = defaultdict(Counts)
    for task, edits, expl in items:
        per[task] = per[task] + text_counts(edits, expl)
    total = sum(per.values(), Counts())
    return {"overall": total.summary(), "per_task": {t: per[t].summary() for t in sorted(per)}}


def corpus_faithfulness(tasks: Sequence[str], sources: Sequence[str], suggestions: Sequence[str],
                        rationales: Sequence[str | None]) -> dict:
    """Coverage and precision of each rationale against the edits of its suggestion, pooled per task."""
    if not len(tasks) == len(sources) == len(suggestions) == len(rationales):
        raise ValueError(f"corpus_faithfulness: {len(tasks)} tasks, {len(sources)} sources, "
                         f"{len(suggestions)} suggestions, {len(rationales)} rationales")
    edits = span_edits(list(sources), list(suggestions))
    return pooled((t, e, align(e, r)) for t, e, r in zip(tasks, edits, rationales))
