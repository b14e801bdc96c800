"""Issue 27, items 4 and 8-10: what used to fail late (or not at all) is refused before the first
stage, in one line naming the option or file: an unknown preset, an empty input file, engine=vllm
without vLLM, an out-of-range seed, more folds than labeled records, a predict text over the bound."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from rationalign.components import import_components
from rationalign.runner import compose
from rationalign.validate import ConfigError, validate

from .conftest import REPO
from .test_data_local import custom_cfg, write_tree


@pytest.fixture(autouse=True)
def _components():
    import_components()


def test_unknown_preset_is_refused_naming_it_and_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"experiment=smok: no such experiment preset \(did you mean smoke\?\); "
                                          r"known: .*demo.*smoke"):
        compose(["experiment=smok", "stage=show_prompts"])
    with pytest.raises(ConfigError, match="loss=dpoo: no such loss preset"):
        compose(["loss=mpo,dpoo"])  # each option of a sweep
    assert compose(["experiment=smoke"]).run_name == "smoke"


def test_cli_refuses_an_unknown_preset_before_anything_runs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "rationalign", "model=tiny", "experiment=smok", "stage=show_prompts",
                        f"paths.root={tmp_path}", f"hydra.run.dir={tmp_path / 'h'}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "config error: experiment=smok: no such experiment preset (did you mean smoke?)" in r.stderr
    assert "###Input" not in r.stdout  # nothing ran with the defaults


def test_empty_labeled_file_is_refused_naming_it(tmp_path):
    empty = tmp_path / "labeled.jsonl"
    empty.write_text("")
    with pytest.raises(ConfigError, match=rf"data\.labeled: {empty}: no records \(the file is empty\)"):
        validate(compose(["model=tiny", "stage=sft", f"data.labeled={empty}"]))


def test_empty_m2_test_file_is_refused_naming_it(tmp_path):
    write_tree(tmp_path, {"empty.m2": ""})
    cfg = custom_cfg({"root": str(tmp_path), "test": {"gec": {"format": "m2", "path": "empty.m2"}}}, task="gec")
    with pytest.raises(ConfigError, match=r"data\.local\.test\.gec: no records in .*empty\.m2"):
        validate(cfg)


def test_split_without_records_for_the_selected_tasks_is_refused_when_a_stage_reads_it(tmp_path):
    only_gec = tmp_path / "labeled.jsonl"
    only_gec.write_text(json.dumps({"id": "a", "task": "gec", "instruction": "Fix:", "source": "He go .",
                                    "target": "He goes ."}) + "\n")
    cfg = compose(["model=tiny", "stage=sft", "task=simplification", f"data.labeled={only_gec}"])
    with pytest.raises(ConfigError, match=r"data\.labeled: no records for task\(s\) simplification in .*"
                                          r"labeled\.jsonl, and stage \w+ reads them"):
        validate(cfg)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_missing_vllm_is_refused_before_the_fold_models_train(tmp_path):
    cfg = compose(["model=tiny", "stage=kfold", "engine=vllm", f"paths.root={tmp_path}"])
    with pytest.raises(ConfigError, match=r"engine=vllm needs vLLM.*needed by stage kfold"):
        validate(cfg)
    validate(compose(["model=tiny", "stage=sft", "engine=vllm"]))  # sft generates nothing: no vLLM needed
    with pytest.raises(ConfigError, match="needed by stage.*sample"):
        validate(compose(["model=tiny", "stage=pairs", "engine=vllm"]))  # sample is upstream of pairs


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_out_of_range_seed_is_refused(seed):
    with pytest.raises(ConfigError, match=rf"seed={seed}: out of range \(must be >= 0 and <= 2147483647\)"):
        validate(compose(["model=tiny", f"seed={seed}"]), data=False)


def test_more_folds_than_labeled_records_is_refused():
    cfg = compose(["model=tiny", "stage=reward", "task=all", "data.max_labeled_per_task=2", "kfold.k=100"])
    with pytest.raises(ConfigError, match=r"kfold\.k=100: more folds than the 16 labeled records"):
        validate(cfg)
    validate(compose(["model=tiny", "stage=sft", "task=all", "data.max_labeled_per_task=2", "kfold.k=100"]))


def test_predict_text_over_the_bound_is_refused_before_the_model_loads(tmp_path):
    from rationalign.config import MAX_TEXT_CHARS, PredictParams, ServeParams

    assert PredictParams().max_chars == ServeParams().max_chars == MAX_TEXT_CHARS
    long_text = "She go home . " * 2600  # 36k characters
    with pytest.raises(ConfigError, match=r"predict\.text: 36400 characters, over the limit of 2000"):
        validate(compose(["model=tiny", "stage=predict", f"predict.text='{long_text}'"]))
    texts = tmp_path / "in.txt"
    texts.write_text("She go home .\n\n" + "x" * 2001 + "\n")
    with pytest.raises(ConfigError, match=rf"{texts}:3: 2001 characters, over the limit of 2000"):
        validate(compose(["model=tiny", "stage=predict", f"predict.input={texts}"]))
    validate(compose(["model=tiny", "stage=predict", f"predict.input={texts}", "predict.max_chars=3000"]))
