"""The dev split for every data option (demo, local, carved pools, shared, hub), and which split
stage=evaluate reads (evaluate.split = auto | dev | test)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rationalign.components import import_components
from rationalign.data import configured, eval_split, splits
from rationalign.data.carve import norm_source
from rationalign.data.records import DataConfigError, RecordError
from rationalign.data.splits import SPLITS, carve_tally, dev_files, load_split, split_files
from rationalign.data.tasks import TASKS
from rationalign.runner import compose
from rationalign.stages.base import Context
from rationalign.validate import ConfigError, validate

from .conftest import shared_dir

import_components()


# ----------------------------------------------------------------------------- data=demo


def test_demo_dev_split_is_loaded_and_held_out():
    cfg = compose(["task=all"])
    dev = load_split(cfg, "dev")
    assert Counter(r.task for r in dev) == {t: 10 for t in TASKS}
    assert [Path(f).name for f in dev_files(cfg)] == ["dev.jsonl"] and [Path(f).name for f in splits.test_files(cfg)] == [
        "test.jsonl"]
    others = {r.source for s in ("labeled", "unlabeled", "test") for r in load_split(cfg, s)}
    assert not {r.source for r in dev} & others
    assert all(r.gold for r in dev)
    assert len(load_split(compose(["task=all", "data.max_dev_per_task=3"]), "dev")) == 3 * len(TASKS)


# ----------------------------------------------------------------------------- data=local


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


def local_cfg(local: dict, *overrides: str, task: str = "simplification"):
    cfg = compose(["data=local", f"task={task}", *overrides])
    OmegaConf.update(cfg, "data.local", local, merge=False)
    return cfg


def asset_files(n: int, dup: int = 0) -> dict[str, str]:
    """An ASSET-shaped pool of n sentences; the last `dup` lines repeat earlier sources."""
    src = [f"Sentence number {i} is rather long and complicated." for i in range(n)]
    src += [f"  sentence NUMBER {i} is rather long and complicated." for i in range(dup)]  # same normalised
    return {"pool.orig": "\n".join(src) + "\n",
            "pool.simp.0": "\n".join(f"Sentence {i} is long." for i in range(n + dup)) + "\n",
            "pool.simp.1": "\n".join(f"Sentence {i}." for i in range(n + dup)) + "\n"}


def test_local_dev_reader_specs(tmp_path):
    write(tmp_path, {"dev.orig": "A long sentence here.\nAnother one.\n", "dev.simp.0": "A sentence.\nOne.\n",
                     **asset_files(3)})
    cfg = local_cfg({"root": str(tmp_path),
                     "dev": {"simplification": {"format": "asset", "source": "dev.orig", "refs": "dev.simp.*"}},
                     "test": {"simplification": {"format": "asset", "source": "pool.orig", "refs": "pool.simp.*"}}})
    dev = load_split(cfg, "dev")
    assert [r.source for r in dev] == ["A long sentence here.", "Another one."]
    assert dev[0].meta["column"] == "AST" and dev[0].references == ["A sentence."]
    assert dev_files(cfg) == [str(tmp_path / "dev.orig"), str(tmp_path / "dev.simp.0")]
    assert str(tmp_path / "pool.orig") not in dev_files(cfg)


POOL = {"task": "simplification", "format": "asset", "source": "pool.orig", "refs": "pool.simp.*"}


def carve_cfg(root: Path, takes: dict[str, int | None], pool: dict | None = None, *overrides: str):
    local = {"root": str(root), "pools": {"p": {**POOL, **(pool or {})}}}
    for split, take in takes.items():
        local[split] = {"simplification": {"pool": "p", "take": take}}
    return local_cfg(local, *overrides)


def ids(cfg, split) -> list[str]:
    return [r.id for r in load_split(cfg, split)]


def test_carve_parts_are_disjoint_sized_and_cover_the_pool(tmp_path):
    write(tmp_path, asset_files(20, dup=3))
    cfg = carve_cfg(tmp_path, {"labeled": 8, "unlabeled": 5, "dev": 4, "test": None})
    parts = {s: load_split(cfg, s) for s in SPLITS}
    sources = {s: {norm_source(r.source) for r in rs} for s, rs in parts.items()}
    assert {s: len(v) for s, v in sources.items()} == {"labeled": 8, "unlabeled": 5, "dev": 4, "test": 3}
    assert sum(len(v) for v in sources.values()) == len(set().union(*sources.values())) == 20  # disjoint, all
    assert sum(len(rs) for rs in parts.values()) == 23  # repeated sources travel with their first copy
    assert all(r.target is None and r.references is None for r in parts["unlabeled"])  # targets dropped
    assert all(r.target for r in parts["labeled"]) and all(len(r.references) == 2 for r in parts["dev"])
    assert all(r.meta["column"] == "AST" for r in parts["dev"] + parts["test"])


def test_carve_is_the_same_whichever_split_is_read_first_and_ignores_seed(tmp_path):
    write(tmp_path, asset_files(30))
    takes = {"labeled": 10, "unlabeled": 6, "dev": 5, "test": None}
    first = {s: ids(carve_cfg(tmp_path, takes), s) for s in SPLITS}
    configured._pool_memo.clear()
    backwards = {s: ids(carve_cfg(tmp_path, takes, None, "seed=7"), s) for s in reversed(SPLITS)}
    assert backwards == first  # run seed does not move data; read order does not either
    configured._pool_memo.clear()
    other = {s: ids(carve_cfg(tmp_path, takes, {"seed": 1}), s) for s in SPLITS}
    assert other["dev"] != first["dev"]  # the carve seed does
    # growing dev takes sentences from the rest, not from the splits laid out before it
    more = carve_cfg(tmp_path, {**takes, "dev": 8})
    assert ids(more, "labeled") == first["labeled"] and set(first["dev"]) < set(ids(more, "dev"))


@pytest.mark.parametrize("local,msg", [
    ({"dev": {"simplification": {"pool": "p", "take": 31}}},
     r"^data\.local\.dev\.simplification\.take: 31 source sentences asked of data\.local\.pools\.p, which holds 30"),
    ({"labeled": {"simplification": {"pool": "p", "take": 20}}, "dev": {"simplification": {"pool": "p", "take": 11}}},
     r"^data\.local\.dev\.simplification\.take: 11 .* holds 30 \(data\.local\.labeled\.simplification 20 taken"),
    ({"dev": {"simplification": {"pool": "p", "take": None}}, "test": {"simplification": {"pool": "p", "take": None}}},
     r"^data\.local\.test\.simplification\.take: null \(the rest\) is already taken by data\.local\.dev"),
    ({"dev": {"simplification": {"pool": "q", "take": 3}}}, r"^data\.local\.dev\.simplification\.pool: 'q' is not a pool"),
    ({"dev": {"simplification": {"pool": "p"}}}, r"^data\.local\.dev\.simplification\.take: required"),
    ({"dev": {"simplification": {"pool": "p", "take": 0}}}, r"^data\.local\.dev\.simplification\.take: expected a positive"),
    ({"dev": {"simplification": {"pool": "p", "take": 3, "column": "AST"}}},
     r"^data\.local\.dev\.simplification\.column: not a key of a pool part"),
    ({"dev": {"gec": {"pool": "p", "take": 3}}}, r"^data\.local\.dev\.gec\.pool: pool 'p' holds task 'simplification'"),
])
def test_carve_errors_name_the_key(tmp_path, local, msg):
    write(tmp_path, asset_files(30))
    cfg = local_cfg({"root": str(tmp_path), "pools": {"p": POOL}, **local}, task="all")
    OmegaConf.update(cfg, "task.names", ["simplification", "gec"], merge=False)
    with pytest.raises(DataConfigError, match=msg):
        load_split(cfg, "dev")


def test_pool_spec_errors_name_the_key(tmp_path):
    write(tmp_path, asset_files(3))
    for pool, msg in (({k: v for k, v in POOL.items() if k != "task"}, r"^data\.local\.pools\.p\.task: required"),
                      ({**POOL, "seed": "x"}, r"^data\.local\.pools\.p\.seed: expected an integer"),
                      ({**POOL, "format": "m3"}, r"^data\.local\.pools\.p\.format: unknown format")):
        cfg = local_cfg({"root": str(tmp_path), "pools": {"p": pool}, "dev": {"simplification": {"pool": "p", "take": 1}}})
        with pytest.raises(DataConfigError, match=msg):
            load_split(cfg, "dev")
    cfg = local_cfg({"root": str(tmp_path), "pools": {"p": {**POOL, "source": "missing.orig"}},
                     "dev": {"simplification": {"pool": "p", "take": 1}}})
    with pytest.raises(FileNotFoundError, match=r"^data\.local\.pools\.p\.source: file not found"):
        load_split(cfg, "dev")


def test_carve_counts_reach_the_tally_and_stage_keys_hash_pool_and_parameters(tmp_path):
    write(tmp_path, asset_files(12))
    cfg = carve_cfg(tmp_path, {"labeled": 6, "dev": 3, "test": None})
    with carve_tally() as carved:
        load_split(cfg, "dev")
    assert carved == {"data.local.dev.simplification": {"pool": "p", "records": 3, "sources": 3, "pool_sources": 12,
                                                        "seed": 0}}
    assert split_files(cfg, ("dev",)) == [str(tmp_path / f) for f in ("pool.orig", "pool.simp.0", "pool.simp.1")]
    key = Context(cfg=cfg, workdir=tmp_path).key("sft")
    assert Context(cfg=carve_cfg(tmp_path, {"labeled": 6, "dev": 4, "test": None}), workdir=tmp_path).key("sft") != key
    assert Context(cfg=carve_cfg(tmp_path, {"labeled": 6, "dev": 3, "test": None}, {"seed": 3}),
                   workdir=tmp_path).key("sft") != key
    (tmp_path / "pool.simp.1").write_text("changed\n" * 12)
    assert Context(cfg=carve_cfg(tmp_path, {"labeled": 6, "dev": 3, "test": None}), workdir=tmp_path).key("sft") != key


def test_dev_record_without_gold_is_an_error(tmp_path):
    write(tmp_path, {"d.jsonl": json.dumps({"id": "d1", "task": "gec", "instruction": "Fix:", "source": "He go."}) + "\n"})
    cfg = compose(["task=gec", f"data.dev={tmp_path / 'd.jsonl'}"])
    with pytest.raises(RecordError, match=r"d\.jsonl:1: field 'target/references' missing: a dev record needs its gold"):
        load_split(cfg, "dev")


# ----------------------------------------------------------------------------- data=shared


def test_shared_dev_never_overlaps_test(monkeypatch):
    d = shared_dir("data")
    if d is None:
        pytest.skip("../shared/data absent (set RATIONALIGN_DATA to the public data folder)")
    monkeypatch.setenv("RATIONALIGN_DATA", str(d))
    cfg = compose(["data=shared", "task=all"])
    dev, test = load_split(cfg, "dev"), load_split(cfg, "test")
    assert Counter(r.task for r in dev) == {"gec": 200, "fluency": 129, "clarity": 119, "coherence": 41,
                                            "paraphrase": 16, "simplification": 300}
    for task in {r.task for r in test}:
        d_src = {norm_source(r.source) for r in dev if r.task == task}
        t_src = {norm_source(r.source) for r in test if r.task == task}
        assert d_src and not d_src & t_src, task
    assert all(r.meta.get("column") for r in dev)


# ----------------------------------------------------------------------------- evaluate.split


@pytest.fixture
def multirun(monkeypatch):
    monkeypatch.setattr(eval_split, "is_multirun", lambda: True)


def test_auto_is_test_in_a_single_run_and_dev_in_a_multirun(monkeypatch):
    cfg = compose(["stage=evaluate"])
    assert cfg.evaluate.split == "auto" and eval_split.requested_split(cfg) == "test"
    validate(cfg, data=False)
    assert cfg.evaluate.split == "test"  # settled before any stage key is computed
    monkeypatch.setattr(eval_split, "is_multirun", lambda: True)
    cfg = compose(["stage=evaluate"])
    validate(cfg, data=False)
    assert cfg.evaluate.split == "dev" and eval_split.evaluated_split(cfg) == ("dev", None)
    cfg = compose(["stage=evaluate", "evaluate.split=test"])
    assert eval_split.settle(cfg) == "test"  # an explicit split is kept under multirun too
    with pytest.raises(ConfigError, match="evaluate.split"):
        validate(compose(["evaluate.split=val"]), data=False)


def test_is_multirun_reads_hydras_mode():
    from hydra.conf import HydraConf
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    saved = HydraConfig.instance().cfg
    try:
        for mode, want in ((RunMode.MULTIRUN, True), (RunMode.RUN, False)):
            cfg = OmegaConf.create({"hydra": OmegaConf.structured(HydraConf)})
            cfg.hydra.mode = mode
            HydraConfig.instance().set_config(cfg)
            assert eval_split.is_multirun() is want
    finally:
        HydraConfig.instance().cfg = saved


def test_multirun_without_dev_fails_before_any_model_loads(multirun):
    with pytest.raises(ConfigError, match=r"^data\.dev: no dev split is configured, and a multirun evaluates dev"):
        validate(compose(["stage=pipeline", "data.dev=null"]))
    validate(compose(["stage=sft", "data.dev=null"]))  # a sweep that does not evaluate needs none


def test_test_requested_but_missing_falls_back_to_dev_with_a_reason():
    cfg = compose(["stage=evaluate", "data.test=null"])
    split, reason = eval_split.evaluated_split(cfg)
    assert split == "dev" and reason.startswith("no test set was given (data.test is not set)")
    for test in (None, {"format": "asset", "source": None, "refs": None}):  # disabled, or a preset's placeholder
        cfg = local_cfg({"dev": {"simplification": {"format": "asset", "source": "a", "refs": "b"}},
                         "test": {"simplification": test}})
        split, reason = eval_split.evaluated_split(cfg)
        assert split == "dev" and "data.local.test gives no data for tasks ['simplification']" in reason
    half = local_cfg({"dev": {"simplification": {"format": "asset", "source": "a", "refs": "b"}},
                      "test": {"simplification": {"format": "asset", "source": "a.orig", "refs": None}}})
    with pytest.raises(DataConfigError, match=r"^data\.local\.test\.simplification\.refs: required"):
        eval_split.evaluated_split(half)
    with pytest.raises(DataConfigError, match="no dev split either"):
        eval_split.evaluated_split(compose(["stage=evaluate", "data.test=null", "data.dev=null"]))


def test_validate_reads_only_the_splits_the_run_needs(monkeypatch, multirun):
    read = []
    real = splits.load_split
    monkeypatch.setattr(splits, "load_split", lambda cfg, s: read.append(s) or real(cfg, s))
    validate(compose(["stage=pipeline", "task=gec"]))
    assert read == ["labeled", "unlabeled", "dev"]
    read.clear()
    validate(compose(["stage=pipeline", "task=gec", "evaluate.split=test"]))
    assert read == ["labeled", "unlabeled", "dev", "test"]  # dev kept apart, beside test
    read.clear()
    validate(compose(["stage=quark", "task=gec"]))  # quark.eval_split=test asks for test itself
    assert "test" in read


def test_evaluate_key_hashes_only_the_evaluated_split(tmp_path):
    for s in ("dev", "test"):
        write(tmp_path, {f"{s}.jsonl": json.dumps({"id": f"{s}1", "task": "gec", "instruction": "Fix:",
                                                   "source": "He go.", "target": "He goes."}) + "\n"})

    def key(split: str) -> str:
        cfg = compose(["stage=evaluate", "evaluate.systems=[base]", f"data.dev={tmp_path / 'dev.jsonl'}",
                       f"data.test={tmp_path / 'test.jsonl'}", f"evaluate.split={split}"])
        return Context(cfg=cfg, workdir=tmp_path).key("evaluate")

    dev_key, test_key = key("dev"), key("test")
    (tmp_path / "test.jsonl").write_text((tmp_path / "test.jsonl").read_text().replace("He goes.", "He has gone."))
    assert key("dev") == dev_key and key("test") != test_key
    (tmp_path / "dev.jsonl").write_text((tmp_path / "dev.jsonl").read_text().replace("He goes.", "He has gone."))
    assert key("dev") != dev_key


def test_evaluate_without_a_test_set_evaluates_dev_and_says_so(tmp_path, caplog):
    from rationalign.runner import run

    cfg = compose(["stage=evaluate", "model=tiny", "task=gec", "evaluate.systems=[base]", "evaluate.analyses=false",
                   "evaluate.max_new_tokens=4", "data.test=null", "data.max_dev_per_task=2",
                   f"paths.root={tmp_path / 'out'}"])
    with caplog.at_level("WARNING", logger="rationalign"):
        manifest = run(cfg)
    assert manifest["evaluated_split"] == "dev" and manifest["counts"] == {"dev_records": 2, "systems": 1}
    assert manifest["test_missing_reason"].startswith("no test set was given (data.test is not set)")
    assert "evaluating the dev split instead" in caplog.text
    report = json.loads(Path(manifest["report"]).with_suffix(".json").read_text())
    assert report["analyses"]["test_missing_reason"] == manifest["test_missing_reason"]
