"""Property-based fuzzing of every data reader (hypothesis): a mutated real-format file gives
either records or one RecordError naming the file (and the line, for a problem on one line), never
another exception (UnicodeDecodeError, csv.Error, IndexError, ...)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationalign.data.readers import read_dataset
from rationalign.data.records import RecordError

from .test_readers import M2_TEXT, iterater_row, wnc_line

DEMO = Path(__file__).resolve().parents[1] / "rationalign" / "data" / "demo" / "labeled.jsonl"

# format -> (file name, valid content, how to call the reader on the file)
SAMPLES = {
    "m2": ("t.m2", M2_TEXT, lambda p: read_dataset("m2", p)),
    "iterater": ("train.jsonl", "\n".join([iterater_row("A b c.", "A c."), iterater_row("Teh cat.", "The cat.",
                                                                                         "fluency")]) + "\n",
                 lambda p: read_dataset("iterater", p)),
    "stsb": ("s.csv", 'A cat sat.,A cat was sitting.,5.0\n"Well, yes.","Yes, indeed.",5.000\nOne.,Two.,1.2\n',
             lambda p: read_dataset("stsb", p)),
    "wnc": ("w.tsv", wnc_line(1, "The notorious mayor spoke.", "The mayor spoke.") + "\n"
            + wnc_line(2, "He sadly lost.", "He lost.") + "\n", lambda p: read_dataset("wnc", p)),
    "coedit": ("c.jsonl", json.dumps({"_id": "1", "src": "Fix grammar: She go home.", "tgt": "She goes home.",
                                      "task": "gec"}) + "\n", lambda p: read_dataset("coedit", p)),
    "records": ("r.jsonl", "".join(DEMO.read_text(encoding="utf-8").splitlines(keepends=True)[:3]),
                lambda p: read_dataset("records", p)),
    # line-aligned: the mutated file is the source; its reference is a copy of the valid source
    "aligned": ("a.orig", "one two .\nthree four .\n",
                lambda p: read_dataset("asset", p, p.with_name("a.simp.0"), task="simplification")),
    "gyafc": ("informal", "hey wanna come?\nthats gr8\n", lambda p: read_dataset("gyafc", p)),
}

# Bytes that break decoders and parsers: invalid UTF-8, NUL, quotes, separators, brackets.
NASTY = st.sampled_from([b"\xff", b"\xc3", b"\x00", b'"', b",", b"\t", b"\n", b"\r", b"{", b"}", b"|||",
                         b"A ", b"S ", b"-1", b"\xe2\x80\xa8", b"x" * 2000, b":", b"[", b"null", b" "])
MUTATION = st.tuples(st.sampled_from(["insert", "delete", "replace", "dup_line", "truncate"]),
                     st.floats(0, 1), st.integers(1, 40), NASTY)


def mutate(data: bytes, ops) -> bytes:
    for kind, where, n, junk in ops:
        i = int(where * len(data))
        if kind == "insert":
            data = data[:i] + junk + data[i:]
        elif kind == "delete":
            data = data[:i] + data[i + n:]
        elif kind == "replace":
            data = data[:i] + junk + data[i + len(junk):]
        elif kind == "dup_line":
            lines = data.split(b"\n")
            k = min(int(where * len(lines)), len(lines) - 1)
            data = b"\n".join(lines[:k + 1] + lines[k:])
        else:
            data = data[:i]
    return data


def _write(tmp: Path, fmt: str, data: bytes) -> Path:
    name, valid, _ = SAMPLES[fmt]
    if fmt == "gyafc":
        (tmp / "formal.ref0").write_text("Would you like to come?\nThat is great.\n", encoding="utf-8")
    if fmt == "aligned":
        (tmp / "a.simp.0").write_text(valid, encoding="utf-8")
    p = tmp / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
def test_valid_samples_read(fmt, tmp_path):
    _, valid, call = SAMPLES[fmt]
    assert len(call(_write(tmp_path, fmt, valid.encode("utf-8")))) >= 1


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_file_gives_records_or_one_located_error(fmt, ops, tmp_path):
    _, valid, call = SAMPLES[fmt]
    path = _write(tmp_path, fmt, mutate(valid.encode("utf-8"), ops))
    try:
        records = call(path)
    except RecordError as e:
        msg = str(e)
        assert "\n" not in msg.strip(), msg
        # names the file; a problem on one line names that line
        assert re.search(re.escape(path.name) + r"|" + re.escape(str(path.parent)), msg), msg
        return
    for r in records:  # whatever was read is a valid record
        assert r.source.strip() and r.id
