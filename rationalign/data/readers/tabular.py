"""Delimited-text formats: STS-B CSV (paraphrase) and WNC TSV (neutralization)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from rationalign.data.readers.common import (
    LoadResult,
    check_task,
    default_prefix,
    instruction_for,
    read_lines,
    require_text,
)
from rationalign.data.records import Record, RecordError
from rationalign.io import read_text_located


def _csv_rows(reader, path: Path):
    """(first line, csv row) pairs; a csv.Error (a stray quote, an over-long field) names file:line."""
    while True:
        start = reader.line_num + 1  # a quoted field may run over several lines: the row starts here
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise RecordError(f"{path}:{start}: unreadable CSV ({e})") from None
        yield start, row


def read_stsb(path: str | Path, task: str = "paraphrase", instruction: str | None = None, *,
              score_equals: float | None = 5.0, id_prefix: str | None = None) -> LoadResult:
    """STS-B CSV without header: s1,s2,score (standard CSV quoting).

    score_equals: EditEval keeps only pairs scored exactly 5.0 (true paraphrases); the rest are
    dropped and counted under 'score!=5.0'. None keeps every pair.
    """
    path = Path(path)
    check_task(task, str(path))
    prefix = id_prefix or default_prefix(task, path)
    result = LoadResult([])
    reader = csv.reader(io.StringIO(read_text_located(path, RecordError), newline=""))
    for start, row in _csv_rows(reader, path):
        lineno = reader.line_num  # physical line where the row ends (quoted newlines): the record id
        where = f"{path}:{start}"
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 3:
            if lineno > start and any("\n" in c for c in row):
                raise RecordError(f"{where}: unclosed quote: a quoted field opened on this line runs to line "
                                  f"{lineno}{' (the end of the file)' if lineno >= _last_line(path) else ''}")
            raise RecordError(f"{where}: expected 3 columns (s1,s2,score), got {len(row)}")
        try:
            score = float(row[2])
        except ValueError:
            raise RecordError(f"{where}: field 'score' {row[2]!r} is not a number") from None
        if math.isnan(score):
            raise RecordError(f"{where}: field 'score' is NaN")
        if score_equals is not None and score != score_equals:
            result.drop(f"score!={score_equals}")
            continue
        s1 = require_text(row[0], where, "s1")
        s2 = require_text(row[1], where, "s2")
        result.records.append(Record(
            id=f"{prefix}-{lineno:05d}", task=task, instruction=instruction_for(task, instruction),
            source=s1, target=s2, meta={"origin": str(path), "line": lineno, "score": score},
        ))
    return result


def _last_line(path: Path) -> int:
    return len(read_lines(path))


WNC_COLUMNS = ("id", "src_tok", "tgt_tok", "src_raw", "tgt_raw", "src_POS_tags", "tgt_parse_tags")


def read_wnc(path: str | Path, task: str = "neutralization", instruction: str | None = None, *,
             tokenized: bool = False, id_prefix: str | None = None) -> LoadResult:
    """WNC biased.word.{train,dev,test}.tsv: 7 tab-separated columns, no quoting.
    Uses the raw text columns by default; tokenized=True uses src_tok/tgt_tok (WordPiece)."""
    path = Path(path)
    check_task(task, str(path))
    prefix = id_prefix or default_prefix(task, path)
    src_col, tgt_col = ("src_tok", "tgt_tok") if tokenized else ("src_raw", "tgt_raw")
    records = []
    for lineno, line in enumerate(read_lines(path), 1):
        where = f"{path}:{lineno}"
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(WNC_COLUMNS):
            raise RecordError(f"{where}: expected {len(WNC_COLUMNS)} tab-separated columns "
                              f"({', '.join(WNC_COLUMNS)}), got {len(cols)}")
        row = dict(zip(WNC_COLUMNS, cols))
        source = require_text(row[src_col], where, src_col)
        target = require_text(row[tgt_col], where, tgt_col)
        records.append(Record(
            id=f"{prefix}-{lineno:06d}", task=task, instruction=instruction_for(task, instruction),
            source=source, target=target,
            meta={"origin": str(path), "line": lineno, "wnc_id": row["id"].strip()},
        ))
    return LoadResult(records)
