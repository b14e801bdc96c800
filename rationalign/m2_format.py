"""The one parser of the M2 annotation format (CoNLL-2013/2014, BEA-2019, ERRANT output).

Used by the data reader (data/readers/m2.py: references from each annotator's edits), the M2 scorer
(metrics/m2.py) and the ERRANT compare step (metrics/errant_f.py), so malformed input fails the
same way everywhere: an M2Error (a RecordError) naming the file, the line and the field.

Format: blocks separated by blank lines; ``S <tokenised source>`` then zero or more
``A start end|||type|||corr1||corr2|||REQUIRED|||comment|||annotator`` lines.
``-NONE-`` as a correction means the empty string; ``A -1 -1|||noop|||...`` says that annotator
made no edit (the annotator still counts, with an empty edit list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rationalign.data.records import RecordError

__all__ = ["M2Edit", "M2Error", "M2Sentence", "apply_edits", "corrected_text", "load_m2", "parse_m2", "read_m2"]


class M2Error(RecordError):
    """Malformed M2 input; the message names the file, line and field."""


@dataclass(frozen=True)
class M2Edit:
    start: int
    end: int
    type: str
    corrections: tuple[str, ...]  # the alternatives, '-NONE-' already mapped to ''
    raw_correction: str  # field as written (ERRANT's compare step uses it verbatim)
    annotator: int
    line: int

    @property
    def is_noop(self) -> bool:
        return self.type == "noop" or self.start < 0


@dataclass
class M2Sentence:
    source: str
    tokens: list[str]
    line: int  # line number of the S line
    # every edit line in file order (noop lines included), for tools that need them raw
    raw_edits: list[M2Edit] = field(default_factory=list)
    text: str = ""  # the block as written (S line and A lines)

    @property
    def annotators(self) -> list[int]:
        ids = sorted({e.annotator for e in self.raw_edits})
        return ids or [0]

    def edits(self, annotator: int) -> list[M2Edit]:
        """Real (non-noop) edits of one annotator, in file order."""
        return [e for e in self.raw_edits if e.annotator == annotator and not e.is_noop]

    def edits_by_annotator(self) -> dict[int, list[M2Edit]]:
        return {a: self.edits(a) for a in self.annotators}


def _parse_edit(line: str, where: str, lineno: int, n_tokens: int) -> M2Edit:
    fields = line[2:].split("|||")
    if len(fields) != 6:
        raise M2Error(f"{where}:{lineno}: field 'A' has {len(fields)} '|||'-separated fields, expected 6 "
                      "(start end|||type|||correction|||REQUIRED|||comment|||annotator)")
    try:
        start, end = (int(x) for x in fields[0].split())
    except ValueError:
        raise M2Error(f"{where}:{lineno}: field 'A' span {fields[0]!r} is not two integers") from None
    try:
        annotator = int(fields[5])
    except ValueError:
        raise M2Error(f"{where}:{lineno}: field 'annotator' {fields[5]!r} is not an integer") from None
    etype = fields[1]
    if etype != "noop" and not (start == end == -1) and not 0 <= start <= end <= n_tokens:
        raise M2Error(f"{where}:{lineno}: field 'A' span {start} {end} is outside the {n_tokens}-token source")
    corrections = tuple("" if c.strip() == "-NONE-" else c.strip() for c in fields[2].split("||"))
    return M2Edit(start, end, etype, corrections, fields[2], annotator, lineno)


def parse_m2(text: str, source_name: str = "<m2 text>") -> list[M2Sentence]:
    """Parse M2 text into sentences; raises M2Error naming ``source_name`` and the line."""
    sentences: list[M2Sentence] = []
    current: M2Sentence | None = None
    block: list[str] = []
    # Not str.splitlines(): it also splits on \x0b, \x1c, U+2028 ..., which real corpora contain.
    for lineno, line in enumerate([*re.split(r"\r?\n", text), ""], start=1):
        if not line.strip():
            if current is not None:
                current.text = "\n".join(block)
            current, block = None, []
            continue
        if line.startswith("S ") or line == "S":
            if current is not None:
                raise M2Error(f"{source_name}:{lineno}: field 'S' starts a new block without a blank line")
            src = line[2:].strip()
            if not src:
                raise M2Error(f"{source_name}:{lineno}: field 'S' (source) is empty")
            current = M2Sentence(src, src.split(), lineno)
            sentences.append(current)
        elif line.startswith("A "):
            if current is None:
                raise M2Error(f"{source_name}:{lineno}: field 'A' appears before any 'S' line")
            current.raw_edits.append(_parse_edit(line, source_name, lineno, len(current.tokens)))
        else:
            raise M2Error(f"{source_name}:{lineno}: line starts with {line[:2]!r}, expected 'S ' or 'A '")
        block.append(line)
    return sentences


def read_m2(path: str | Path) -> list[M2Sentence]:
    from rationalign.io import read_text_located

    path = Path(path)
    return parse_m2(read_text_located(path, M2Error), str(path))


def load_m2(gold: str | Path | list) -> list[M2Sentence]:
    """Accept parsed sentences, a path, or M2 text (text is recognised by its leading 'S ')."""
    if isinstance(gold, list):
        return gold
    if isinstance(gold, Path):
        return read_m2(gold)
    if isinstance(gold, str):
        stripped = gold.lstrip()
        if stripped.startswith("S ") or stripped == "S" or "\n" in gold:
            return parse_m2(gold)
        if not Path(gold).exists():
            raise FileNotFoundError(f"M2 file not found: {gold}")
        return read_m2(gold)
    raise TypeError(f"gold M2 must be a path, M2 text or parsed sentences, got {type(gold).__name__}")


def apply_edits(sentence: M2Sentence, annotator: int = 0, choice: int = 0, where: str = "<m2>") -> list[str]:
    """The corrected tokens of one annotator (alternative ``choice`` of each edit, else its first).
    Spans refer to the source tokens; overlapping edits of one annotator are an error."""
    edits = sorted(sentence.edits(annotator), key=lambda e: (e.start, e.end))  # stable: same-offset
    out, offset, last_end = list(sentence.tokens), 0, -1  # insertions keep file order
    for e in edits:
        if e.start < last_end:
            raise M2Error(f"{where}:{e.line}: field 'A' span {e.start} {e.end} overlaps an earlier edit "
                          f"of annotator {e.annotator}")
        corr = (e.corrections[choice] if choice < len(e.corrections) else e.corrections[0]).split()
        out[e.start + offset:e.end + offset] = corr
        offset += len(corr) - (e.end - e.start)
        last_end = e.end
    return out


def corrected_text(sentence: M2Sentence, annotator: int = 0, choice: int = 0) -> str:
    """apply_edits joined with single spaces: the annotator's tokenised corrected sentence."""
    return " ".join(apply_edits(sentence, annotator, choice))
