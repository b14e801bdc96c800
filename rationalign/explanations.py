"""A suggestion's edits with their places in both texts, and its rationale cut into explanations,
each aligned to the edit it explains or marked as explaining none.

Edits come from ERRANT (the project's one annotator, `nlp_models.get_annotator`), with token and character
spans on both sides so a page or a terminal can highlight them. An explanation is one sentence (or
one list item) of the rationale. It *claims* an edit when it names one: in the paper's template
('The word X should be deleted/inserted/replaced by Y because ...', Table 12 / Fig. 3), or, outside
the template, by quoting both sides of a replacement (or the one side of an insertion or deletion).
A claim is matched to the suggestion's edits by its words (case and spacing ignored, since ERRANT
writes "did n't" where a model writes "didn't"); the rule is strict on purpose: a claim that names
"go" -> "went" does not explain an edit "go" -> "goes".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SpanEdit:
    """One ERRANT edit with where it sits: token offsets and character offsets on each side."""

    source: str  # "" for an insertion
    target: str  # "" for a deletion
    type: str  # ERRANT type, e.g. "R:VERB:TENSE"
    source_tokens: tuple[int, int]
    target_tokens: tuple[int, int]
    source_chars: tuple[int, int]  # [start, end) in the source text; start == end for an insertion
    target_chars: tuple[int, int]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _chars(doc, start: int, end: int) -> tuple[int, int]:
    if start < end:
        span = doc[start:end]
        return span.start_char, span.end_char
    at = doc[start].idx if start < len(doc) else len(doc.text)
    return at, at


def span_edits(sources: Sequence[str], targets: Sequence[str], batch_size: int = 256) -> list[list[SpanEdit]]:
    """ERRANT edits of each (source, target) pair with their spans; each distinct text is parsed once."""
    from rationalign.nlp_models import get_annotator

    if len(sources) != len(targets):
        raise ValueError(f"span_edits: {len(sources)} sources but {len(targets)} targets")
    changed = [i for i, (s, t) in enumerate(zip(sources, targets)) if s != t]
    out: list[list[SpanEdit]] = [[] for _ in sources]
    if not changed:
        return out
    ann = get_annotator()
    texts = list(dict.fromkeys(x for i in changed for x in (sources[i], targets[i])))
    docs = dict(zip(texts, ann.nlp.pipe(texts, batch_size=batch_size)))
    for i in changed:
        o, c = docs[sources[i]], docs[targets[i]]
        out[i] = [SpanEdit(e.o_str, e.c_str, e.type, (e.o_start, e.o_end), (e.c_start, e.c_end),
                           _chars(o, e.o_start, e.o_end), _chars(c, e.c_start, e.c_end))
                  for e in ann.annotate(o, c)]
    return out


# ------------------------------------------------------------------------------ splitting
_OPEN_CLOSE = {'"': '"', "\u201c": "\u201d"}
_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\(?\d{1,2}[.)])\s+")


def split_explanations(rationale: str | None) -> list[str]:
    """The rationale's sentences (and list items), in order. A full stop inside double quotes
    ('The word "." should be ...') does not end a sentence."""
    out: list[str] = []
    for line in (rationale or "").replace("\r", "\n").split("\n"):
        line = _LIST_MARK.sub("", line).strip()
        closing, start = None, 0
        for i, ch in enumerate(line):
            if closing is not None:
                if ch == closing:
                    closing = None
            elif ch in _OPEN_CLOSE:
                closing = _OPEN_CLOSE[ch]
            elif ch in ".!?" and (i + 1 == len(line) or line[i + 1].isspace()):
                out.append(line[start:i + 1].strip())
                start = i + 1
        out.append(line[start:].strip())
    return [s for s in out if s]


# ------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """The edit an explanation names: op is 'insert', 'delete' or 'replace'."""

    op: str
    source: str  # the words taken out ("" for an insertion)
    target: str  # the words put in ("" for a deletion)


_Q = "\"\u201c\u201d'\u2018\u2019`"
_END = r"(?=\s+because\b|\s*[.,;:!]?\s*$)"


def _phrase(name: str, end: str = "") -> str:
    """A phrase in double quotes, or bare words (then up to `end`)."""
    return rf'(?:["\u201c](?P<{name}q>[^"\u201d]*)["\u201d]|(?P<{name}u>\S.*?){end})'


# The paper's template, tolerant of "words"/"phrase", "with" for "by", other quotes or none.
_TEMPLATE = re.compile(
    r"^\s*the\s+(?:(?:words?|phrase|token|punctuation(?:\s+mark)?)\s+)?" + _phrase("x")
    + r"\s+should\s+be\s+(?:(?P<op>deleted|removed|inserted|added)\b|replaced\s+(?:by|with)\s+"
    + _phrase("y", _END) + ")",
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"([^"]*)"|\u201c([^\u201d]*)\u201d')


def _group(m: re.Match, name: str) -> str:
    q = m.group(name + "q")
    return q.strip() if q is not None else m.group(name + "u").strip().strip(_Q).strip()


def parse_claim(sentence: str) -> Claim | None:
    """The edit a sentence names, or None when it names none."""
    m = _TEMPLATE.match(sentence)
    if m:
        x, op = _group(m, "x"), (m.group("op") or "").lower()
        if op in ("deleted", "removed"):
            return Claim("delete", x, "")
        if op in ("inserted", "added"):
            return Claim("insert", "", x)
        return Claim("replace", x, _group(m, "y"))
    quoted = [a or b for a, b in _QUOTED.findall(sentence)]
    if len(quoted) == 2 and all(q.strip() for q in quoted):  # 'changing "go" to "went" ...'
        return Claim("replace", quoted[0].strip(), quoted[1].strip())
    return None


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).casefold()


def claim_matches(claim: Claim, edit: SpanEdit) -> bool:
    """Does the claim name exactly this edit (same words out, same words in)?"""
    return _norm(claim.source) == _norm(edit.source) and _norm(claim.target) == _norm(edit.target)


@dataclass(frozen=True)
class Explanation:
    text: str
    claim: Claim | None  # None: the sentence names no edit
    edit: int | None  # index of the suggestion's edit it explains; None: it explains none

    def to_dict(self) -> dict:
        return {"text": self.text, "edit": self.edit,
                "claim": asdict(self.claim) if self.claim else None}


def align(edits: Sequence[SpanEdit], rationale: str | None) -> list[Explanation]:
    """Each explanation of the rationale with the edit it explains: the first edit its claim matches that
    no earlier explanation took, else the first it matches (two sentences about two identical edits,
    e.g. two commas deleted, explain both)."""
    out: list[Explanation] = []
    taken: set[int] = set()
    for sentence in split_explanations(rationale):
        claim = parse_claim(sentence)
        edit = None
        if claim is not None:
            matches = [i for i, e in enumerate(edits) if claim_matches(claim, e)]
            edit = next((i for i in matches if i not in taken), matches[0] if matches else None)
            if edit is not None:
                taken.add(edit)
        out.append(Explanation(sentence, claim, edit))
    return out
