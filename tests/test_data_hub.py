"""data=hub offline: small files shaped like each hub dataset's rows, loaded through `datasets`
(json / parquet builders on local files, the same converter and sampling code as the hub ids),
with the hub itself unreachable. One test per mapped set, plus sampling, disjointness and cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.components import import_components
from rationalign.data.hub import build as hub_build
from rationalign.data.records import DataConfigError
from rationalign.data.splits import load_split
from rationalign.runner import compose
from rationalign.validate import validate

from .conftest import shared_dir

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No network, and `datasets` caches under tmp_path."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setattr(datasets.config, name, True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf", raising=False)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_parquet(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return str(path)


def hub_cfg(tmp_path: Path, tasks: list[str], mirrors: dict[str, tuple[str, dict]], **hub):
    """data=hub for `tasks`, each dataset key redirected to (builder, data_files) on local files."""
    cfg = compose(["data=hub", f"task={tasks[0] if len(tasks) == 1 else 'all'}", f"paths.root={tmp_path / 'out'}"])
    OmegaConf.update(cfg, "task.names", tasks, merge=False)
    OmegaConf.update(cfg, "data.hub.cache", str(tmp_path / "cache"))
    OmegaConf.update(cfg, "data.hub.local_root", str(tmp_path / "local"))
    for key, (builder, files) in mirrors.items():
        OmegaConf.update(cfg, f"data.hub.datasets.{key}", {"name": builder, "data_files": files, "revision": None,
                                                           "config": None}, merge=False)
    hub.setdefault("dev", {})  # the yaml's dev specs name hub validation splits these mirrors lack
    for k, v in hub.items():
        OmegaConf.update(cfg, f"data.hub.{k}", v, merge=False)
    return cfg


def coedit_rows(n_gec: int = 30) -> list[dict]:
    rows = [{"_id": str(i), "task": "gec", "src": f"Fix grammar: She go to school number {i} .",
             "tgt": f"She goes to school number {i} ."} for i in range(n_gec)]
    rows.append(dict(rows[0], _id="dup"))  # a repeated pair: counted, not sampled twice
    rows.append({"_id": "p1", "task": "paraphrase", "src": "Paraphrase this: Hello there.", "tgt": "Hi there."})
    rows.append({"_id": "x1", "task": "mystery", "src": "Do something: text.", "tgt": "text."})
    return rows


# ----------------------------------------------------------------------------- CoEdIT (train)


def test_coedit_labeled_and_unlabeled_disjoint_seeded(tmp_path):
    files = {"train": write_jsonl(tmp_path / "coedit/train.jsonl", coedit_rows())}
    mirrors = {"coedit": ("json", files)}
    cfg = hub_cfg(tmp_path, ["gec"], mirrors, labeled_per_task=5, unlabeled_per_task=10, test={})
    labeled, unlabeled = load_split(cfg, "labeled"), load_split(cfg, "unlabeled")
    assert len(labeled) == 5 and len(unlabeled) == 10
    r = labeled[0]
    assert r.task == "gec" and r.instruction == "Fix grammar:" and r.source.startswith("She go to school")
    assert r.target.startswith("She goes") and r.meta["coedit_task"] == "gec"
    assert all(u.target is None for u in unlabeled)
    assert not {x.source for x in labeled} & {u.source for u in unlabeled}
    manifest = json.loads((hub_build.cache_dir(cfg) / "manifest.json").read_text())
    assert manifest["overlap"]["labeled_unlabeled"] == 0
    t = manifest["tasks"]["gec"]
    assert (t["pool"], t["duplicate_pairs"], t["labeled"], t["unlabeled_pool"], t["unlabeled"]) == (30, 1, 5, 25, 10)
    # rows of other tasks are counted by their CoEdIT task value, nothing silently skipped
    assert manifest["dropped"]["data.hub.train.gec"] == {"task=mystery": 1, "task=paraphrase": 1}
    # same config, same records; another seed, another sample (and another cache dir)
    assert [x.id for x in load_split(cfg, "labeled")] == [x.id for x in labeled]
    other = hub_cfg(tmp_path, ["gec"], mirrors, labeled_per_task=5, unlabeled_per_task=10, test={}, seed=7)
    assert hub_build.cache_dir(other) != hub_build.cache_dir(cfg)
    assert [x.id for x in load_split(other, "labeled")] != [x.id for x in labeled]


def test_cache_is_content_addressed_and_reused(tmp_path, monkeypatch):
    files = {"train": write_jsonl(tmp_path / "coedit/train.jsonl", coedit_rows(8))}
    cfg = hub_cfg(tmp_path, ["gec"], {"coedit": ("json", files)}, labeled_per_task=2, unlabeled_per_task=2, test={})
    first = load_split(cfg, "labeled")
    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert [r.id for r in load_split(cfg, "labeled")] == [r.id for r in first] and calls == []  # from the cache
    OmegaConf.update(cfg, "data.hub.labeled_per_task", 3)
    assert len(load_split(cfg, "labeled")) == 3 and len(calls) == 1  # new key: converted again


def test_empty_task_pool_fails_naming_the_values(tmp_path):
    files = {"train": write_jsonl(tmp_path / "coedit/train.jsonl", coedit_rows(3))}
    cfg = hub_cfg(tmp_path, ["simplification"], {"coedit": ("json", files)}, test={})
    with pytest.raises(DataConfigError, match=r"data\.hub\.train\.simplification: no rows left .*task=gec"):
        load_split(cfg, "labeled")


# ----------------------------------------------------------------------------- ITERATER


def iterater_rows():
    rows = []
    for lab, n in (("fluency", 4), ("clarity", 3), ("coherence", 2), ("meaning-changed", 1)):
        rows += [{"before_sent": f"{lab} before {i}", "after_sent": f"{lab} after {i}", "labels": lab,
                  "doc_id": "d1", "revision_depth": 1} for i in range(n)]
    rows.append({"before_sent": "fluency gone", "after_sent": "", "labels": "fluency", "doc_id": "d2",
                 "revision_depth": 2})  # EditEval drops len(after_sent) <= 1
    return rows


def test_iterater_test_sets_with_editeval_filter(tmp_path):
    train = [dict(r, before_sent=f"train {r['before_sent']}") for r in iterater_rows()]
    files = {"train": write_jsonl(tmp_path / "it/train.json", train),
             "test": write_jsonl(tmp_path / "it/test.json", iterater_rows())}
    cfg = hub_cfg(tmp_path, ["fluency", "clarity", "coherence"], {"iterater": ("json", files)},
                  train={t: {"dataset": "iterater", "split": "train", "convert": "iterater"} for t in ["fluency"]})
    test = load_split(cfg, "test")
    by = {t: [r for r in test if r.task == t] for t in ("fluency", "clarity", "coherence")}
    assert {t: len(v) for t, v in by.items()} == {"fluency": 4, "clarity": 3, "coherence": 2}
    assert {r.meta["column"] for r in by["fluency"]} == {"ITR-F"} and by["coherence"][0].meta["column"] == "ITR-O"
    assert by["clarity"][0].target == "clarity after 0"
    m = json.loads((hub_build.cache_dir(cfg) / "manifest.json").read_text())
    assert m["dropped"]["data.hub.test.fluency"]["after_sent_len<=1"] == 1
    assert m["dropped"]["data.hub.test.fluency"]["label=meaning-changed"] == 1
    assert m["test"] == {"fluency": 4, "clarity": 3, "coherence": 2}


def test_shared_iterater_dev_counts_as_the_paper(tmp_path):
    """The authors' own files (../shared/data) read through the hub path give Table 5's 115/157/41."""
    d = shared_dir("data")
    if d is None:
        pytest.skip("../shared/data absent (set RATIONALIGN_DATA to the public data folder)")
    files = {"test": [str(d / f"iterater/{t}/dev.jsonl") for t in ("fluency", "clarity", "coherence")]}
    cfg = hub_cfg(tmp_path, ["fluency", "clarity", "coherence"], {"iterater": ("json", files)}, train={})
    test = load_split(cfg, "test")
    assert {t: sum(r.task == t for r in test) for t in ("fluency", "clarity", "coherence")} == {
        "fluency": 115, "clarity": 157, "coherence": 41}


# ----------------------------------------------------------------------------- STS-B, ASSET, JFLEG


def test_stsb_keeps_score_five_only(tmp_path):
    rows = [{"sentence1": f"A man plays {i}.", "sentence2": f"A man is playing {i}.", "similarity_score": s}
            for i, s in enumerate([5.0, 4.8, 5.0, 0.0])]
    files = {"test": write_parquet(tmp_path / "stsb/test/en.parquet", rows)}
    cfg = hub_cfg(tmp_path, ["paraphrase"], {"stsb": ("parquet", files)}, train={})
    test = load_split(cfg, "test")
    assert [r.source for r in test] == ["A man plays 0.", "A man plays 2."] and test[0].target == "A man is playing 0."
    assert test[0].meta["column"] == "STS" and test[0].meta["score"] == 5.0
    m = json.loads((hub_build.cache_dir(cfg) / "manifest.json").read_text())
    assert m["dropped"]["data.hub.test.paraphrase"] == {"score!=5.0": 2}


def test_shared_stsb_dev_gives_56_pairs(tmp_path):
    import csv

    d = shared_dir("data")
    if d is None:
        pytest.skip("../shared/data absent (set RATIONALIGN_DATA to the public data folder)")
    with open(d / "paraphrase/stsb/stsb-en-dev.csv", newline="", encoding="utf-8") as f:
        rows = [{"sentence1": a, "sentence2": b, "similarity_score": float(s)} for a, b, s in csv.reader(f)]
    files = {"test": write_parquet(tmp_path / "stsb/dev.parquet", rows)}
    cfg = hub_cfg(tmp_path, ["paraphrase"], {"stsb": ("parquet", files)}, train={})
    assert len(load_split(cfg, "test")) == 56  # paper Table 5: STS-Dev 56


def test_asset_test_keeps_every_reference(tmp_path):
    rows = [{"original": f"The cat, which was old, slept {i}.", "simplifications": [f"The old cat slept {i}.",
                                                                                    f"A cat slept {i}."]}
            for i in range(3)]
    files = {"test": write_parquet(tmp_path / "asset/simplification/test.parquet", rows)}
    cfg = hub_cfg(tmp_path, ["simplification"], {"asset": ("parquet", files)}, train={})
    test = load_split(cfg, "test")
    assert len(test) == 3 and test[0].references == ["The old cat slept 0.", "A cat slept 0."]
    assert test[0].target == "The old cat slept 0." and test[0].meta["column"] == "AST"
    # the instruction is the task's own (Table 12 plain form), not the reader's default
    assert test[0].instruction == cfg.task.specs.simplification.plain_instructions[0]


def test_jfleg_opt_in_spec(tmp_path):
    rows = [{"sentence": "I has a apple .", "corrections": ["I have an apple .", "I have one apple ."]}]
    files = {"test": write_parquet(tmp_path / "jfleg/test.parquet", rows)}
    spec = {"dataset": "jfleg", "split": "test", "convert": "jfleg", "column": "ITR-F"}
    cfg = hub_cfg(tmp_path, ["fluency"], {"jfleg": ("parquet", files)}, train={}, test={"fluency": spec})
    (r,) = load_split(cfg, "test")
    assert r.references == ["I have an apple .", "I have one apple ."] and r.meta["column"] == "ITR-F"


def test_test_sources_never_train(tmp_path):
    """A CoEdIT row whose source is a test sentence is kept out of labeled and unlabeled (counted)."""
    train = coedit_rows(4) + [{"_id": "s", "task": "simplification", "src": "Simplify: The cat, which was old, slept 0.",
                               "tgt": "The cat slept."},
                              {"_id": "t", "task": "simplification", "src": "Simplify: Another long sentence.",
                               "tgt": "A short one."}]
    rows = [{"original": "The cat, which was old, slept 0.", "simplifications": ["The old cat slept."]}]
    mirrors = {"coedit": ("json", {"train": write_jsonl(tmp_path / "c/train.jsonl", train)}),
               "asset": ("parquet", {"test": write_parquet(tmp_path / "a/test.parquet", rows)})}
    cfg = hub_cfg(tmp_path, ["simplification"], mirrors)
    assert [r.source for r in load_split(cfg, "labeled")] == ["Another long sentence."]
    m = json.loads((hub_build.cache_dir(cfg) / "manifest.json").read_text())
    assert m["tasks"]["simplification"]["source_in_test"] == 1 and m["overlap"]["labeled_test"] == 0


def test_dev_is_the_validation_split_or_a_hold_out_of_train(tmp_path):
    """dev: ASSET's validation split for simplification; gec has no dev spec, so dev_per_task rows are
    held out of its train pool, after labeled and unlabeled were drawn (their records do not depend on
    the dev size). No dev source is labeled, unlabeled or test."""
    train = coedit_rows(30) + [{"_id": f"s{i}", "task": "simplification", "src": f"Simplify: Long sentence {i} here.",
                                "tgt": f"Sentence {i}."} for i in range(6)]
    train.append({"_id": "v", "task": "simplification", "src": "Simplify: The valid one, which is long.",
                  "tgt": "The valid one."})  # a validation source: kept out of training, counted
    valid = [{"original": "The valid one, which is long.", "simplifications": ["The valid one.", "It is long."]},
             {"original": "Another valid one here.", "simplifications": ["Another one."]}]
    test = [{"original": "A test sentence, long.", "simplifications": ["A test sentence."]}]
    mirrors = {"coedit": ("json", {"train": write_jsonl(tmp_path / "c/train.jsonl", train)}),
               "asset": ("parquet", {"validation": write_parquet(tmp_path / "a/valid.parquet", valid),
                                     "test": write_parquet(tmp_path / "a/test.parquet", test)})}
    dev_spec = {"simplification": {"dataset": "asset", "split": "validation", "convert": "asset"}}

    def cfg_for(dev_per_task):
        return hub_cfg(tmp_path, ["gec", "simplification"], mirrors, labeled_per_task=5, unlabeled_per_task=10,
                       dev_per_task=dev_per_task, dev=dev_spec,
                       train={"gec": {"dataset": "coedit", "split": "train", "convert": "coedit", "task_values": ["gec"]},
                              "simplification": {"dataset": "coedit", "split": "train", "convert": "coedit",
                                                 "task_values": ["simplification"]}})

    cfg = cfg_for(4)
    dev = load_split(cfg, "dev")
    by = {t: [r for r in dev if r.task == t] for t in ("gec", "simplification")}
    assert [r.source for r in by["simplification"]] == ["The valid one, which is long.", "Another valid one here."]
    assert by["simplification"][0].references == ["The valid one.", "It is long."]
    assert {r.meta["column"] for r in dev} == {"CoN", "AST"}  # dev is reported in columns like test
    assert len(by["gec"]) == 4 and all(r.target and r.meta["held_out"] == "dev" for r in by["gec"])
    train_sources = {r.source for s in ("labeled", "unlabeled") for r in load_split(cfg, s)}
    assert not {r.source for r in dev} & (train_sources | {r.source for r in load_split(cfg, "test")})
    m = json.loads((hub_build.cache_dir(cfg) / "manifest.json").read_text())
    assert m["tasks"]["simplification"]["source_in_dev"] == 1
    assert m["tasks"]["gec"]["dev_from"] == "train hold-out" and m["tasks"]["gec"]["dev"] == 4
    assert {k: m["overlap"][k] for k in ("labeled_dev", "unlabeled_dev", "dev_test")} == dict.fromkeys(
        ("labeled_dev", "unlabeled_dev", "dev_test"), 0)
    assert m["counts"]["dev"] == 6 and m["dev"] == {"gec": 4, "simplification": 2}
    other = cfg_for(2)
    for s in ("labeled", "unlabeled"):
        assert [r.id for r in load_split(other, s)] == [r.id for r in load_split(cfg, s)]
    assert len([r for r in load_split(other, "dev") if r.task == "gec"]) == 2


# ----------------------------------------------------------------------------- local-only sets


def test_gyafc_is_local_only_with_a_clear_message(tmp_path):
    cfg = hub_cfg(tmp_path, ["formality"], {}, train={})
    with pytest.raises(FileNotFoundError, match=r"data\.hub\.test\.formality\[0\]: GYAFC is not public .*local_root"):
        load_split(cfg, "test")
    for dom in ("Entertainment_Music", "Family_Relationships"):
        folder = tmp_path / "local/gyafc" / dom / "test"
        folder.mkdir(parents=True)
        (folder / "informal").write_text("gonna b there\n")
        (folder / "formal.ref0").write_text("I will be there.\n")
    test = load_split(cfg, "test")
    assert sorted(r.meta["column"] for r in test) == ["GYAFC-EM", "GYAFC-FR"]
    # a local file is part of the cache key: editing it rebuilds instead of serving stale records
    (tmp_path / "local/gyafc/Family_Relationships/test/informal").write_text("wanna go\n")
    assert sorted(r.source for r in load_split(cfg, "test")) == ["gonna b there", "wanna go"]


def test_missing_conll_and_wnc_are_skipped_and_recorded(tmp_path):
    cfg = hub_cfg(tmp_path, ["gec", "neutralization"], {}, train={})
    assert load_split(cfg, "test") == []
    m = json.loads((hub_build.cache_dir(cfg) / "manifest.json").read_text())
    assert set(m["skipped"]) == {"data.hub.test.gec", "data.hub.test.neutralization"}


# ----------------------------------------------------------------------------- config


def test_hub_yaml_validates_and_names_bad_keys():
    import_components()
    cfg = compose(["data=hub", "task=all"])
    validate(cfg)  # no download: specs are checked only
    tasks = set(cfg.task.names)
    assert set(cfg.data.hub.train) == tasks  # a labeled (and unlabeled) pool for every task
    assert {"fluency", "clarity", "coherence", "paraphrase", "simplification"} <= set(cfg.data.hub.test)
    # dev: each test set's own validation split where it has one (the rest: a hold-out of train)
    assert {t: (d.dataset, d.split) for t, d in cfg.data.hub.dev.items()} == {
        "fluency": ("iterater", "validation"), "clarity": ("iterater", "validation"),
        "coherence": ("iterater", "validation"), "paraphrase": ("stsb", "dev"), "simplification": ("asset", "validation")}
    for key, ds in cfg.data.hub.datasets.items():
        assert ds.revision, key  # every hub dataset names a revision
    bad = compose(["data=hub", "task=gec", "+data.hub.train.gec.colour=red"])
    with pytest.raises(DataConfigError, match=r"^data\.hub\.train\.gec\.colour: not an option of converter 'coedit'"):
        load_split(bad, "labeled")
    bad = compose(["data=hub", "task=gec", "data.hub.train.gec.dataset=nope"])
    with pytest.raises(DataConfigError, match=r"^data\.hub\.train\.gec\.dataset: 'nope' is not a key"):
        load_split(bad, "labeled")


def test_paper_preset_uses_hub_with_the_paper_sizes():
    cfg = compose(["experiment=paper_rationalign_8b"])
    assert cfg.data.name == "hub"
    assert (cfg.data.hub.labeled_per_task, cfg.data.hub.unlabeled_per_task) == (10000, 40000)  # App. B.1


def test_stage_keys_hash_the_converted_records(tmp_path):
    from rationalign.data.splits import split_files

    files = {"train": write_jsonl(tmp_path / "coedit/train.jsonl", coedit_rows(6))}
    cfg = hub_cfg(tmp_path, ["gec"], {"coedit": ("json", files)}, labeled_per_task=2, unlabeled_per_task=2, test={})
    got = split_files(cfg)
    assert [Path(f).name for f in got] == ["labeled.jsonl", "unlabeled.jsonl", "dev.jsonl", "test.jsonl"]
    assert [Path(f).name for f in split_files(cfg, ("dev",))] == ["dev.jsonl"]  # a dev run hashes dev alone
    assert all(Path(f).parent == hub_build.cache_dir(cfg) and Path(f).exists() for f in got)
