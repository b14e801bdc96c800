"""ERRANT span-based correction F0.5 (Bryant et al., 2017), as ``errant_parallel`` + ``errant_compare``.

Annotation uses the errant library (edits depend on the spaCy model); the compare step is ours:
edits are (start, end, correction) triples, UNK edits ignored (they only count for detection),
noop edits never TP/FP/FN, and per sentence the (hypothesis, reference) annotator pair kept is the
one giving the best cumulative corpus F (rounded to 4 dp as errant does), then more TP, fewer FP,
fewer FN. Corrections are compared as written in the M2 (ERRANT writes deletions as an empty
field, CoNLL files as ``-NONE-``; like errant_compare we do not equate the two).

Inputs are whitespace-tokenised (errant_parallel without ``-tok``); pass ``tokenize=True`` to let
spaCy tokenise raw text first. Empty source lines are skipped, as errant_parallel does.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rationalign.m2_format import M2Sentence, load_m2, parse_m2
from rationalign.nlp_models import get_annotator

__all__ = ["annotate_m2", "compare_m2", "evaluate", "get_annotator", "score"]

# ---------------------------------------------------------------- annotation

def _docs(annotator, texts: list[str], tokenize: bool, batch_size: int):
    from spacy.tokens import Doc

    nlp = annotator.nlp
    inputs = texts if tokenize else [Doc(nlp.vocab, t.split()) for t in texts]
    return list(nlp.pipe(inputs, batch_size=batch_size))


def annotate_m2(sources: Sequence[str], corrections: Sequence[Sequence[str]], tokenize: bool = False,
                batch_size: int = 256) -> str:
    """M2 text for ``corrections[i]`` (one or more corrected versions of ``sources[i]``), coder id =
    position in the list; same output as ``errant_parallel`` (empty sources skipped)."""
    if len(sources) != len(corrections):
        raise ValueError(f"ERRANT: {len(sources)} sources but {len(corrections)} correction lists")
    ann = get_annotator()
    keep = [i for i, s in enumerate(sources) if s.strip()]
    origs = _docs(ann, [sources[i].strip() for i in keep], tokenize, batch_size)
    # parse only the corrections that differ from their source, all in one batch
    todo, texts = [], []
    for k, i in enumerate(keep):
        orig_text = " ".join(t.text for t in origs[k])
        for c, cor in enumerate(corrections[i]):
            cor = cor.strip()
            if cor != orig_text:
                todo.append((k, c))
                texts.append(cor)
    parsed = dict(zip(todo, _docs(ann, texts, tokenize, batch_size)))
    blocks = []
    for k, i in enumerate(keep):
        lines = ["S " + " ".join(t.text for t in origs[k])]
        for c in range(len(corrections[i])):
            if (k, c) not in parsed:
                lines.append(f"A -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||{c}")
            else:
                lines.extend(e.to_m2(c) for e in ann.annotate(origs[k], parsed[(k, c)]))
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


# ---------------------------------------------------------------- compare

def _coder_edits(sent: M2Sentence) -> dict[int, dict[tuple, list[str]]]:
    """coder -> {(start, end, correction): [types]}, coders in order of first appearance."""
    out: dict[int, dict[tuple, list[str]]] = {}
    edits = sent.raw_edits or [None]   # no edit lines at all: an explicit noop for coder 0
    for e in edits:
        start, end, cat, cor, coder = ((-1, -1, "noop", "-NONE-", 0) if e is None else
                                       (e.start, e.end, e.type, e.raw_correction, e.annotator))
        d = out.setdefault(coder, {})
        if cat == "UNK":      # detection-only edits
            continue
        d.setdefault((start, end, cor), []).append(cat)
    return out


def _counts(hyp: dict, ref: dict) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for key, cats in hyp.items():
        if cats[0] == "noop":
            continue
        if key in ref:
            tp += len(ref[key])     # several reference edits on one span count separately
        else:
            fp += len(cats)
    for key, cats in ref.items():
        if cats[0] != "noop" and key not in hyp:
            fn += len(cats)
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int, beta: float) -> tuple[float, float, float]:
    p = tp / (tp + fp) if fp else 1.0
    r = tp / (tp + fn) if fn else 1.0
    f = (1 + beta ** 2) * p * r / (beta ** 2 * p + r) if p + r else 0.0
    return p, r, f


@dataclass
class ErrantResult:
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f: float
    per_sentence: list[tuple[int, int, int]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f": self.f}


def compare_m2(hyp_m2: str | Path | list, ref_m2: str | Path | list,
               beta: float = 0.5) -> ErrantResult:
    """The errant_compare step on hypothesis and reference M2 (text, path or parsed)."""
    hyps, refs = load_m2(hyp_m2), load_m2(ref_m2)
    if len(hyps) != len(refs):
        raise ValueError(f"ERRANT compare: {len(hyps)} hypothesis vs {len(refs)} reference sentences")
    tot = [0, 0, 0]
    per = []
    for i, (h, r) in enumerate(zip(hyps, refs)):
        if h.tokens != r.tokens:
            raise ValueError(f"ERRANT compare: sentence {i} (hyp line {h.line}, ref line {r.line}) "
                             f"has different source text in the two M2 inputs")
        best, best_f = (0, 0, 0), -1.0
        for hd in _coder_edits(h).values():
            for rd in _coder_edits(r).values():
                c = _counts(hd, rd)
                f = round(prf(tot[0] + c[0], tot[1] + c[1], tot[2] + c[2], beta)[2], 4)
                if (f, c[0], -c[1], -c[2]) > (best_f, best[0], -best[1], -best[2]):
                    best, best_f = c, f
        per.append(best)
        tot = [a + b for a, b in zip(tot, best)]
    p, r_, f = prf(*tot, beta)
    return ErrantResult(tot[0], tot[1], tot[2], p, r_, f, per)


# ---------------------------------------------------------------- corpus scorer

def evaluate(sources: Sequence[str] | None, predictions: Sequence[str],
             references: Sequence[Sequence[str]] | str | Path | list[M2Sentence],
             beta: float = 0.5, tokenize: bool = False, batch_size: int = 256) -> ErrantResult:
    if isinstance(references, (str, Path)) or (references and isinstance(references[0], M2Sentence)):
        ref_sents = [s for s in load_m2(references) if s.tokens]
        if sources is None:
            sources = [s.source for s in ref_sents]
        ref_m2: str | list = ref_sents
    else:
        if sources is None:
            raise ValueError("ERRANT: sources are required when references are plain texts")
        if len(references) != len(sources):
            raise ValueError(f"ERRANT: {len(sources)} sources but {len(references)} reference lists")
        for i, refs in enumerate(references):
            if isinstance(refs, str):
                raise ValueError(f"ERRANT: references[{i}] is a string; expected a list of references")  # noqa: TRY004
        ref_m2 = annotate_m2(sources, references, tokenize, batch_size)
    if len(sources) != len(predictions):
        raise ValueError(f"ERRANT: {len(sources)} sources but {len(predictions)} predictions")
    hyp_m2 = annotate_m2(sources, [[p] for p in predictions], tokenize, batch_size)
    return compare_m2(parse_m2(hyp_m2, "<hypothesis M2>"),
                      parse_m2(ref_m2, "<reference M2>") if isinstance(ref_m2, str) else ref_m2, beta)


def score(sources: Sequence[str] | None, predictions: Sequence[str],
          references: Sequence[Sequence[str]] | str | Path | list[M2Sentence],
          beta: float = 0.5, tokenize: bool = False) -> dict:
    """Corpus ERRANT: dict(tp, fp, fn, precision, recall, f), P/R/F in [0, 1].

    ``references``: per-sentence lists of corrected texts (each annotated with errant; one coder
    per position), or a reference M2 (path, text, or parsed sentences; then ``sources`` may be
    None and are taken from its S lines).
    """
    return evaluate(sources, predictions, references, beta, tokenize).as_dict()
