"""M2 (CoNLL-2013/14, BEA-2019 W&I+LOCNESS) -> records.

A block is one `S` line (tokenised source) and zero or more `A` lines:
  A start end|||type|||corr1||corr2|||REQUIRED|||-NONE-|||annotator
Each annotator's edits applied give one reference; annotator 0 (the lowest id) gives the target.
The raw block stays in meta["m2"] because the M2 scorer needs the gold edits, not the references.

Source, target and references are detokenised (`detokenize`, default moses) so the model reads and
writes natural text, as GEC papers evaluate CoNLL-2014; meta["m2_tokenization"] tells the scorer to
tokenise a suggestion like the gold (`retokenize`, default nltk; `keep_source_tokens`) before M2
scoring (rationalign.tokenization). `detokenize: none, retokenize: none` keeps the tokenised text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rationalign.data.readers.common import (
    LoadResult,
    check_task,
    default_prefix,
    instruction_for,
    read_lines,
)
from rationalign.data.records import Record, RecordError


@dataclass(frozen=True)
class M2Edit:
    start: int
    end: int
    type: str
    correction: list[str]  # tokens of the first alternative; [] for deletion
    annotator: int
    line: int

    @property
    def is_noop(self) -> bool:
        return self.type == "noop" or self.start == -1


@dataclass
class M2Block:
    source: list[str]
    edits: list[M2Edit]
    line: int   # line number of the S line
    text: str   # the raw block


def parse_m2_edit(line: str, where: str, lineno: int) -> M2Edit:
    fields = line[2:].split("|||")
    if len(fields) != 6:
        raise RecordError(f"{where}: field 'A' has {len(fields)} '|||'-separated fields, expected 6")
    try:
        start, end = (int(x) for x in fields[0].split())
    except ValueError:
        raise RecordError(f"{where}: field 'A' span {fields[0]!r} is not two integers") from None
    try:
        annotator = int(fields[5])
    except ValueError:
        raise RecordError(f"{where}: field 'annotator' {fields[5]!r} is not an integer") from None
    # Several alternatives are separated by '||': the first one is the annotator's choice.
    first = fields[2].split("||")[0].strip()
    corr = [] if first in ("-NONE-", "") else first.split()
    return M2Edit(start, end, fields[1], corr, annotator, lineno)


def parse_m2(path: str | Path) -> list[M2Block]:
    path = Path(path)
    blocks: list[M2Block] = []
    cur: M2Block | None = None
    raw: list[str] = []
    for lineno, line in enumerate(read_lines(path) + [""], 1):
        where = f"{path}:{lineno}"
        if not line.strip():
            if cur is not None:
                cur.text = "\n".join(raw)
                blocks.append(cur)
            cur, raw = None, []
            continue
        if line.startswith("S "):
            if cur is not None:
                raise RecordError(f"{where}: field 'S' starts a new block without a blank line")
            tokens = line[2:].split()
            if not tokens:
                raise RecordError(f"{where}: field 'S' (source) is empty")
            cur = M2Block(tokens, [], lineno, "")
        elif line.startswith("A "):
            if cur is None:
                raise RecordError(f"{where}: field 'A' appears before any 'S' line")
            cur.edits.append(parse_m2_edit(line, where, lineno))
        else:
            raise RecordError(f"{where}: line starts with {line[:2]!r}, expected 'S ' or 'A '")
        raw.append(line)
    return blocks


def apply_edits(tokens: list[str], edits: list[M2Edit], where: str = "<m2>") -> list[str]:
    """Apply one annotator's edits; spans refer to the original tokens, so offsets shift."""
    real = sorted((e for e in edits if not e.is_noop), key=lambda e: (e.start, e.end))
    out, offset, last_end = list(tokens), 0, -1
    for e in real:
        if not (0 <= e.start <= e.end <= len(tokens)):
            raise RecordError(f"{where}:{e.line}: field 'A' span {e.start} {e.end} is outside the "
                              f"{len(tokens)}-token source")
        if e.start < last_end:
            raise RecordError(f"{where}:{e.line}: field 'A' span {e.start} {e.end} overlaps an "
                              f"earlier edit of annotator {e.annotator}")
        out[e.start + offset:e.end + offset] = e.correction
        offset += len(e.correction) - (e.end - e.start)
        last_end = e.end
    return out


def read_m2(path: str | Path, task: str = "gec", instruction: str | None = None, *,
            annotators: list[int] | None = None, id_prefix: str | None = None, detokenize: str = "moses",
            retokenize: str = "nltk", keep_source_tokens: bool = True) -> LoadResult:
    """One record per block. `annotators` defaults to every id seen anywhere in the file, so a
    sentence one annotator left untouched still gets that annotator's (unchanged) reference."""
    from rationalign import tokenization

    path = Path(path)
    check_task(task, str(path))
    tokenization.check_methods(detokenize, retokenize, str(path))
    tk = {"detokenize": detokenize, "retokenize": retokenize, "keep_source_tokens": bool(keep_source_tokens)}
    blocks = parse_m2(path)
    if annotators is None:
        annotators = sorted({e.annotator for b in blocks for e in b.edits}) or [0]
    prefix = id_prefix or default_prefix(task, path)
    records = []
    for i, b in enumerate(blocks):
        refs = []
        for a in annotators:
            tokens = apply_edits(b.source, [e for e in b.edits if e.annotator == a], str(path))
            refs.append(tokenization.detokenize(tokens, detokenize))
        records.append(Record(
            id=f"{prefix}-{i:05d}", task=task, instruction=instruction_for(task, instruction),
            source=tokenization.detokenize(b.source, detokenize), target=refs[0], references=refs,
            meta={"origin": str(path), "line": b.line, "m2": b.text, "annotators": list(annotators),
                  "tokenized": detokenize == "none",
                  "m2_tokenization": {**tk, "source_tokens": " ".join(b.source)}},
        ))
    return LoadResult(records)
