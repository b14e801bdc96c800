"""Format readers: small files written here for every format and error path, plus the shared
public data (skipped with a reason when absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rationalign.data.readers import (
    DEFAULT_INSTRUCTIONS,
    FORMATS,
    load_hub,
    read_aligned,
    read_coedit,
    read_dataset,
    read_gyafc,
    read_iterater,
    read_m2,
    read_stsb,
    read_wnc,
)
from rationalign.data.records import RecordError, record_from_dict
from rationalign.data.tasks import TASKS
from rationalign.m2_format import apply_edits
from rationalign.m2_format import read_m2 as parse_m2

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RATIONALIGN_DATA", REPO.parent / "shared" / "data"))


def shared(rel: str) -> Path:
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"shared data {p} absent (set RATIONALIGN_DATA to the public data folder)")
    return p


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def assert_valid(records):
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids))
    for r in records:
        record_from_dict(r.to_dict())  # round-trips through the schema validator


# ---------------------------------------------------------------- M2

M2_TEXT = """S He go to school yesterday .
A 1 2|||Vt|||went|||REQUIRED|||-NONE-|||0
A 3 4|||Nn|||the school||school|||REQUIRED|||-NONE-|||0
A 4 5|||Wci|||-NONE-|||REQUIRED|||-NONE-|||0
A 1 2|||Vt|||goes|||REQUIRED|||-NONE-|||1

S This is fine .
A -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||0

S I like a apples .
A 2 3|||ArtOrDet||||||REQUIRED|||-NONE-|||1
A 0 0|||Trans|||Well ,|||REQUIRED|||-NONE-|||1
"""


def test_m2_edits_offsets_none_alternatives_noop(tmp_path):
    # detokenize/retokenize none: the M2 file's tokens as they are
    res = read_m2(write(tmp_path, "t.m2", M2_TEXT), detokenize="none", retokenize="none")
    assert [r.source for r in res] == ["He go to school yesterday .", "This is fine .", "I like a apples ."]
    r0, r1, r2 = res.records
    # 'go'->'went', 'school'->'the school' (first of '||'), 'yesterday'-> deleted: offsets shift.
    assert r0.target == "He went to the school ."
    assert r0.references == ["He went to the school .", "He goes to school yesterday ."]
    assert r1.references == ["This is fine .", "This is fine ."]  # noop / untouched annotator
    # annotator 0 never edits block 3 but still gets a reference: annotators come from the file
    assert r2.references == ["I like a apples .", "Well , I like apples ."]
    # the default: natural text for the model (the gold M2 stays tokenised for the scorer)
    d0, _, d2 = read_m2(write(tmp_path, "t.m2", M2_TEXT)).records
    assert d0.source == "He go to school yesterday." and d0.references[0] == "He went to the school."
    assert d2.references == ["I like a apples.", "Well, I like apples."]
    assert d0.meta["m2_tokenization"] == {"detokenize": "moses", "retokenize": "nltk", "keep_source_tokens": True,
                                          "source_tokens": "He go to school yesterday ."}
    assert r0.meta["m2"].splitlines()[0] == "S He go to school yesterday ."
    assert len(r0.meta["m2"].splitlines()) == 5 and r0.meta["line"] == 1 and r2.meta["line"] == 10
    assert r0.task == "gec" and r0.instruction == DEFAULT_INSTRUCTIONS["gec"]
    assert_valid(res)


def test_apply_edits_insertions_keep_file_order(tmp_path):
    blocks = parse_m2(write(tmp_path, "x.m2", "S a b\nA 1 1|||X|||x|||REQUIRED|||-NONE-|||0\nA 1 1|||X|||y|||REQUIRED|||-NONE-|||0\n"))
    assert apply_edits(blocks[0]) == ["a", "x", "y", "b"]




@pytest.mark.parametrize("text,msg", [
    ("S a b\nA 0 1|||X|||c|||REQUIRED|||-NONE-\n", r"x\.m2:2: field 'A' has 5"),
    ("S a b\nA 0 9|||X|||c|||REQUIRED|||-NONE-|||0\n", r"x\.m2:2: field 'A' span 0 9 is outside"),
    ("S a b c\nA 0 2|||X|||c|||REQUIRED|||-NONE-|||0\nA 1 3|||X|||d|||REQUIRED|||-NONE-|||0\n",
     r"x\.m2:3: field 'A' span 1 3 overlaps"),
    ("A 0 1|||X|||c|||REQUIRED|||-NONE-|||0\n", r"x\.m2:1: field 'A' appears before"),
    ("S \n", r"x\.m2:1: field 'S' \(source\) is empty"),
    ("S a\nS b\n", r"x\.m2:2: field 'S' starts a new block"),
    ("S a b\nA 0 1|||X|||c|||REQUIRED|||-NONE-|||zero\n", r"x\.m2:2: field 'annotator'"),
])
def test_m2_errors(tmp_path, text, msg):
    with pytest.raises(RecordError, match=msg):
        read_m2(write(tmp_path, "x.m2", text))


def test_conll14_shared():
    res = read_dataset("m2", shared("gec/conll14/official-2014.combined.m2"))
    assert len(res) == 1312 and not res.dropped
    assert all(len(r.references) == 2 for r in res)
    assert res[0].meta["annotators"] == [0, 1]
    # annotator 0 edits most sentences: the target differs from the source in most records
    assert sum(r.target != r.source for r in res) > 600
    # the per-annotator file gives the same references for annotator 0
    single = read_m2(shared("gec/conll14/official-2014.0.m2"), annotators=[0])
    assert [r.target for r in single] == [r.target for r in res]
    assert_valid(res)


# ---------------------------------------------------------------- ITERATER

def iterater_row(before, after, label="clarity", **kw):
    return json.dumps({"before_sent": before, "after_sent": after, "labels": label,
                       "doc_id": "d1", "revision_depth": 1, **kw})


def test_iterater_tasks_filter_and_counts(tmp_path):
    lines = [iterater_row(" A b c.", " A c.", "clarity"), iterater_row("X y.", " ", "coherence"),
             iterater_row("Teh cat.", "The cat.", "fluency"), iterater_row("Q.", "", "coherence")]
    dev = write(tmp_path, "dev.jsonl", "\n".join(lines) + "\n")
    res = read_iterater(dev)  # dev: EditEval filter on by default
    assert [r.task for r in res] == ["clarity", "fluency"]
    assert res.dropped == {"after_sent_len<=1": 2} and res.n_read == 4
    assert res[0].source == "A b c." and res[0].target == "A c."
    assert res[0].instruction == DEFAULT_INSTRUCTIONS["clarity"] and res[0].meta["line"] == 1
    train = write(tmp_path, "train.jsonl", "\n".join(lines) + "\n")
    assert len(read_iterater(train)) == 4  # off by default outside dev/test
    only = read_iterater(dev, task="fluency")
    assert [r.task for r in only] == ["fluency"]
    assert only.dropped == {"label=clarity": 1, "label=coherence": 2}
    per_task = read_iterater(train, instruction={"fluency": "Fix it:"})
    assert per_task[2].instruction == "Fix it:" and per_task[0].instruction == DEFAULT_INSTRUCTIONS["clarity"]


@pytest.mark.parametrize("line,msg", [
    ('{"before_sent": "a", ', r"dev\.jsonl:2: invalid JSON"),
    ('{"before_sent": "a", "labels": "clarity"}', r"dev\.jsonl:2: missing required field 'after_sent'"),
    (iterater_row("   ", "b c."), r"dev\.jsonl:2: field 'before_sent' is empty"),
    (iterater_row("a", "b", "style"), r"dev\.jsonl:2: field 'labels' is 'style'"),
    ('["a"]', r"dev\.jsonl:2: expected a JSON object"),
])
def test_iterater_errors(tmp_path, line, msg):
    p = write(tmp_path, "dev.jsonl", iterater_row("ok.", "fine.") + "\n" + line + "\n")
    with pytest.raises(RecordError, match=msg):
        read_iterater(p)


def test_iterater_other_labels_drop(tmp_path):
    p = write(tmp_path, "dev.jsonl", iterater_row("a.", "b.", "style") + "\n" + iterater_row("c.", "d.") + "\n")
    res = read_iterater(p, other_labels="drop")
    assert len(res) == 1 and res.dropped == {"label=style": 1}


@pytest.mark.parametrize("task,split,n,n_filtered", [
    ("fluency", "dev", 115, 115), ("clarity", "dev", 157, 157), ("coherence", "dev", 46, 41),
    ("fluency", "train", 739, 739), ("clarity", "train", 1258, 1253), ("coherence", "train", 311, 275),
])
def test_iterater_shared(task, split, n, n_filtered):
    path = shared(f"iterater/{task}/{split}.jsonl")
    full = read_iterater(path, drop_short_targets=False)
    filtered = read_iterater(path, drop_short_targets=True)
    assert len(full) == n and {r.task for r in full} == {task}
    assert len(filtered) == n_filtered
    assert filtered.dropped.get("after_sent_len<=1", 0) == n - n_filtered
    assert_valid(full)


# ---------------------------------------------------------------- line-aligned

def test_aligned_glob_natural_order_and_errors(tmp_path):
    src = write(tmp_path, "a.orig", "one\ntwo")  # no final newline: still 2 lines
    for k in range(11):
        write(tmp_path, f"a.simp.{k}", f"one{k}\ntwo{k}\n")
    res = read_aligned(src, str(tmp_path / "a.simp.*"), "simplification")
    assert len(res) == 2 and res[1].references[10] == "two10" and res[1].references[2] == "two2"
    assert res[0].target == "one0" and res[1].meta["line"] == 2
    assert res[0].instruction == "Make this text simpler:"
    write(tmp_path, "a.simp.3", "one3\n")
    with pytest.raises(RecordError, match=r"a\.simp\.3: has 1 lines but source .*a\.orig has 2"):
        read_aligned(src, str(tmp_path / "a.simp.*"), "simplification")
    write(tmp_path, "a.simp.3", "one3\n \n")
    with pytest.raises(RecordError, match=r"a\.simp\.3:2: field 'reference' is empty"):
        read_aligned(src, str(tmp_path / "a.simp.*"), "simplification")
    bad = write(tmp_path, "b.orig", "x\n\n")
    with pytest.raises(RecordError, match=r"b\.orig:2: field 'source' is empty"):
        read_aligned(bad, [src, src], "simplification")
    with pytest.raises(RecordError, match="matches no file"):
        read_aligned(src, str(tmp_path / "zzz.*"), "simplification")
    with pytest.raises(RecordError, match="unknown task 'simple'"):
        read_aligned(src, [src], "simple")


def test_gyafc(tmp_path):
    d = tmp_path / "test"
    write(d, "informal", "hey wanna come?\nthats gr8\n")
    for k in range(4):
        write(d, f"formal.ref{k}", f"Would you like to come? ({k})\nThat is great. ({k})\n")
    res = read_gyafc(d)
    assert len(res) == 2 and res[0].task == "formality" and len(res[0].references) == 4
    assert res[1].source == "thats gr8" and res[1].target == "That is great. (0)"
    assert read_dataset("gyafc", d / "informal")[0].id == res[0].id
    train = tmp_path / "train"
    write(train, "informal", "u ok\n")
    write(train, "formal", "Are you well?\n")
    assert read_gyafc(train)[0].references == ["Are you well?"]
    with pytest.raises(RecordError, match="no GYAFC reference"):
        write(tmp_path / "empty", "informal", "x\n")
        read_gyafc(tmp_path / "empty")


def test_asset_shared():
    orig = shared("simplification/asset/asset.valid.orig")
    res = read_dataset("asset", orig, str(orig.parent / "asset.valid.simp.*"), task="simplification")
    assert len(res) == 2000 and all(len(r.references) == 10 for r in res)
    assert res[0].meta["reference_files"][9].endswith("asset.valid.simp.9")
    assert_valid(res)


def test_jfleg_shared():
    src = shared("gec/jfleg/dev.src")
    res = read_dataset("jfleg", src, *[src.parent / f"dev.ref{k}" for k in range(4)], task="gec")
    assert len(res) == 754 and all(len(r.references) == 4 for r in res)
    assert_valid(res)


# ---------------------------------------------------------------- STS-B

def test_stsb_quoting_filter_and_errors(tmp_path):
    p = write(tmp_path, "s.csv", 'A cat sat.,A cat was sitting.,5.0\n"Well, yes.","Yes, indeed.",5.000\n'
                                 'One.,Two.,1.2\n')
    res = read_stsb(p)
    assert [r.source for r in res] == ["A cat sat.", "Well, yes."] and res[1].target == "Yes, indeed."
    assert res.dropped == {"score!=5.0": 1} and res[0].meta["score"] == 5.0
    assert len(read_stsb(p, score_equals=None)) == 3
    for text, msg in [("a,b\n", r"s\.csv:1: expected 3 columns"), ("a,b,high\n", r"s\.csv:1: field 'score'"),
                      ("ok,fine,5\n ,b,5\n", r"s\.csv:2: field 's1' is empty")]:
        with pytest.raises(RecordError, match=msg):
            read_stsb(write(tmp_path, "s.csv", text))


def test_stsb_shared():
    res = read_stsb(shared("paraphrase/stsb/stsb-en-dev.csv"), score_equals=None)
    assert len(res) == 1500
    five = read_dataset("stsb", shared("paraphrase/stsb/stsb-en-dev.csv"))
    assert len(five) == 56 and five.dropped == {"score!=5.0": 1444}
    assert_valid(res)


# ---------------------------------------------------------------- WNC

def wnc_line(i, src, tgt):
    return "\t".join([str(i), src.lower(), tgt.lower(), src, tgt, "NN VB", "nsubj root"])


def test_wnc(tmp_path):
    p = write(tmp_path, "biased.word.test.tsv",
              wnc_line(101, "The notorious mayor spoke.", "The mayor spoke.") + "\n"
              + wnc_line(102, "He sadly lost.", "He lost.") + "\n")
    res = read_wnc(p)
    assert [r.target for r in res] == ["The mayor spoke.", "He lost."]
    assert res[0].task == "neutralization" and res[0].meta["wnc_id"] == "101"
    assert read_wnc(p, tokenized=True)[1].source == "he sadly lost."
    with pytest.raises(RecordError, match=r"w\.tsv:1: expected 7 tab-separated columns"):
        read_wnc(write(tmp_path, "w.tsv", "1\ta\tb\n"))
    with pytest.raises(RecordError, match=r"w\.tsv:1: field 'tgt_raw' is empty"):
        read_wnc(write(tmp_path, "w.tsv", wnc_line(1, "a b", "") + "\n"))


# ---------------------------------------------------------------- CoEdIT

def test_coedit(tmp_path):
    rows = [{"_id": "1", "src": "Fix grammar: She go home.", "tgt": "She goes home.", "task": "gec"},
            {"_id": "2", "src": "Remove POV: A great: man.", "tgt": "A man.", "task": "neutralize"},
            {"_id": "3", "src": "Simplify: It is arduous.", "tgt": "It is hard.", "task": "simplification"}]
    p = write(tmp_path, "c.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    res = read_coedit(p)
    assert [r.task for r in res] == ["gec", "neutralization", "simplification"]
    assert res[1].instruction == "Remove POV:" and res[1].source == "A great: man."  # first ':' only
    kept = read_dataset("coedit", p, keep_tasks={"gec"})
    assert len(kept) == 1 and kept.dropped == {"task=neutralization": 1, "task=simplification": 1}
    assert {r.task for r in read_coedit(p, task="paraphrase")} == {"paraphrase"}
    for row, msg in [({"src": "no colon here", "tgt": "x", "task": "gec"}, "field 'src' has no 'Instruction:' prefix"),
                     ({"src": "Fix:   ", "tgt": "x", "task": "gec"}, "field 'src \\(text after"),
                     ({"src": "Fix: a", "task": "gec"}, "missing required field 'tgt'"),
                     ({"src": "Fix: a", "tgt": "b", "task": "poetry"}, "field 'task' 'poetry'")]:
        with pytest.raises(RecordError, match=r"c2\.jsonl:2: " + msg):
            read_coedit(write(tmp_path, "c2.jsonl", json.dumps(rows[0]) + "\n" + json.dumps(row) + "\n"))


# ---------------------------------------------------------------- hub and dispatcher

def test_load_hub_without_datasets(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_datasets(name, *a, **kw):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(ImportError, match="optional package 'datasets'"):
        load_hub("grammarly/coedit", "validation", task="gec")
    with pytest.raises(RecordError, match="unknown task"):
        load_hub("grammarly/coedit", "validation", task="poetry")


def test_dispatcher(tmp_path):
    assert {"m2", "iterater", "aligned", "asset", "jfleg", "turk", "stsb", "wnc", "gyafc",
            "coedit", "hub", "records"} <= set(FORMATS)
    with pytest.raises(ValueError, match="unknown data format 'xml'"):
        read_dataset("xml", "a")
    src = write(tmp_path, "s.txt", "a\n")
    ref = write(tmp_path, "r.txt", "b\n")
    with pytest.raises(ValueError, match="needs task="):
        read_dataset("aligned", src, ref)
    assert read_dataset("lines", src, refs=[ref], task="paraphrase")[0].target == "b"
    # two files of the same name would collide on ids: the dispatcher refuses, naming the file
    a = write(tmp_path / "x", "t.m2", "S a\n")
    b = write(tmp_path / "y", "t.m2", "S b\n")
    with pytest.raises(RecordError, match="duplicate id"):
        read_dataset("m2", a, b)
    rec = write(tmp_path, "r.jsonl", json.dumps({"id": "1", "task": "gec", "instruction": "Fix:",
                                                  "source": "a"}) + "\n")
    assert read_dataset("records", rec, task="gec")[0].source == "a"
    with pytest.raises(RecordError, match="expected 'fluency'"):
        read_dataset("records", rec, task="fluency")
    assert set(TASKS) == set(DEFAULT_INSTRUCTIONS)
