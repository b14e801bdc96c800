"""Rewards for QUARK training, in a registry like the losses: one class per reward, one name each.

A reward scores a batch of `Sample`s (the record, the parsed suggestion and rationale) with one
float per sample; higher is better. Options come from `quark.reward_options.<name>`.

Rationale rewards give their floor to samples without a rationale, so a policy cannot collect
them by dropping the explanation (the cheapest reward hack).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rationalign.data.records import Record
from rationalign.registry import Registry


@dataclass
class Sample:
    record: Record
    suggestion: str          # "" when the output could not be parsed
    rationale: str | None
    ok: bool = True
    text: str = ""           # the raw model output


@dataclass
class RewardEnv:
    """What rewards may need from the run: task specs for metrics, the RM dir, the cache dir."""

    specs: Any = None
    rm_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Reward:
    name = "reward"
    needs_rm = False

    def score(self, samples: Sequence[Sample]) -> list[float]:
        raise NotImplementedError


REWARDS: Registry[Callable[..., Reward]] = Registry("reward")


def register_reward(name: str, *, needs_rm: bool = False):
    def deco(cls):
        cls.name = name
        cls.needs_rm = needs_rm
        return REWARDS.register(name)(cls)

    return deco


def build_reward(name: str, env: RewardEnv, options: dict | None = None) -> Reward:
    cls = REWARDS.get(name)
    try:
        return cls(env, **(options or {}))
    except TypeError as e:
        raise ValueError(f"quark.reward_options.{name}: {e}") from None


def _suggestion(s: Sample) -> str:
    # An unparsable answer proposes no change (as in stage=evaluate), it is not dropped.
    return s.suggestion if s.suggestion else s.record.source


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


# ----------------------------------------------------------------------------------------- rm
@register_reward("rm", needs_rm=True)
class RMReward(Reward):
    """The Bradley-Terry reward model's score of the suggestion (paper Table 7 input)."""

    def __init__(self, env: RewardEnv, batch_size: int = 16):
        if env.rm_dir is None:
            raise ValueError("reward 'rm' needs a reward-model dir (quark.reward_dir or the reward stage)")
        self.env, self.batch_size = env, batch_size
        self._scorer = None

    def score(self, samples):
        if self._scorer is None:  # loaded on first use: building the reward list stays cheap
            from rationalign.training.reward import RewardScorer

            self._scorer = RewardScorer.load(self.env.rm_dir, self.env.cache_dir, device=self.env.device,
                                             batch_size=self.batch_size)
        items = [(s.record.task, s.record.instruction, s.record.source, _suggestion(s)) for s in samples]
        return self._scorer.score(items) if items else []


@register_reward("rm_rationale", needs_rm=True)
class RMRationaleReward(RMReward):
    """The reward model's score of the suggestion *and* its rationale: the RM's response slot gets
    "<suggestion>\n<marker> <rationale>", the layout the policy writes. It rewards what the RM
    makes of the explanation (MaRio rewards plausibility with a model of the rationale text);
    the RM was trained on suggestions alone, so read it as a plausibility proxy, not a calibrated score.
    No rationale -> the lowest score in the batch (its floor), so dropping the explanation never pays."""

    def __init__(self, env: RewardEnv, batch_size: int = 16, marker: str = "Explanation:"):
        super().__init__(env, batch_size)
        self.marker = marker

    def score(self, samples):
        with_r = [s for s in samples if (s.rationale or "").strip()]
        scored = super().score([Sample(s.record, f"{_suggestion(s)}\n{self.marker} {s.rationale.strip()}",
                                       s.rationale, s.ok, s.text) for s in with_r])
        floor = min(scored) if scored else 0.0
        it = iter(scored)
        return [next(it) if (s.rationale or "").strip() else floor for s in samples]


# -------------------------------------------------------------------------------- task_metric
@register_reward("task_metric")
class TaskMetricReward(Reward):
    """The task's primary sentence-level metric of the suggestion against the gold (0-100)."""

    def __init__(self, env: RewardEnv):
        if env.specs is None:
            raise ValueError("reward 'task_metric' needs the task specs")
        self.specs = env.specs

    def score(self, samples):
        from rationalign.scoring import sentence_score

        out = []
        for s in samples:
            if not s.record.gold and not (s.record.meta or {}).get("m2"):
                raise ValueError(f"reward 'task_metric': record {s.record.id} has no gold revision")
            out.append(float(sentence_score(self.specs[s.record.task], s.record, _suggestion(s))))
        return out


# -------------------------------------------------------------------------------- consistency
_QUOTE = re.compile(r'"([^"]+)"|\u201c([^\u201d]+)\u201d')


def _norm(text: str) -> str:
    t = " ".join(text.lower().split())
    stripped = t.strip(" .,;:!?'`")
    return stripped or t  # a span that is only punctuation ("," -> ";") keeps its mark


def quoted_spans(rationale: str) -> list[str]:
    """The strings a rationale names: its double-quoted spans ("go" ... "goes")."""
    return [_norm(a or b) for a, b in _QUOTE.findall(rationale or "")]


def consistency_counts(edits, spans: Sequence[str]) -> tuple[int, int, int, int]:
    """(edits named, edits, spans that match an edit, spans). An edit is named when a quoted
    span equals its original or its corrected side; exact match keeps the reward predictable."""
    sides = [{_norm(x) for x in (e.o_str, e.c_str) if x.strip()} for e in edits]
    named = sum(1 for sd in sides if sd & set(spans))
    made = sum(1 for sp in spans if any(sp in sd for sd in sides))
    return named, len(edits), made, len(spans)


@register_reward("consistency")
class ConsistencyReward(Reward):
    """Rationale-edit consistency: F1 of recall (share of the suggestion's ERRANT edits that the
    rationale names) and precision (share of the named spans that are edits actually made).

    No edits and nothing named is fully consistent ("no change is needed") -> 1.0; one side
    empty and the other not -> 0.0; no rationale -> 0.0.
    """

    def __init__(self, env: RewardEnv):
        pass

    def score(self, samples):
        from rationalign.edits import extract_edits

        edits = extract_edits([s.record.source for s in samples], [_suggestion(s) for s in samples])
        out = []
        for s, e in zip(samples, edits):
            if not (s.rationale or "").strip():
                out.append(0.0)
                continue
            named, n_edits, made, n_spans = consistency_counts(e, quoted_spans(s.rationale))
            if n_edits == 0 and n_spans == 0:
                out.append(1.0)
                continue
            recall = named / n_edits if n_edits else 0.0
            precision = made / n_spans if n_spans else 0.0
            out.append(0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision))
        return out


# ---------------------------------------------------------------------------------- diversity
def distinct_ratio(tokens: Sequence[str], n: int) -> float:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: Sequence[str], n: int) -> float:
    """1 - distinct n-grams / n-grams; 0 when the text has no n-gram of this order."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def mario_diversity(text: str, orders: Sequence[int] = (2, 3, 4)) -> float:
    """Product over n of (1 - repetition rate of n-grams) on whitespace tokens (MaRio's reward.py:61-95).
    Any text that does not repeat itself scores 1, whatever its length; a loop scores near 0."""
    toks = text.split()
    out = 1.0
    for n in orders:
        out *= 1.0 - repetition_rate(toks, n)
    return out


@register_reward("diversity")
class DiversityReward(Reward):
    """MaRio's diversity of the rationale: prod over n in `orders` (default 2, 3, 4) of
    (1 - repetition rate of n-grams). It penalises loops, not length: a short vague rationale and a
    long one quoting every edit both score ~1, so it does not fight `consistency`. No rationale -> 0
    (the rationale rewards' floor; MaRio scores every text, an empty one 1)."""

    def __init__(self, env: RewardEnv, orders: Sequence[int] = (2, 3, 4)):
        self.orders = [int(n) for n in orders]
        if not self.orders or min(self.orders) < 1:
            raise ValueError(f"orders={list(orders)}: need positive n-gram orders")

    def score(self, samples):
        return [mario_diversity(s.rationale, self.orders) if (s.rationale or "").strip() else 0.0 for s in samples]


@register_reward("distinct")
class DistinctReward(Reward):
    """Distinct n-gram ratio of the rationale (punctuation as tokens), averaged over n in `orders`
    (the older `diversity`). An order with no n-grams counts 0, so it grows with length up to a
    point and then falls: it prefers short rationales, which fights `consistency`."""

    def __init__(self, env: RewardEnv, orders: Sequence[int] = (1, 2)):
        self.orders = [int(n) for n in orders]
        if not self.orders or min(self.orders) < 1:
            raise ValueError(f"orders={list(orders)}: need positive n-gram orders")

    def score(self, samples):
        out = []
        for s in samples:
            toks = _words(s.rationale or "")
            out.append(sum(distinct_ratio(toks, n) for n in self.orders) / len(self.orders) if toks else 0.0)
        return out


# ------------------------------------------------------------------------------------- length
@register_reward("length")
class LengthReward(Reward):
    """Rationale length penalty in words: 0 inside [min_words, max_words], minus the relative
    shortfall below and the relative excess above; no rationale -> -1."""

    def __init__(self, env: RewardEnv, min_words: int = 5, max_words: int = 60):
        if not 0 < int(min_words) <= int(max_words):
            raise ValueError(f"need 0 < min_words <= max_words, got {min_words}, {max_words}")
        self.lo, self.hi = int(min_words), int(max_words)

    def score(self, samples):
        out = []
        for s in samples:
            w = len((s.rationale or "").split())
            if w == 0:
                out.append(-1.0)
            else:
                out.append(-max(0.0, (self.lo - w) / self.lo) - max(0.0, (w - self.hi) / self.hi))
        return out


def score_all(rewards: dict[str, Reward], samples: Sequence[Sample]) -> dict[str, list[float]]:
    """{reward name: scores}, checked for one finite float per sample."""
    out = {}
    for name, r in rewards.items():
        vals = [float(v) for v in r.score(samples)]
        if len(vals) != len(samples) or any(math.isnan(v) for v in vals):
            raise ValueError(f"reward {name}: expected {len(samples)} finite scores, got {len(vals)}")
        out[name] = vals
    return out
