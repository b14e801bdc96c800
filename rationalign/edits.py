"""Token-level edits between a source and its revision, via ERRANT.

The edits feed the teacher prompt (paper Fig. 3) and the template rationales. Parsing is the
slow part, so texts are parsed once each, in batches with `nlp.pipe` (~2.7x faster than one
call per sentence), and the annotator is loaded lazily once per process (nlp_models).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from rationalign.nlp_models import get_annotator


class Edit(NamedTuple):
    o_start: int  # token offsets in the source
    o_end: int
    o_str: str  # "" for an insertion
    c_str: str  # "" for a deletion
    type: str  # ERRANT type, e.g. "R:VERB:SVA", "M:DET", "U:PUNCT", "UNK"

    @property
    def op(self) -> str:
        """'M' (insert), 'U' (delete), 'R' (replace) or 'UNK' (ERRANT could not type it)."""
        return self.type.split(":", 1)[0]

    @property
    def category(self) -> str:
        """The type without the operation: 'VERB:SVA', 'DET', ... ('UNK' stays 'UNK')."""
        return self.type.split(":", 1)[1] if ":" in self.type else self.type


def extract_edits(
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    tokenise: bool = True,
    batch_size: int = 256,
) -> list[list[Edit]]:
    """ERRANT edits for each (source, target) pair; identical pairs get [] without parsing.

    tokenise=False treats the texts as already whitespace-tokenised (BEA/CoNLL style), as
    ERRANT's own `parse(text, tokenise=False)` does.
    """
    if len(sources) != len(targets):
        raise ValueError(f"extract_edits: {len(sources)} sources but {len(targets)} targets")
    for i, (s, t) in enumerate(zip(sources, targets)):
        if not isinstance(s, str) or not isinstance(t, str):
            raise TypeError(f"extract_edits: pair {i} is not two strings ({type(s).__name__}, {type(t).__name__})")

    changed = [i for i, (s, t) in enumerate(zip(sources, targets)) if s != t]
    if not changed:
        return [[] for _ in sources]
    ann = get_annotator()
    # Parse each distinct text once: sources and targets often repeat across records.
    texts = list(dict.fromkeys(x for i in changed for x in (sources[i], targets[i])))
    if tokenise:
        inputs = texts
    else:
        from spacy.tokens import Doc

        inputs = [Doc(ann.nlp.vocab, words=t.split()) for t in texts]
    docs = dict(zip(texts, ann.nlp.pipe(inputs, batch_size=batch_size)))

    out: list[list[Edit]] = [[] for _ in sources]
    for i in changed:
        raw = ann.annotate(docs[sources[i]], docs[targets[i]])
        out[i] = [Edit(e.o_start, e.o_end, e.o_str, e.c_str, e.type) for e in raw]
    return out


def format_edits(edits: Sequence[Edit], *, with_types: bool = False) -> str:
    """Numbered edit list for the teacher prompt (paper Fig. 3 style), e.g.

    1. "go" -> "goes"
    2. "the" -> "" (deletion)
    3. "" -> "a" (insertion)
    """
    if not edits:
        return "(no edits: the revision is identical to the source)"
    lines = []
    for n, e in enumerate(edits, 1):
        line = f'{n}. "{e.o_str}" -> "{e.c_str}"'
        if not e.o_str:
            line += " (insertion)"
        elif not e.c_str:
            line += " (deletion)"
        if with_types:
            line += f" [{e.type}]"
        lines.append(line)
    return "\n".join(lines)
