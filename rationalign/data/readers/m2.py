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

from pathlib import Path

from rationalign.data.readers.common import LoadResult, check_task, default_prefix, instruction_for
from rationalign.data.records import Record
from rationalign.m2_format import apply_edits
from rationalign.m2_format import read_m2 as read_m2_blocks


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
    blocks = read_m2_blocks(path)
    if annotators is None:
        annotators = sorted({e.annotator for b in blocks for e in b.raw_edits}) or [0]
    prefix = id_prefix or default_prefix(task, path)
    records = []
    for i, b in enumerate(blocks):
        refs = []
        for a in annotators:
            tokens = apply_edits(b, a, where=str(path))
            refs.append(tokenization.detokenize(tokens, detokenize))
        records.append(Record(
            id=f"{prefix}-{i:05d}", task=task, instruction=instruction_for(task, instruction),
            source=tokenization.detokenize(b.tokens, detokenize), target=refs[0], references=refs,
            meta={"origin": str(path), "line": b.line, "m2": b.text, "annotators": list(annotators),
                  "tokenized": detokenize == "none",
                  "m2_tokenization": {**tk, "source_tokens": " ".join(b.tokens)}},
        ))
    return LoadResult(records)
