"""Demo data for all eight tasks, generated from sentences written for this project.

    python -m rationalign.data.make_demo --out rationalign/data/demo

No text comes from any dataset: CLEAN_SENTENCES (demo/sentences.txt) were written for rationalign, and every
pair is made by a rule-based transformation of one of them (corrupt -> clean for GEC, fluency,
clarity, coherence, simplification, formality, neutralization; clean -> rewrite for paraphrase).
Output is deterministic for a given seed; tests/test_demo_data.py checks that the shipped files
equal a fresh regeneration.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from pathlib import Path

from rationalign.data.demo_rules import FALLBACK, FALLBACK_EXTRA, MULTI_EDIT, PARAPHRASE_RULES, RULES
from rationalign.data.readers.common import DEFAULT_INSTRUCTIONS
from rationalign.data.records import Record, save_records
from rationalign.data.tasks import TASKS

# Plain sentences written for rationalign, one a line (rationalign/data/demo/sentences.txt).
SENTENCES_FILE = Path(__file__).parent / "demo" / "sentences.txt"
CLEAN_SENTENCES = tuple(SENTENCES_FILE.read_text(encoding="utf-8").splitlines())

MAX_SOURCE_WORDS = 25  # the demo trains a 135M model on CPU: keep inputs short

# ---------------------------------------------------------------- generation

SPLITS = ("labeled", "unlabeled", "dev", "test")
EVAL_SPLITS = ("dev", "test")  # records with references


@dataclass
class Example:
    source: str
    target: str
    rules: list[str]
    alternatives: list[str] = field(default_factory=list)  # extra references (test split)


def _apply_rules(task: str, text: str, rng: random.Random) -> tuple[str, list[str]] | None:
    fallback = FALLBACK.get(task)
    names = [n for n in RULES[task] if n != fallback]
    rng.shuffle(names)
    out, used = text, []
    for name in names:
        new = RULES[task][name](out, rng)
        if new is not None and new != out:
            out, used = new, used + [name]
            if task not in MULTI_EDIT or len(used) == 2 or rng.random() < 0.6:
                break
    if fallback and (not used or rng.random() < FALLBACK_EXTRA.get(task, 0.0)):
        new = RULES[task][fallback](out, rng)
        if new is not None and new != out:
            out, used = new, used + [fallback]
    return (out, used) if used else None


def make_example(task: str, clean: str, rng: random.Random) -> Example | None:
    """One pair from one clean sentence, or None when no rule of the task applies."""
    made = _apply_rules(task, clean, rng)
    if made is None:
        return None
    text, rules = made
    if task == "paraphrase":  # the clean sentence is the input; the rewrite is the gold
        alts = [alt for name in rules if len(rules) > 1
                for alt in [PARAPHRASE_RULES[name](clean, random.Random(name))] if alt]
        ex = Example(clean, text, rules, [a for a in dict.fromkeys(alts) if a not in (clean, text)])
    else:
        ex = Example(text, clean, rules)
    if ex.source == ex.target or len(ex.source.split()) > MAX_SOURCE_WORDS:
        return None
    return ex


def _split_pool(n: int, seed: int, test_fraction: float = 0.25) -> tuple[list[int], list[int]]:
    """Disjoint sentence pools, so no test sentence (in any task's form) is seen in training."""
    order = list(range(n))
    random.Random(f"{seed}:pool").shuffle(order)
    k = int(n * test_fraction)
    return sorted(order[:k]), sorted(order[k:])


def _draw(task: str, pool: list[int], counts: list[int], rng: random.Random) -> list[list[tuple[int, Example]]]:
    order = list(pool)
    rng.shuffle(order)
    groups: list[list[tuple[int, Example]]] = [[] for _ in counts]
    g, seen = 0, set()
    for idx in order:
        while g < len(counts) and len(groups[g]) >= counts[g]:
            g += 1
        if g == len(counts):
            break
        ex = make_example(task, CLEAN_SENTENCES[idx], rng)
        if ex is not None and ex.source not in seen:
            seen.add(ex.source)
            groups[g].append((idx, ex))
    if any(len(grp) < c for grp, c in zip(groups, counts)):
        got = [len(grp) for grp in groups]
        raise ValueError(f"task {task!r}: only {got} examples for requested {counts}; "
                         "ask for fewer or add clean sentences")
    return groups


def generate(seed: int = 0, n_labeled: int = 40, n_unlabeled: int = 30,
             n_test: int = 15, n_dev: int = 10) -> dict[str, list[Record]]:
    """{'labeled': [...], 'unlabeled': [...], 'dev': [...], 'test': [...]} with every task in each split."""
    test_pool, train_pool = _split_pool(len(CLEAN_SENTENCES), seed)
    out: dict[str, list[Record]] = {s: [] for s in SPLITS}
    for task in TASKS:
        rng = random.Random(f"{seed}:{task}")
        labeled, unlabeled = _draw(task, train_pool, [n_labeled, n_unlabeled], rng)
        (test,) = _draw(task, test_pool, [n_test], rng)
        # Dev: the held-out pool's sentences this task's test left unused, drawn last with an RNG of
        # its own, so the other three splits are what they were before dev existed; like test, no
        # dev sentence appears in any form in labeled or unlabeled.
        used = {idx for idx, _ in test}
        (dev,) = _draw(task, [i for i in test_pool if i not in used], [n_dev], random.Random(f"{seed}:{task}:dev"))
        for split, group in (("labeled", labeled), ("unlabeled", unlabeled), ("dev", dev), ("test", test)):
            for i, (idx, ex) in enumerate(group):
                out[split].append(Record(
                    id=f"demo-{split}-{task}-{i:03d}", task=task,
                    instruction=DEFAULT_INSTRUCTIONS[task], source=ex.source,
                    target=None if split == "unlabeled" else ex.target,
                    references=[ex.target, *ex.alternatives] if split in EVAL_SPLITS else None,
                    meta={"split": split, "rules": ex.rules, "sentence": idx, "seed": seed},
                ))
    _check_no_leak(out)
    return out


def _check_no_leak(splits: dict[str, list[Record]]) -> None:
    train = {r.source for s in ("labeled", "unlabeled") for r in splits[s]}
    leaked = [r.id for r in splits["test"] if r.source in train]
    if leaked:
        raise ValueError(f"test sources also in training splits: {leaked}")
    test = {r.source for r in splits["test"]}
    leaked = [r.id for r in splits["dev"] if r.source in train or r.source in test]
    if leaked:
        raise ValueError(f"dev sources also in training or test splits: {leaked}")


def write_demo(out_dir: str | Path, **kwargs) -> dict[str, int]:
    out_dir = Path(out_dir)
    return {split: save_records(out_dir / f"{split}.jsonl", recs) for split, recs in generate(**kwargs).items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(SENTENCES_FILE.parent), help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labeled", type=int, default=40, help="labeled pairs per task")
    ap.add_argument("--unlabeled", type=int, default=30, help="unlabeled sources per task")
    ap.add_argument("--test", type=int, default=15, help="test pairs per task")
    ap.add_argument("--dev", type=int, default=10, help="dev pairs per task (held out like test)")
    a = ap.parse_args(argv)
    counts = write_demo(a.out, seed=a.seed, n_labeled=a.labeled, n_unlabeled=a.unlabeled, n_test=a.test,
                        n_dev=a.dev)
    print(f"wrote {counts} to {a.out}")


if __name__ == "__main__":
    main()
