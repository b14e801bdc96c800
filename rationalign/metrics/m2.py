"""MaxMatch (M2) scorer (Dahlmeier & Ng, 2012), written from its published behaviour.

Target: nusnlp/m2scorer HEAD (not release 3.2, which puts insertions before the first source
token at the wrong offset). Per sentence:

1. Source and hypothesis are split on whitespace. The edit lattice is the union of all optimal
   Levenshtein alignments with substitution cost 1 and with substitution cost 2.
2. Besides its single-token edges, any lattice path made of edits separated by at most
   ``max_unchanged_words`` unchanged tokens may be taken as one merged edit.
3. For each annotator, edges equal to one of its gold edits (same span, same original text,
   correction among the alternatives) weigh -|E|; every other edit edge +0.001. The system edits
   are the edit edges of the lightest path: maximise matched gold edits, then use the fewest
   edits (unchanged tokens are free; among equal paths we absorb the fewest unchanged tokens,
   so reported spans stay minimal: this only moves span boundaries of unmatched edits).
4. System edits are matched to gold left to right, each gold edit consumed in file order
   (a gold list not sorted by offset can therefore match fewer edits, as in the reference).
5. The annotator kept for a sentence maximises the cumulative corpus F so far (ties: more
   correct, then smaller proposed + beta^2 * gold, then lowest annotator id).

Instead of materialising every merged arc (quadratic in lattice size, cubic closure: the
reference's blow-up on long rewritten sentences) the lightest path is found by a dynamic
programme over the lattice in topological order that tracks, per node, the best start of an
unmatched merged edit for each count of unchanged tokens (0..max_unchanged_words). Cost is
O(lattice edges * (max_unchanged_words + 1)); no cap on sentence length is needed.

Known possible divergences from the reference (ties only, none in the test vectors): the
reference keeps the unchanged-token count of the first shortest path Floyd-Warshall finds between
two nodes, we allow a merged edge when *some* path has few enough unchanged tokens; and among
equally light paths the reference's choice depends on its edge order, ours prefers earlier
edges in a fixed order (diagonal, deletion, insertion, merged).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rationalign.m2_format import M2Sentence, load_m2, parse_m2

__all__ = ["M2Result", "evaluate", "parse_m2", "score", "system_edits"]

Node = tuple[int, int]  # (source position, hypothesis position)


# ---------------------------------------------------------------- lattice

def _lattice(src: list[str], hyp: list[str]) -> dict[Node, list[tuple[Node, bool]]]:
    """In-edges per node: node -> [(predecessor, is_noop)], union of the two alignment graphs."""
    n, m = len(src), len(hyp)
    preds: dict[Node, dict[Node, bool]] = {}
    for sub_cost in (1, 2):
        # DP table of edit distances
        prev = list(range(m + 1))
        table = [prev]
        for i in range(1, n + 1):
            row = [i] + [0] * m
            s = src[i - 1]
            for j in range(1, m + 1):
                diag = prev[j - 1] + (0 if s == hyp[j - 1] else sub_cost)
                dele = prev[j] + 1
                ins = row[j - 1] + 1
                row[j] = diag if diag <= dele and diag <= ins else (min(dele, ins))
            table.append(row)
            prev = row
        # keep only nodes on optimal paths: walk back from the end over all tied moves
        stack, seen = [(n, m)], set()
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            i, j = v
            d = table[i][j]
            into = preds.setdefault(v, {})
            if i > 0 and j > 0:
                same = src[i - 1] == hyp[j - 1]
                if table[i - 1][j - 1] + (0 if same else sub_cost) == d:
                    into[(i - 1, j - 1)] = same
                    stack.append((i - 1, j - 1))
            if i > 0 and table[i - 1][j] + 1 == d:
                into[(i - 1, j)] = False
                stack.append((i - 1, j))
            if j > 0 and table[i][j - 1] + 1 == d:
                into[(i, j - 1)] = False
                stack.append((i, j - 1))
    return {v: list(p.items()) for v, p in preds.items()}


def _edit(src, hyp, u: Node, v: Node) -> tuple[int, int, str, str]:
    return (u[0], v[0], " ".join(src[u[0]:v[0]]), " ".join(hyp[u[1]:v[1]]))


def _merged_ok(preds, u: Node, v: Node, max_unchanged: int) -> bool:
    """Is there a lattice path u -> v with >= 1 real edit and <= max_unchanged unchanged tokens?"""
    # states per node: set of (unchanged count, has_edit); search backwards from v inside the box
    states: dict[Node, set] = {v: {(0, False)}}
    order = sorted((w for w in preds if u[0] <= w[0] <= v[0] and u[1] <= w[1] <= v[1]),
                   reverse=True)
    for w in order:
        for k, h in states.get(w, ()):
            for p, noop in preds.get(w, ()):
                if not (u[0] <= p[0] and u[1] <= p[1]):
                    continue
                nk = k + noop
                if nk <= max_unchanged:
                    states.setdefault(p, set()).add((nk, h or not noop))
    return any(h for _, h in states.get(u, ()))


# ---------------------------------------------------------------- lightest path

def system_edits(src: list[str], hyp: list[str], gold: Sequence, max_unchanged_words: int = 2,
                 lattice=None) -> list[tuple[int, int, str, str]]:
    """The system's edits (start, end, original, correction), left to right, chosen against one
    annotator's gold edits (objects with start/end/corrections)."""
    preds = lattice if lattice is not None else _lattice(src, hyp)
    order = sorted(preds)                      # (i, j) lexicographic order is topological
    start, goal = (0, 0), (len(src), len(hyp))
    direct = {(p, v): noop for v, ps in preds.items() for p, noop in ps}

    def matches(e) -> bool:
        return any(g.start == e[0] and g.end == e[1] and " ".join(src[g.start:g.end]) == e[2]
                   and e[3] in g.corrections for g in gold)

    # gold-matching merged edges (single edges are checked directly below)
    matched_arcs: dict[Node, list[Node]] = {}
    by_row: dict[int, list[Node]] = {}
    for node in order:
        by_row.setdefault(node[0], []).append(node)
    for g in gold:
        for corr in set(g.corrections):
            width = len(corr.split())
            for u in by_row.get(g.start, ()):
                v = (g.end, u[1] + width)
                if v not in preds or (u, v) in direct:
                    continue
                if " ".join(hyp[u[1]:v[1]]) == corr and _merged_ok(preds, u, v, max_unchanged_words):
                    matched_arcs.setdefault(v, []).append(u)

    # cost = (-matched, unmatched edit edges, unchanged-token edges), compared lexicographically;
    # back[v] = (predecessor, is_noop_edge)
    best: dict[Node, tuple[int, int, int]] = {start: (0, 0, 0)}
    back: dict[Node, tuple[Node, bool]] = {}
    # run[v][k] = best (cost, origin) of a path origin -> v with k unchanged tokens and >= 1 edit;
    # pure[v][k] = same without any edit yet (only unchanged tokens)
    run: dict[Node, list] = {}
    pure: dict[Node, list] = {}
    none = [None] * (max_unchanged_words + 1)
    for v in order:
        if v == start:
            run[v], pure[v] = list(none), list(none)
            continue
        cands = []
        r, pu = list(none), list(none)
        for p, noop in preds[v]:
            if p not in best:
                continue
            matched = matches(_edit(src, hyp, p, v))
            a, b, c = best[p]
            cost = (a - 1, b, c) if matched else ((a, b, c + 1) if noop else (a, b + 1, c))
            cands.append((cost, p, noop))
            # extend merged-edit runs through this edge
            k0 = 1 if noop else 0
            if k0 <= max_unchanged_words:
                tgt = pu if noop else r
                if tgt[k0] is None or best[p] < tgt[k0][0]:
                    tgt[k0] = (best[p], p)
            for k in range(max_unchanged_words + 1 - k0):
                for src_list, has_edit in ((run[p], True), (pure[p], False)):
                    item = src_list[k]
                    if item is None:
                        continue
                    tgt = r if (has_edit or not noop) else pu
                    if tgt[k + k0] is None or item[0] < tgt[k + k0][0]:
                        tgt[k + k0] = item
        run[v], pure[v] = r, pu
        for u in matched_arcs.get(v, ()):
            if u in best:
                cands.append(((best[u][0] - 1,) + best[u][1:], u, False))
        merged = min((x for x in r if x is not None), default=None, key=lambda x: x[0])
        if merged is not None:
            a, b, c = merged[0]
            cands.append(((a, b + 1, c), merged[1], False))
        if cands:
            cost, p, noop = min(cands, key=lambda c: c[0])
            best[v], back[v] = cost, (p, noop)
    # walk back from the goal
    out, v = [], goal
    while v != start:
        p, noop = back[v]
        if not noop:
            out.append(_edit(src, hyp, p, v))
        v = p
    out.reverse()
    return out


# ---------------------------------------------------------------- scoring

def _ws_case_equal(a: str, b: str) -> bool:
    return a.replace(" ", "").lower() == b.replace(" ", "").lower()


def _count_correct(edits, gold) -> int:
    """Left-to-right matching; each gold edit is consumed once and in file order."""
    correct, nxt = 0, 0
    for e in edits:
        for idx in range(nxt, len(gold)):
            g = gold[idx]
            if g.start == e[0] and g.end == e[1] and e[3] in g.corrections:
                correct += 1
                nxt = idx + 1
                break
    return correct


def _f(c: float, e: float, g: float, beta: float) -> float:
    den = beta * beta * g + e
    if den == 0:
        return 1.0 if c == 0 else 0.0
    return (1.0 + beta * beta) * c / den


@dataclass
class M2Result:
    correct: int
    proposed: int
    gold: int
    precision: float
    recall: float
    f: float
    chosen_annotators: list[int] = field(default_factory=list)
    per_sentence: list[tuple[int, int, int]] = field(default_factory=list)  # (correct, proposed, gold)

    def as_dict(self) -> dict:
        return {"correct": self.correct, "proposed": self.proposed, "gold": self.gold,
                "precision": self.precision, "recall": self.recall, "f": self.f}


def evaluate(gold_m2: str | Path | list, predictions: Sequence[str], beta: float = 0.5,
             max_unchanged_words: int = 2, ignore_whitespace_casing: bool = False) -> M2Result:
    sentences: list[M2Sentence] = load_m2(gold_m2)
    if len(sentences) != len(predictions):
        raise ValueError(f"M2: {len(sentences)} gold sentences but {len(predictions)} predictions")
    if max_unchanged_words < 0:
        raise ValueError("max_unchanged_words must be >= 0")
    sq = beta * beta
    tot_c = tot_p = tot_g = 0
    chosen, per_sent = [], []
    for sent, pred in zip(sentences, predictions):
        src, hyp = sent.tokens, pred.split()
        lattice = None if src == hyp else _lattice(src, hyp)
        pick = None  # (f, correct, -(proposed + beta^2 gold), annotator, counts)
        for ann, gold in sent.edits_by_annotator().items():
            edits = [] if lattice is None else system_edits(src, hyp, gold, max_unchanged_words, lattice)
            if ignore_whitespace_casing:
                edits = [e for e in edits if not _ws_case_equal(e[2], e[3])]
            c, p, g = _count_correct(edits, gold), len(edits), len(gold)
            cc, cp, cg = tot_c + c, tot_p + p, tot_g + g
            key = (_f(cc, cp, cg, beta), cc, -(cp + sq * cg))
            if pick is None or key > pick[0]:   # strict: the lowest id wins full ties
                pick = (key, ann, (c, p, g))
        _, ann, (c, p, g) = pick
        tot_c, tot_p, tot_g = tot_c + c, tot_p + p, tot_g + g
        chosen.append(ann)
        per_sent.append((c, p, g))
    prec = tot_c / tot_p if tot_p else 1.0
    rec = tot_c / tot_g if tot_g else 1.0
    den = sq * prec + rec
    f = (1.0 + sq) * prec * rec / den if den else 0.0
    return M2Result(tot_c, tot_p, tot_g, prec, rec, f, chosen, per_sent)


def score(gold_m2: str | Path | list, predictions: Sequence[str], beta: float = 0.5,
          max_unchanged_words: int = 2, ignore_whitespace_casing: bool = False) -> dict:
    """Corpus M2: dict(correct, proposed, gold, precision, recall, f); P/R/F in [0, 1].

    ``gold_m2``: a path, the M2 text itself, or sentences from :func:`parse_m2`.
    ``predictions``: one (tokenised) hypothesis per gold sentence.
    """
    return evaluate(gold_m2, predictions, beta, max_unchanged_words,
                    ignore_whitespace_casing).as_dict()
