"""The engine factory and the vLLM engine, against the CPU stand-in in tests/fake_vllm.

The stand-in has vLLM's public offline surface and runs transformers underneath, so these tests
check what reaches vLLM (token ids, SamplingParams, LoRARequest, model dirs) *and* that the outputs
match the HF engine's. The real vLLM runs only on a GPU machine; nothing here exercises it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from rationalign.runner import compose

FAKE = Path(__file__).resolve().parent / "fake_vllm"
PROMPTS = ["Fix the grammar: he go home", "Make this formal: gonna be late, sorry", "Simplify: notwithstanding"]


@pytest.fixture
def fake_vllm(monkeypatch):
    """The stand-in importable as `vllm` for one test; its call log, emptied."""
    monkeypatch.syspath_prepend(str(FAKE))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    assert vllm.__file__.startswith(str(FAKE))
    vllm.CALLS.clear()
    yield vllm
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


def _cfg(tmp_path, *extra):
    return compose(["model=tiny", "engine=vllm", f"paths.root={tmp_path / 'out'}", *extra])


def _tmp_copies(cfg) -> set[str]:
    d = Path(cfg.paths.cache) / "vllm-tmp"
    return {p.name for p in d.iterdir()} if d.exists() else set()


@pytest.fixture
def tiny_adapter(tmp_path):
    """A saved LoRA adapter on the tiny model whose weights visibly change greedy outputs."""
    from rationalign.models import add_lora, load_base_model, save_model

    model, tok = load_base_model({"source": "tiny"})
    peft_model = add_lora(model, {"lora": {"r": 8, "alpha": 16, "dropout": 0.0}})
    with torch.random.fork_rng():
        torch.manual_seed(1)
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.5)
    return save_model(peft_model, tok, tmp_path / "adapter"), peft_model, tok


def _generates(vllm):
    return [c for c in vllm.CALLS if c["call"] == "generate"]


def test_vllm_gets_the_training_prompt_ids_and_matches_hf_greedy(fake_vllm, tmp_path, tiny_adapter):
    from rationalign.engines import build_engine
    from rationalign.training.chat import Layout, encode_pair

    adapter, _, tok = tiny_adapter
    cfg = _cfg(tmp_path)
    with build_engine(cfg, adapter=adapter) as eng:
        got = eng.generate(PROMPTS, temperature=0, max_new_tokens=8)
    (llm,) = [c for c in fake_vllm.CALLS if c["call"] == "LLM"]
    (gen,) = _generates(fake_vllm)
    # Token ids, never text (vLLM would tokenise text again and add its own BOS), equal to what
    # training puts before the completion.
    assert gen["kinds"] == ["tokens"]
    layout = Layout.from_cfg(cfg.prompts)
    assert gen["prompt_token_ids"] == [encode_pair(tok, p, "x", 10_000, layout=layout)[0] for p in PROMPTS]
    # The adapter travels as a LoRARequest over the base weights, not merged.
    assert llm["enable_lora"] is True and llm["max_lora_rank"] == 8
    assert all(r == ["adapter", 1, str(adapter)] for r in gen["lora"])
    assert gen["params"][0]["temperature"] == 0 and gen["params"][0]["top_k"] == -1

    hf = build_engine(compose(["model=tiny"]), adapter=adapter)
    want = hf.generate(PROMPTS, temperature=0, max_new_tokens=8)
    assert got == want
    base = build_engine(compose(["model=tiny"])).generate(PROMPTS, temperature=0, max_new_tokens=8)
    assert base != want  # the adapter matters, so equality above means vLLM applied it


def test_merged_lora_mode_gives_the_same_outputs(fake_vllm, tmp_path, tiny_adapter):
    from rationalign.engines import build_engine

    adapter, _, _ = tiny_adapter
    with build_engine(_cfg(tmp_path), adapter=adapter) as eng:
        lora_out = eng.generate(PROMPTS, temperature=0, max_new_tokens=8)
    fake_vllm.CALLS.clear()
    with build_engine(_cfg(tmp_path, "engine.lora=merged", "engine.tensor_parallel_size=2"), adapter=adapter) as eng:
        merged_out = eng.generate(PROMPTS, temperature=0, max_new_tokens=8)
        merged_dir = Path(eng.model_dir)
        assert (merged_dir / "config.json").exists()
    (llm,) = [c for c in fake_vllm.CALLS if c["call"] == "LLM"]
    assert "enable_lora" not in llm and llm["tensor_parallel_size"] == 2
    assert _generates(fake_vllm)[0]["lora"] == [None] * len(PROMPTS)
    assert merged_out == lora_out
    assert not merged_dir.exists()  # close() deletes the temporary merged copy


def test_samples_n_per_prompt_with_a_seed_per_request(fake_vllm, tmp_path):
    from rationalign.engines import build_engine
    from rationalign.engines.vllm import request_seed

    kw = {"temperature": 1.2, "top_p": 0.9, "top_k": 50, "presence_penalty": 1.2, "max_new_tokens": 6, "seed": 5}
    with build_engine(_cfg(tmp_path)) as eng:
        all_three = eng.sample(PROMPTS, n=3, **kw)
        last_alone = eng.sample(PROMPTS[2:], n=3, **kw)  # a resumed shard that lost the others
        other_seed = eng.sample(PROMPTS[2:], n=3, **{**kw, "seed": 6})
    assert [len(x) for x in all_three] == [3, 3, 3]
    assert last_alone[0] == all_three[2]  # a request's samples do not depend on its batch
    assert other_seed[0] != all_three[2]
    first = _generates(fake_vllm)[0]
    p = first["params"][0]
    assert (p["n"], p["temperature"], p["top_p"], p["top_k"], p["presence_penalty"], p["max_tokens"]) == \
        (3, 1.2, 0.9, 50, 1.2, 6)
    assert [q["seed"] for q in first["params"]] == [request_seed(5, ids) for ids in first["prompt_token_ids"]]
    with pytest.raises(ValueError, match="greedy"):
        eng.sample(PROMPTS, n=2, temperature=0)


def test_stop_strings_stay_in_the_text_like_hf(fake_vllm, tmp_path, tiny_adapter):
    from rationalign.engines import build_engine

    adapter, _, _ = tiny_adapter
    hf = build_engine(compose(["model=tiny"]), adapter=adapter)
    free = hf.generate(PROMPTS[:1], temperature=0, max_new_tokens=12)[0]
    stop = free.split()[1] if len(free.split()) > 1 else free[:2]
    want = hf.generate(PROMPTS[:1], temperature=0, max_new_tokens=12, stop=[stop])
    with build_engine(_cfg(tmp_path), adapter=adapter) as eng:
        got = eng.generate(PROMPTS[:1], temperature=0, max_new_tokens=12, stop=[stop])
    assert stop in got[0] and got == want
    assert _generates(fake_vllm)[0]["params"][0]["include_stop_str_in_output"] is True


def test_in_memory_policy_with_added_tokens_goes_as_a_merged_copy(fake_vllm, tmp_path):
    """A QUARK policy (LoRA + trainable control-token rows) cannot be a LoRARequest."""
    from rationalign.engines import build_engine
    from rationalign.engines.hf import HFEngine
    from rationalign.models import add_lora, load_base_model
    from rationalign.quark.control import add_control_tokens, merged
    from rationalign.training.chat import Layout

    model, tok = load_base_model({"source": "tiny"})
    ids = add_control_tokens(model, tok, ["<|quark_a_0|>", "<|quark_a_1|>"])
    policy = add_lora(model, {"lora": {"r": 4, "alpha": 8, "dropout": 0.0}}, trainable_token_indices=ids)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.3)
    msgs = ["<|quark_a_1|>" + p for p in PROMPTS]
    with merged(policy):
        want = HFEngine(policy, tok, progress=False, layout=Layout()).generate(msgs, temperature=0,
                                                                              max_new_tokens=8)
    with build_engine(_cfg(tmp_path), policy, tok) as eng:
        got = eng.generate(msgs, temperature=0, max_new_tokens=8)
    (llm,) = [c for c in fake_vllm.CALLS if c["call"] == "LLM"]
    assert "enable_lora" not in llm and "merged-" in llm["model"]
    assert got == want
    assert hasattr(policy, "peft_config")  # the policy keeps its adapters for the next round


def test_vllm_refuses_encoder_decoder_models(fake_vllm, tmp_path):
    from rationalign.engines import build_engine

    with pytest.raises(ValueError, match="encoder-decoder"):
        build_engine(compose(["model=tiny-t5", "engine=vllm"]))


def test_engine_name_keys_sampling_stages_but_not_greedy_evaluation(tmp_path):
    from rationalign.stages.base import Context

    import_all()
    keys = {}
    for engine in ("hf", "vllm"):
        cfg = compose(["model=tiny", f"engine={engine}", f"paths.root={tmp_path}"])
        ctx = Context(cfg=cfg, workdir=tmp_path)
        keys[engine] = {s: ctx.key(s) for s in ("kfold", "sample", "quark", "evaluate")}
    assert keys["hf"]["kfold"] != keys["vllm"]["kfold"]  # different random samples
    assert keys["hf"]["quark"] != keys["vllm"]["quark"]
    # evaluate with only greedy systems that need no sampled data: same key, predictions reused.
    cfg = compose(["model=tiny", "engine=hf", "evaluate.systems=[base,sft]", "evaluate.analyses=false"])
    cfg_v = compose(["model=tiny", "engine=vllm", "evaluate.systems=[base,sft]", "evaluate.analyses=false"])
    assert Context(cfg=cfg, workdir=tmp_path).key("evaluate") == Context(cfg=cfg_v, workdir=tmp_path).key("evaluate")


def import_all():
    from rationalign.components import import_components

    import_components()


# ------------------------------------------------------------------------------------ stage routing
# As tests/test_pipeline.py: the random tiny model, every task, no rationale (any sample parses).
STAGE = ["task=all", "rationale.position=none", "data.max_labeled_per_task=2", "data.max_unlabeled_per_task=3",
         "data.max_test_per_task=1", "sft.train.batch_size=16", "kfold.k=2", "kfold.n_samples=2",
         "kfold.train.batch_size=16", "sample.m=2", "sample.max_new_tokens=10", "sample.shard_size=32",
         "evaluate.max_new_tokens=10", "pairs.keep_fraction=0.5", "align.train.batch_size=8",
         "reward.train.batch_size=8"]


SMALL = ["task=gec", "rationale.position=none", "data.max_labeled_per_task=4", "data.max_test_per_task=3",
         "kfold.k=2", "kfold.n_samples=2", "kfold.train.batch_size=8", "sft.train.batch_size=8",
         "sample.max_new_tokens=8", "evaluate.max_new_tokens=8"]


@pytest.fixture
def no_hf_generation(monkeypatch):
    from rationalign.engines.hf import HFEngine

    def refuse(*a, **k):
        raise AssertionError("engine=vllm generated through HFEngine")

    monkeypatch.setattr(HFEngine, "sample_ids", refuse)


def test_kfold_routes_one_vllm_call_per_fold(fake_vllm, tmp_path, no_hf_generation):
    from rationalign.runner import run
    from rationalign.stages.base import Context

    cfg = _cfg(tmp_path, "stage=kfold", *SMALL)
    before = _tmp_copies(cfg)
    run(cfg)
    gens = _generates(fake_vllm)
    assert len(gens) == 2  # k folds, one generate call each
    assert all(g["kinds"] == ["tokens"] and {p["n"] for p in g["params"]} == {2} for g in gens)
    # Each fold's own adapter, as a LoRARequest over the same base weights.
    assert [g["lora"][0][1] for g in gens] == [1, 1] and gens[0]["lora"][0][2] != gens[1]["lora"][0][2]
    out = Context(cfg=cfg, workdir=Path(cfg.paths.workdir)).stage_dir("kfold")
    rows = [json.loads(x) for f in ("fold_0", "fold_1") for x in (out / f / "samples.jsonl").read_text().splitlines()]
    assert sum(g["n_prompts"] for g in gens) == len(rows) == 4 and all(len(r["samples"]) == 2 for r in rows)
    assert _tmp_copies(cfg) <= before  # the temporary base/adapter copies are gone


def test_evaluate_routes_through_vllm(fake_vllm, tmp_path, no_hf_generation):
    from rationalign.runner import run
    from rationalign.stages.base import Context

    cfg = _cfg(tmp_path, "stage=evaluate", "evaluate.systems=[base,sft]", "evaluate.analyses=false", *SMALL)
    manifest = run(cfg)
    gens = _generates(fake_vllm)
    assert len(gens) == 2 and [g["lora"][0] is None for g in gens] == [True, False]  # base, then sft's adapter
    assert all(g["n_prompts"] == 3 and g["params"][0]["temperature"] == 0 for g in gens)
    preds = Context(cfg=cfg, workdir=Path(cfg.paths.workdir)).stage_dir("evaluate") / "predictions"
    assert sorted(p.name for p in preds.iterdir()) == ["base", "sft"] and Path(manifest["report"]).exists()


@pytest.mark.slow
def test_pipeline_evaluate_routes_every_stage_through_vllm(fake_vllm, tmp_path, no_hf_generation):
    """base, sft and aligned systems: kfold, sample and evaluate all generate through the stand-in."""
    from rationalign.runner import run
    from rationalign.stages.base import Context

    cfg = _cfg(tmp_path, "stage=evaluate", "evaluate.systems=[base,sft,aligned]", *STAGE)
    manifest = run(cfg)
    ctx = Context(cfg=cfg, workdir=Path(cfg.paths.workdir))
    gens = _generates(fake_vllm)
    sampled = [g for g in gens if g["params"][0]["temperature"] > 0]
    greedy = [g for g in gens if g["params"][0]["temperature"] == 0]
    assert len(sampled) == 3 and all(g["params"][0]["n"] == 2 for g in sampled)  # 2 K-fold calls, 1 shard
    tasks = len(cfg.task.names)
    assert len(greedy) == 3 * tasks  # evaluate: one call per system and task
    assert [g["lora"][0] is None for g in greedy] == [True] * tasks + [False] * 2 * tasks  # base: no adapter
    assert all(g["kinds"] == ["tokens"] for g in gens)
    assert Path(manifest["report"]).exists()
    preds = ctx.stage_dir("evaluate") / "predictions"
    assert sorted(p.name for p in preds.iterdir()) == ["aligned", "base", "sft"]
