"""data=local / data=hub / data=shared: configured reader specs -> records through load_split.

Small files in every real format are written here at the paths conf/data/local.yaml names; the
public data in ../shared/data is checked when present (skipped with a reason otherwise)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.data import configured
from rationalign.data.configured import read_configured_split
from rationalign.data.records import DataConfigError, RecordError, record_from_dict
from rationalign.data.splits import load_split
from rationalign.runner import compose

from .conftest import shared_dir

M2 = """S He go to school .
A 1 2|||Vt|||went|||REQUIRED|||-NONE-|||0
A 1 2|||Vt|||goes|||REQUIRED|||-NONE-|||1

S This is fine .
A -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||0
"""


def iterater(rows: list[tuple[str, str, str]]) -> str:
    return "".join(json.dumps({"before_sent": b, "after_sent": a, "labels": lab, "doc_id": "d",
                               "revision_depth": 1}) + "\n" for b, a, lab in rows)


def coedit(rows: list[tuple[str, str, str]]) -> str:
    return "".join(json.dumps({"_id": i, "task": t, "src": s, "tgt": g}) + "\n" for i, (t, s, g) in enumerate(rows))


# every path conf/data/local.yaml names, relative to data.local.root
LOCAL_FILES = {
    "conll14/official-2014.combined.m2": M2,
    "iterater/fluency/test.jsonl": iterater([("Teh cat sat.", "The cat sat.", "fluency")]),
    "iterater/clarity/test.jsonl": iterater([("It is a thing that is big.", "It is big.", "clarity")] * 2),
    "iterater/coherence/test.jsonl": iterater([("He left. So.", "He left.", "coherence"), ("X.", " ", "coherence")]),
    "stsb/stsb-en-test.csv": 'A man plays.,"A man is playing, loudly.",5.0\nA dog.,A cat.,1.2\nHi.,Hello.,5\n',
    "wnc/biased.word.test.tsv": "7\tthe great man\tthe man\tThe great man.\tThe man.\tDT JJ NN\tx\n",
    "asset/asset.test.orig": "The cat, which was old, slept.\nHe departed.\n",
    "asset/asset.test.simp.0": "The old cat slept.\nHe left.\n",
    "asset/asset.test.simp.1": "The cat slept.\nHe went.\n",
    "gyafc/Entertainment_Music/test/informal": "u r gr8\n",
    "gyafc/Entertainment_Music/test/formal.ref0": "You are great.\n",
    "gyafc/Entertainment_Music/test/formal.ref1": "You are excellent.\n",
    "gyafc/Family_Relationships/test/informal": "dunno lol\nya\n",
    "gyafc/Family_Relationships/test/formal.ref0": "I do not know.\nYes.\n",
    "coedit/train.jsonl": coedit([("gec", "Fix grammar: He go.", "He goes."),
                                  ("neutralize", "Remove POV: The great man.", "The man."),
                                  ("paraphrase", "Paraphrase: Hi.", "Hello.")]),
    "coedit/unlabeled.jsonl": coedit([("gec", "Fix grammar: She go.", "She goes.")]),
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def local_root(tmp_path):
    return write_tree(tmp_path / "corpora", LOCAL_FILES)


def local_cfg(root: Path, *overrides: str, task: str = "all"):
    return compose(["data=local", f"data.local.root={root}", f"task={task}", *overrides])


def custom_cfg(local: dict, task: str = "all", fmt: str = "local"):
    cfg = compose([f"data={fmt}", f"task={task}"])
    OmegaConf.update(cfg, f"data.{fmt}", local, merge=False)
    return cfg


# ---------------------------------------------------------------- data=local, every format


def test_local_yaml_reads_every_format(local_root):
    cfg = local_cfg(local_root)
    test = load_split(cfg, "test")
    counts = Counter(r.task for r in test)
    assert counts == {"gec": 2, "fluency": 1, "clarity": 2, "coherence": 1, "paraphrase": 2,
                      "neutralization": 1, "simplification": 2, "formality": 3}
    for r in test:
        record_from_dict(r.to_dict())
    assert len({r.id for r in test}) == len(test)
    by = {t: [r for r in test if r.task == t] for t in counts}
    assert by["gec"][0].target == "He went to school." and len(by["gec"][0].references) == 2  # detokenised
    assert by["paraphrase"][0].target == "A man is playing, loudly."
    assert by["neutralization"][0].source == "The great man." and by["neutralization"][0].target == "The man."
    assert by["simplification"][0].references == ["The old cat slept.", "The cat slept."]
    columns = {t: sorted({r.meta["column"] for r in rs}) for t, rs in by.items()}
    assert columns == {"gec": ["CoN"], "fluency": ["ITR-F"], "clarity": ["ITR-L"], "coherence": ["ITR-O"],
                       "paraphrase": ["STS"], "neutralization": ["WNC"], "simplification": ["AST"],
                       "formality": ["GYAFC-EM", "GYAFC-FR"]}
    assert Counter(r.meta["column"] for r in by["formality"]) == {"GYAFC-EM": 1, "GYAFC-FR": 2}
    # every filter's drops are returned per config key
    assert configured.last_loaded["test"].dropped == {
        "data.local.test.coherence": {"after_sent_len<=1": 1},
        "data.local.test.paraphrase": {"score!=5.0": 1},
    }
    assert configured.last_loaded["test"].read["data.local.test.formality[1]"] == 2


def test_local_labeled_unlabeled_coedit_all(local_root):
    labeled = load_split(local_cfg(local_root), "labeled")
    assert sorted(r.task for r in labeled) == ["gec", "neutralization", "paraphrase"]
    assert labeled[0].instruction == "Fix grammar:" and labeled[0].source == "He go."  # CoEdIT's own
    # `all` with only gec selected: the other CoEdIT rows are counted as dropped
    result = read_configured_split(local_cfg(local_root, task="gec"), "labeled")
    assert [r.task for r in result.records] == ["gec"]
    assert result.dropped == {"data.local.labeled.all": {"task=neutralization": 1, "task=paraphrase": 1}}
    unlabeled = load_split(local_cfg(local_root), "unlabeled")
    assert [r.source for r in unlabeled] == ["She go."] and unlabeled[0].target is None


def test_only_selected_tasks_are_read(local_root):
    (local_root / "wnc/biased.word.test.tsv").unlink()
    cfg = local_cfg(local_root, task="gec")
    assert {r.task for r in load_split(cfg, "test")} == {"gec"}
    with pytest.raises(FileNotFoundError, match=r"^data\.local\.test\.neutralization\.path: file not found: .*wnc"):
        load_split(local_cfg(local_root), "test")


def test_null_spec_disables_a_task(local_root):
    cfg = local_cfg(local_root, "data.local.test.gec=null")
    assert "gec" not in {r.task for r in load_split(cfg, "test")}


def test_records_jsonl_and_aligned_variants(tmp_path):
    write_tree(tmp_path, {
        "own.jsonl": json.dumps({"id": "a1", "task": "gec", "instruction": "Fix it:", "source": "x y",
                                 "target": "x z"}) + "\n",
        "jfleg/dev.src": "he go\nshe go\n", "jfleg/dev.ref0": "he goes\nshe goes\n", "jfleg/dev.ref1": "he went\nshe went\n",
        "turk/t.orig": "A long sentence.\n", "turk/t.simp": "A sentence.\n",
    })
    cfg = custom_cfg({"root": str(tmp_path), "test": {
        "gec": [{"format": "jsonl", "path": "own.jsonl"},
                {"format": "jfleg", "source": "jfleg/dev.src", "refs": ["jfleg/dev.ref0", "jfleg/dev.ref1"],
                 "target_ref": 1}],
        "simplification": {"format": "turk", "source": "turk/t.orig", "refs": "turk/t.simp"},
    }})
    test = load_split(cfg, "test")
    gec = [r for r in test if r.task == "gec"]
    assert gec[0].id == "a1" and gec[0].instruction == "Fix it:"  # records keep their instruction
    assert [r.target for r in gec[1:]] == ["he went", "she went"]
    assert gec[1].id.startswith("gec-1-")  # several specs of one task: ids kept apart
    assert all(r.meta["column"] == "CoN" for r in gec)
    assert [r.target for r in test if r.task == "simplification"] == ["A sentence."]


def test_instructions_from_task_spec_or_explicit(local_root):
    cfg = local_cfg(local_root, task="gec")
    plain = list(cfg.task.specs.gec.plain_instructions)
    assert all(r.instruction in plain for r in load_split(cfg, "test"))
    cfg = local_cfg(local_root, "+data.local.test.gec.instruction=Correct this:", task="gec")
    assert {r.instruction for r in load_split(cfg, "test")} == {"Correct this:"}


def test_configured_files_lists_inputs(local_root):
    files = configured.configured_files(local_cfg(local_root))
    assert str(local_root / "asset/asset.test.simp.1") in files
    assert str(local_root / "gyafc/Family_Relationships/test/formal.ref0") in files
    assert str(local_root / "coedit/train.jsonl") in files


# ---------------------------------------------------------------- errors name the key


@pytest.mark.parametrize("local,exc,msg", [
    ({"test": {"gec": {"format": "m3", "path": "x"}}}, DataConfigError, r"^data\.local\.test\.gec\.format: unknown format 'm3'"),
    ({"test": {"gec": {"path": "x"}}}, DataConfigError, r"^data\.local\.test\.gec\.format: required"),
    ({"test": {"gec": {"format": "m2"}}}, DataConfigError, r"^data\.local\.test\.gec\.path: required"),
    ({"test": {"simplification": {"format": "asset", "source": "a"}}}, DataConfigError,
     r"^data\.local\.test\.simplification\.refs: required"),
    ({"test": {"gec": {"format": "m2", "path": "x", "score_equals": 5}}}, DataConfigError,
     r"^data\.local\.test\.gec\.score_equals: not an option of format 'm2'"),
    ({"test": {"gec": {"format": "m2", "path": "x", "source": "y"}}}, DataConfigError,
     r"^data\.local\.test\.gec\.source: not used by format 'm2'"),
    ({"test": {"grammar": {"format": "m2", "path": "x"}}}, DataConfigError, r"^data\.local\.test\.grammar: unknown task"),
    ({"tset": {}}, DataConfigError, r"^data\.local: unknown key\(s\) \['tset'\]"),
    ({"test": {"all": {"format": "m2", "path": "x"}}}, DataConfigError, r"^data\.local\.test\.all: format 'm2' does not name"),
    ({"test": {"gec": "x.m2"}}, DataConfigError, r"^data\.local\.test\.gec: expected a reader spec"),
    ({"test": {"gec": {"format": "m2", "path": "missing.m2"}}}, FileNotFoundError,
     r"^data\.local\.test\.gec\.path: file not found: .*missing\.m2"),
    ({"test": {"simplification": {"format": "asset", "source": "ok.txt", "refs": "nope.*"}}}, FileNotFoundError,
     r"^data\.local\.test\.simplification\.refs: glob matches no file"),
    ({"test": {"formality": {"format": "gyafc", "path": "g"}}}, DataConfigError,
     r"^data\.local\.test\.formality\.column: required, task 'formality' reports several columns"),
    ({"test": {"formality": {"format": "gyafc", "path": "g", "column": "GYAFC-XX"}}}, DataConfigError,
     r"^data\.local\.test\.formality\.column: 'GYAFC-XX' is not a column"),
    ({"test": {"gec": {"format": "coedit", "path": "ok.txt", "instruction": "Fix:"}}}, DataConfigError,
     r"^data\.local\.test\.gec\.instruction: format 'coedit' takes its instructions from the data"),
    ({"test": {"gec": {"format": "m2", "path": "bad.m2"}}}, RecordError, r"^data\.local\.test\.gec: .*bad\.m2:1"),
    ({"test": {"gec": [{"format": "records", "path": "r.jsonl"}, {"format": "records", "path": "r.jsonl"}]}},
     RecordError, r"^data\.local\.test\.gec\[1\]: duplicate id 'r1' \(also from data\.local\.test\.gec\[0\]\)"),
])
def test_bad_config_names_the_key(tmp_path, local, exc, msg):
    write_tree(tmp_path, {"ok.txt": "a\n", "g/informal": "u\n", "g/formal.ref0": "You\n",
                          "bad.m2": "A 0 1|||X|||c|||REQUIRED|||-NONE-|||0\n",
                          "r.jsonl": json.dumps({"id": "r1", "task": "gec", "instruction": "", "source": "s"}) + "\n"})
    cfg = custom_cfg({"root": str(tmp_path), **local})
    with pytest.raises(exc, match=msg):
        load_split(cfg, "test")


def test_unknown_data_format_is_named():
    cfg = compose(["data.format=excel"])
    with pytest.raises(DataConfigError, match=r"^data\.format=excel"):
        load_split(cfg, "test")


# ---------------------------------------------------------------- data=shared (../shared/data)


@pytest.fixture
def shared_data():
    d = shared_dir("data")
    if d is None:
        pytest.skip("../shared/data absent (set RATIONALIGN_DATA to the public data folder)")
    return d


def test_shared_test_counts(shared_data, monkeypatch):
    monkeypatch.setenv("RATIONALIGN_DATA", str(shared_data))
    cfg = compose(["data=shared", "task=all"])
    test = load_split(cfg, "test")
    counts = Counter(r.task for r in test)
    # CoNLL-2014, STS-B and ASSET less their carved dev parts (200, 16, 300; test_dev_split.py)
    assert counts == {"gec": 1112, "fluency": 115, "clarity": 157, "coherence": 41,
                      "paraphrase": 40, "simplification": 1700}  # no WNC / GYAFC: N.A. in the report
    simp = [r for r in test if r.task == "simplification"]
    assert all(len(r.references) == 10 for r in simp)
    assert all(r.meta["score"] == 5.0 for r in test if r.task == "paraphrase")
    assert all(len(r.references) == 2 for r in test if r.task == "gec")
    assert configured.last_loaded["test"].dropped == {
        "data.local.test.coherence": {"after_sent_len<=1": 5},
        "data.local.pools.stsb_dev": {"score!=5.0": 1444},
    }
    labeled = load_split(cfg, "labeled")
    assert {r.task for r in labeled} == set(counts) | {"neutralization", "formality"}  # the demo corpus
    assert all(r.target is None for r in load_split(cfg, "unlabeled"))


def test_shared_root_defaults_to_repo_sibling(monkeypatch):
    monkeypatch.delenv("RATIONALIGN_DATA", raising=False)
    cfg = compose(["data=shared"])
    repo = Path(__file__).resolve().parents[1]
    assert Path(cfg.data.local.root).resolve() == (repo.parent / "shared" / "data").resolve()
