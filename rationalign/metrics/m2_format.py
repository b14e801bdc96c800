"""Parser for the M2 annotation format (CoNLL-2013/2014, BEA-2019, ERRANT output).

Shared by the M2 scorer, the ERRANT compare step and the data loaders, so malformed input is
reported with the file name and line number instead of failing later with an IndexError.

Format: blocks separated by blank lines; ``S <tokenised source>`` then zero or more
``A start end|||type|||corr1||corr2|||REQUIRED|||comment|||annotator`` lines.
``-NONE-`` as a correction means the empty string; ``A -1 -1|||noop|||...`` says that annotator
made no edit (the annotator still counts, with an empty edit list).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["M2Edit", "M2Error", "M2Sentence", "apply_edits", "load_m2", "parse_m2", "read_m2"]


class M2Error(ValueError):
    """Malformed M2 input; the message names the file and line."""


@dataclass(frozen=True)
class M2Edit:
    start: int
    end: int
    type: str
    corrections: tuple[str, ...]   # '-NONE-' already mapped to ''
    raw_correction: str            # field as written (ERRANT's compare step uses it verbatim)
    annotator: int
    line: int

    @property
    def is_noop(self) -> bool:
        return self.type == "noop" or self.start < 0


@dataclass
class M2Sentence:
    source: str
    tokens: list[str]
    line: int
    # every edit line in file order (noop lines included), for tools that need them raw
    raw_edits: list[M2Edit] = field(default_factory=list)

    @property
    def annotators(self) -> list[int]:
        ids = sorted({e.annotator for e in self.raw_edits})
        return ids or [0]

    def edits(self, annotator: int) -> list[M2Edit]:
        """Real (non-noop) edits of one annotator, in file order."""
        return [e for e in self.raw_edits if e.annotator == annotator and not e.is_noop]

    def edits_by_annotator(self) -> dict[int, list[M2Edit]]:
        return {a: self.edits(a) for a in self.annotators}


def _parse_edit(line: str, lineno: int, n_tokens: int, where: str) -> M2Edit:
    fields = line[2:].split("|||")
    if len(fields) < 3:
        raise M2Error(f"{where}:{lineno}: edit line needs at least 'start end|||type|||correction', "
                      f"got {line!r}")
    span = fields[0].split()
    if len(span) != 2:
        raise M2Error(f"{where}:{lineno}: edit span must be two integers, got {fields[0]!r}")
    try:
        start, end = int(span[0]), int(span[1])
    except ValueError:
        raise M2Error(f"{where}:{lineno}: edit span must be two integers, got {fields[0]!r}") from None
    try:
        annotator = int(fields[-1]) if len(fields) >= 6 else 0
    except ValueError:
        raise M2Error(f"{where}:{lineno}: annotator id must be an integer, got {fields[-1]!r}") from None
    etype = fields[1]
    if etype != "noop" and not (start == end == -1) and not 0 <= start <= end <= n_tokens:
        raise M2Error(f"{where}:{lineno}: edit span {start} {end} outside the source sentence "
                      f"({n_tokens} tokens)")
    corrections = tuple("" if c == "-NONE-" else c.strip() for c in fields[2].split("||"))
    return M2Edit(start, end, etype, corrections, fields[2], annotator, lineno)


def parse_m2(text: str, source_name: str = "<m2 text>") -> list[M2Sentence]:
    """Parse M2 text into sentences; raises :class:`M2Error` naming ``source_name`` and the line."""
    sentences: list[M2Sentence] = []
    current: M2Sentence | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            current = None
            continue
        if line.startswith("S ") or line == "S":
            if current is not None:
                raise M2Error(f"{source_name}:{lineno}: second 'S' line in one block "
                              f"(blocks must be separated by a blank line)")
            src = line[2:].strip()
            current = M2Sentence(src, src.split(), lineno)
            sentences.append(current)
        elif line.startswith("A "):
            if current is None:
                raise M2Error(f"{source_name}:{lineno}: edit line before any 'S' line in its block")
            current.raw_edits.append(_parse_edit(line, lineno, len(current.tokens), source_name))
        else:
            raise M2Error(f"{source_name}:{lineno}: expected a line starting with 'S ' or 'A ', "
                          f"got {line[:40]!r}")
    return sentences


def read_m2(path: str | Path) -> list[M2Sentence]:
    path = Path(path)
    return parse_m2(path.read_text(encoding="utf-8"), str(path))


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


def apply_edits(sentence: M2Sentence, annotator: int = 0, choice: int = 0) -> str:
    """The corrected text of one annotator (alternative ``choice``, else the first)."""
    toks = list(sentence.tokens)
    # right to left, so earlier offsets stay valid
    # (same-offset insertions: the later line is applied first so file order is kept)
    edits = sentence.edits(annotator)
    for _, e in sorted(enumerate(edits), key=lambda x: (x[1].start, x[1].end, x[0]), reverse=True):
        corr = e.corrections[choice] if choice < len(e.corrections) else e.corrections[0]
        toks[e.start:e.end] = corr.split()
    return " ".join(toks)
