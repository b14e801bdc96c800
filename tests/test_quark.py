"""QUARK multi-reward training (stage=quark): rewards alone, quantisation, control tokens, the stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rationalign.cli import compose, run
from rationalign.data.records import Record
from rationalign.quark.quantize import Pool, assign_bins, quantile_edges
from rationalign.quark.rewards import REWARDS, RewardEnv, Sample, build_reward
from rationalign.stages.base import Context

GEC = Record(id="r1", task="gec", instruction="Fix the grammar:", source="He go to school yesterday.",
             target="He went to school yesterday.")


def _s(suggestion, rationale, record=GEC):
    return Sample(record, suggestion, rationale)


# ------------------------------------------------------------------------------------------- rewards
def test_registry_ships_the_five_rewards_and_names_bad_options():
    assert {"rm", "task_metric", "consistency", "diversity", "length"} <= set(REWARDS.names())
    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        build_reward("nope", RewardEnv())
    with pytest.raises(ValueError, match="quark.reward_options.length"):
        build_reward("length", RewardEnv(), {"max_wrds": 3})


def test_consistency_reward_alone():
    r = build_reward("consistency", RewardEnv())
    named = 'The word "go" should be replaced by "went" because the tense must fit.'
    wrong = 'The word "school" should be replaced by "college" because it is clearer.'
    two_edit_src = Record(id="r2", task="gec", instruction="", source="She have a apple.", target="She has an apple.")
    half = 'The word "have" should be replaced by "has" because of agreement.'
    scores = r.score([
        _s("He went to school yesterday.", named),          # the one edit, named: 1
        _s("He went to school yesterday.", wrong),          # names edits that were not made: 0
        _s("He go to school yesterday.", "No change is needed."),   # no edits, nothing named: 1
        _s("He go to school yesterday.", named),            # names an edit it did not make: 0
        _s("He went to school yesterday.", None),           # no rationale: 0
        _s("She has an apple.", half, two_edit_src),        # recall 1/2, precision 1 -> F1 2/3
    ])
    assert scores[:5] == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert scores[5] == pytest.approx(2 / 3)


def test_diversity_reward_alone():
    r = build_reward("diversity", RewardEnv(), {"orders": [1, 2]})
    s = r.score([_s("x", "a b c d"), _s("x", "the the the the"), _s("x", ""), _s("x", "word")])
    assert s[0] == 1.0
    assert s[1] == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert s[2] == 0.0
    assert s[3] == 0.5  # no bigrams: a one-word rationale cannot reach the maximum


def test_length_reward_alone():
    r = build_reward("length", RewardEnv(), {"min_words": 5, "max_words": 20})
    s = r.score([_s("x", " ".join(["w"] * 10)), _s("x", "too short"), _s("x", " ".join(["w"] * 40)), _s("x", None)])
    assert s == [0.0, pytest.approx(-0.6), pytest.approx(-1.0), -1.0]


def test_task_metric_reward_alone():
    from omegaconf import OmegaConf

    specs = compose(["task=all"]).task.specs
    r = build_reward("task_metric", RewardEnv(specs=specs))
    s = r.score([_s("He went to school yesterday.", "r"), _s("He go to school yesterday.", "r"), _s("", None)])
    # M2 F0.5 by hand: the one gold edit made -> 100; no edit proposed, one missed -> 0
    assert s[0] == pytest.approx(100.0) and s[1] == 0.0
    # each sample under its own record's task metric: SARI for fluency (prediction = reference -> 100)
    flu = Record(id="f", task="fluency", instruction="", source="aa bb cc dd ee xx", target="aa bb cc dd ee yy")
    assert r.score([_s("aa bb cc dd ee yy", "r", flu)]) == [pytest.approx(100.0)]
    assert s[2] == s[1]  # an unparsable answer counts as "no change"
    with pytest.raises(ValueError, match="no gold"):
        r.score([_s("x", "y", Record(id="u", task="gec", instruction="", source="a b"))])
    assert OmegaConf.is_config(specs)


def test_rm_reward_alone(tmp_path):
    from rationalign.models import load_for_training, save_model
    from rationalign.training.reward import RewardScorer, RMTemplate, write_meta

    cfg = compose(["model=tiny", "task=gec"])
    model, tok = load_for_training(cfg.model, head="score")
    with torch.no_grad():  # a non-zero head, so different suggestions get different scores
        for n, p in model.named_parameters():
            if "score" in n and p.dim() == 2:
                p.normal_(0, 1.0)
    save_model(model, tok, tmp_path / "rm" / "adapter")
    write_meta(tmp_path / "rm", cfg.model, RMTemplate.from_cfg(cfg.prompts, cfg.task), {"*": "adapter"}, 128)
    with pytest.raises(ValueError, match="reward-model dir"):
        build_reward("rm", RewardEnv())
    r = build_reward("rm", RewardEnv(rm_dir=tmp_path / "rm"))
    s = r.score([_s("He went to school yesterday.", "a"), _s("Completely different words here.", "b")])
    direct = RewardScorer.load(tmp_path / "rm").score([("gec", GEC.instruction, GEC.source, "He went to school yesterday."),
                                                       ("gec", GEC.instruction, GEC.source, "Completely different words here.")])
    assert s == pytest.approx(direct) and s[0] != s[1]


# -------------------------------------------------------------------------------------- quantisation
def test_quantile_bins_are_equal_sized_on_distinct_values():
    v = list(range(10))
    assert assign_bins(v, quantile_edges(v, 5)) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert quantile_edges(v, 1) == [] and assign_bins(v, []) == [0] * 10


def test_ties_at_the_top_reach_the_best_bin_and_ties_at_the_bottom_the_worst():
    v = [0.0] * 24 + [0.5] * 2 + [1.0] * 4
    bins = assign_bins(v, quantile_edges(v, 5))
    assert set(bins[:24]) == {0} and set(bins[26:]) == {4}
    assert 0 < bins[24] <= 4


def test_growing_pool_requantises_old_items():
    pool = Pool([{"rewards": {"a": float(x), "b": float(-x)}} for x in range(10)])
    bins, edges = pool.quantize(["a", "b"], 5)
    assert bins[9] == {"a": 4, "b": 0} and len(edges["a"]) == 4
    pool.add([{"rewards": {"a": float(x), "b": 0.0}} for x in range(10, 20)])
    bins2, edges2 = pool.quantize(["a"], 5)
    assert len(pool) == 20 and set(bins2[0]) == {"a"}
    assert bins2[9]["a"] == 2  # best in round 1, average once better samples joined
    assert edges2["a"][0] > edges["a"][0]


# ------------------------------------------------------------------------------------ control tokens
def test_control_tokens_added_trained_and_round_tripped(tmp_path):
    from peft import LoraConfig, get_peft_model

    from rationalign.models import load_base_model
    from rationalign.quark.control import (
        add_control_tokens,
        all_control_tokens,
        best_prefix,
        inference_prefix,
        load_quark_policy,
    )
    from rationalign.stages.quark import save_policy
    from rationalign.training.chat import Layout

    cfg = compose(["model=tiny"])
    model, tok = load_base_model(cfg.model)
    v0 = len(tok)
    tokens = all_control_tokens(["consistency", "length"], 3)
    ids = add_control_tokens(model, tok, tokens)
    assert len(tok) == v0 + 6 and ids == list(range(v0, v0 + 6))
    emb = model.get_input_embeddings().weight
    # each row starts at the mean of its description's word embeddings ("consistency 0"): distinct
    # rows per reward and bin, inside the embedding distribution
    words = tok(" consistency 0", add_special_tokens=False)["input_ids"]
    assert emb.shape[0] == len(tok) and torch.allclose(emb[v0], emb[words].mean(0))
    assert len({tuple(emb[i].tolist()) for i in ids}) == len(ids)
    prefix = best_prefix(["consistency", "length"], ["length", "consistency"], 3)
    assert prefix == "<|quark_length_2|><|quark_consistency_2|>"
    enc = tok(prefix + "Fix it.", add_special_tokens=False)["input_ids"]
    assert enc[:2] == [tok.convert_tokens_to_ids(t) for t in ("<|quark_length_2|>", "<|quark_consistency_2|>")]

    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                             task_type="CAUSAL_LM", trainable_token_indices=ids))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("trainable_tokens" in n for n in trainable) and any("lora_" in n for n in trainable)
    with torch.no_grad():  # stand-in for training: move the control-token rows
        for n, p in model.named_parameters():
            if "trainable_tokens_delta" in n:
                p.add_(torch.randn_like(p))
    text = Layout("chat").text(tok, prefix + "Fix it.")
    x = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    model.eval()
    with torch.no_grad():
        before = model(input_ids=x).logits
    meta = {"rewards": ["consistency", "length"], "active_rewards": ["consistency", "length"],
            "token_order": ["length", "consistency"], "n_bins": 3, "init_adapter": None, "tokens": tokens}
    save_policy(model, tok, tmp_path / "adapter", meta)
    m2, t2 = load_quark_policy(cfg.model, tmp_path)
    assert len(t2) == len(tok) and t2.convert_tokens_to_ids(tokens) == ids
    assert inference_prefix(tmp_path) == prefix
    with torch.no_grad():
        after = m2(input_ids=x).logits
    assert torch.allclose(before, after, atol=1e-5)
    assert t2.decode(t2(prefix + "ok", add_special_tokens=False)["input_ids"], skip_special_tokens=True) == "ok"
    # what stage=evaluate calls: the quark dir gets its prefix, a plain system none
    from rationalign.quark.control import load_for_inference

    _, t3, pre = load_for_inference(cfg.model, tmp_path / "adapter")
    assert pre == prefix and len(t3) == len(tok)
    _, t4, pre4 = load_for_inference(cfg.model, None)
    assert pre4 == "" and len(t4) == v0


def test_quark_terms_match_definitions():
    from rationalign.quark.trainer import quark_loss, quark_terms

    v = 7
    logits = torch.zeros(3, v)
    t = quark_terms(logits, torch.tensor([0, 1, 2]), torch.zeros(3, v))
    assert t["kl"].item() == pytest.approx(0.0, abs=1e-6)
    assert t["entropy"].item() == pytest.approx(math.log(v))
    assert t["ce"].item() == pytest.approx(math.log(v))
    ref = torch.randn(3, v)
    t2 = quark_terms(logits, torch.tensor([0, 1, 2]), ref)
    expected = torch.nn.functional.kl_div(torch.log_softmax(ref, -1), torch.log_softmax(logits, -1),
                                          log_target=True, reduction="none").sum(-1).mean()
    assert t2["kl"].item() == pytest.approx(expected.item(), rel=1e-5) and t2["kl"] > 0
    assert quark_loss(t2, 0.5, 0.1).item() == pytest.approx((t2["ce"] + 0.5 * t2["kl"] - 0.1 * t2["entropy"]).item())


def test_control_token_rows_get_their_own_learning_rate():
    from peft import LoraConfig, get_peft_model

    from rationalign.models import load_base_model
    from rationalign.quark.control import add_control_tokens, all_control_tokens
    from rationalign.quark.trainer import token_row_optimizer

    model, tok = load_base_model(compose(["model=tiny"]).model)
    ids = add_control_tokens(model, tok, all_control_tokens(["length"], 2))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM",
                                             trainable_token_indices=ids))
    opt = token_row_optimizer(model, 1e-4, 1e-2, 0.1)
    rows, rest = opt.param_groups
    assert rows["lr"] == 1e-2 and rows["weight_decay"] == 0.0 and rest["lr"] == 1e-4 and rest["weight_decay"] == 0.1
    assert sum(p.numel() for p in rows["params"]) == 2 * model.get_input_embeddings().weight.shape[1]
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == n_trainable


# --------------------------------------------------------------------------------------- variants
def test_additive_adds_one_reward_per_round_canonical_uses_all():
    from rationalign.stages.quark import active_rewards, check_params

    rw = ["rm", "consistency", "length"]
    assert [active_rewards("canonical", rw, r) for r in (1, 2, 4)] == [rw, rw, rw]
    assert [active_rewards("additive", rw, r) for r in (1, 2, 3, 4)] == [rw[:1], rw[:2], rw, rw]
    q = compose(["quark.rewards=[length,consistency]", "quark.token_order=[length]"]).quark
    with pytest.raises(ValueError, match="permutation"):
        check_params(q)
    with pytest.raises(ValueError, match="unknown reward"):
        check_params(compose(["quark.rewards=[lenght]"]).quark)


# ------------------------------------------------------------------------------------------ stage
QUICK = ["stage=quark", "quark.max_new_tokens=16", "quark.eval_max_new_tokens=12", "quark.train.batch_size=8",
         "quark.sample_interval=3"]


def _rounds(cfg) -> list[dict]:
    return json.loads((Context(cfg, Path(cfg.paths.workdir)).stage_dir("quark") / "quark_rounds.json").read_text())


def test_stage_quark_runs_two_rounds_reports_and_resumes(tiny_overrides):
    from rationalign.quark.control import inference_prefix, load_quark_policy

    over = [*tiny_overrides, *QUICK, "quark.rewards=[task_metric,consistency,diversity,length]", "quark.log_samples=2"]
    cfg = compose(over)
    m = run(cfg)
    out = Context(cfg, Path(cfg.paths.workdir)).stage_dir("quark")
    rounds = _rounds(cfg)
    assert m["counts"]["rounds"] == 2 and [r["round"] for r in rounds] == [1, 2]
    # pool: 6 gold rows + 6 inputs x 2 samples in round 1, + 12 in round 2 (none empty on this model)
    assert [r["pool_size"] for r in rounds] == [6 + 12 - rounds[0]["empty_outputs"],
                                                6 + 24 - rounds[0]["empty_outputs"] - rounds[1]["empty_outputs"]]
    for r in rounds:
        assert set(r["reward_means"]) == {"task_metric", "consistency", "diversity", "length"}
        assert set(r["gold_reward_means"]) == set(r["reward_means"]) or r["round"] > 1
        assert "gec" in r["task_metric_test"] and r["task_metric_test"]["n"] == 3
        assert len(r["samples"]) == 2 and "rationale" in r["samples"][0]
        assert r["train"]["steps"] > 0 and r["train"]["kl"] >= 0
    assert rounds[0]["sampling_prefix"] == ""  # the start policy samples unconditioned
    assert rounds[1]["sampling_prefix"].count("<|quark_") == 4
    assert rounds[0]["gold_reward_means"]["task_metric"] == pytest.approx(100.0)
    assert m["metrics"]["rounds"][1]["pool_size"] == rounds[1]["pool_size"]
    assert inference_prefix(out).endswith("<|quark_length_4|>")
    _, tok = load_quark_policy(cfg.model, out)
    assert "<|quark_consistency_4|>" in tok.get_vocab()

    # Same config: skipped. A crash after round 1 (no manifest, no round 2): resumes at round 2.
    before = (out / "manifest.json").stat().st_mtime
    run(compose(over))
    assert (out / "manifest.json").stat().st_mtime == before
    import shutil

    (out / "manifest.json").unlink()
    shutil.rmtree(out / "round_2")
    r1 = (out / "round_1" / "round.json").stat().st_mtime
    m2 = run(compose(over))
    assert (out / "round_1" / "round.json").stat().st_mtime == r1
    assert m2["counts"]["rounds"] == 2 and (out / "round_2" / "round.json").exists()


def test_contrast_check_samples_best_and_worst_bins_on_the_same_inputs(tiny_overrides):
    over = [*tiny_overrides, *QUICK, "quark.rewards=[length,diversity]", "quark.rounds=1", "quark.contrast_inputs=3"]
    cfg = compose(over)
    m = run(cfg)
    c = _rounds(cfg)[0]["contrast"]
    assert c["inputs"] == 3 and set(c["best"]) == set(c["worst"]) == {"length", "diversity"}
    assert 0 < c["best_samples"] <= 6 and 0 < c["worst_samples"] <= 6  # 3 inputs x 2 samples, minus empties
    assert m["metrics"]["rounds"][0]["contrast"] == c
    off = compose([*over, "quark.contrast_inputs=0", f"paths.root={cfg.paths.root}-off"])
    run(off)
    assert _rounds(off)[0]["contrast"] is None


def test_additive_and_canonical_runs_differ_as_claimed(tiny_overrides):
    base = [*tiny_overrides, *QUICK, "quark.rewards=[length,diversity]", "quark.seed_pool_with_gold=false"]
    can = _rounds(run(compose(base)) and compose(base))
    add_cfg = compose([*base, "quark.variant=additive"])
    run(add_cfg)
    add = _rounds(add_cfg)
    assert [r["active_rewards"] for r in can] == [["length", "diversity"]] * 2
    assert [r["active_rewards"] for r in add] == [["length"], ["length", "diversity"]]
    assert add[0]["train_prompt_example"].count("<|quark_") == 1
    assert "<|quark_length_" in add[0]["train_prompt_example"]
    assert can[0]["train_prompt_example"].count("<|quark_") == 2
    assert add[1]["sampling_prefix"] == "<|quark_length_4|>"
    assert can[1]["sampling_prefix"] == "<|quark_length_4|><|quark_diversity_4|>"
    assert add[1]["eval_prefix"] == can[1]["eval_prefix"]
    assert can[0]["gold_reward_means"] == {}
    # token order is configurable independently of the reward order
    ordered = compose([*base, "quark.token_order=[diversity,length]", "quark.rounds=1"])
    run(ordered)
    assert _rounds(ordered)[0]["eval_prefix"] == "<|quark_diversity_4|><|quark_length_4|>"


def test_mario_writing_reports_quark_as_a_row_beside_mpo(tmp_path):
    """experiment=mario_writing: the demo pipeline plus stage=quark, one report with both systems."""
    from tests.test_pipeline import PIPE

    cfg = compose(["experiment=mario_writing", f"paths.root={tmp_path}", *PIPE, "quark.samples_per_input=1",
                   "quark.max_new_tokens=10", "quark.eval_max_new_tokens=10", "quark.train.batch_size=16"])
    assert cfg.stage.name == "pipeline" and cfg.loss.name == "mpo"  # the aligned row is MPO
    m = run(cfg)
    ctx = Context(cfg, Path(cfg.paths.workdir))
    assert set(m["artifacts"]) >= {"align", "quark", "evaluate"}
    report = json.loads((ctx.stage_dir("evaluate") / "report.json").read_text())
    assert [r["system"] for r in report["rows"]] == ["sft", "aligned", "quark"]
    assert all(r["ALL"] is not None for r in report["rows"])
    md = (ctx.stage_dir("evaluate") / "report.md").read_text()
    assert "loss=mpo" in md and "QUARK multi-reward (canonical, 2 rounds, rewards rm, task_metric" in md
    assert len(_rounds(cfg)) == 2
    # the QUARK row was generated by the QUARK policy: its tokenizer carries the control tokens
    from rationalign.quark.control import is_quark_dir

    assert is_quark_dir(ctx.stage_dir("quark"))


# ------------------------------------------------------------------------------------- slow, embedded
# The SFT start must produce the suggestion + "Explanation:" format often enough for the rationale
# rewards to vary: 32 GEC examples, the demo's SFT settings (lr 1e-3, 4 epochs). Sampling at 0.8
# for the reason given in conf/experiment/demo.yaml. 72 optimizer steps per round (one linear schedule
# over 144 steps since issue 19; before, a fresh one per round): with 24 (2 epochs)
# the round-1 policy sampled the same under best-bin and worst-bin prefixes (consistency 0.21 / 0.21,
# task metric 46.1 / 45.6), with 72 it did not (0.387 / 0.289, 67.8 / 46.2). ~15 min on 2 CPU cores.
SLOW = ["stage=quark", "model=smollm2-135m", "task=gec", "data.max_labeled_per_task=32", "data.max_test_per_task=4",
        "sft.train.epochs=4", "sft.train.batch_size=8", "sft.train.lr=1e-3",
        "quark.rounds=2", "quark.samples_per_input=2", "quark.temperature=0.8", "quark.max_new_tokens=64",
        "quark.eval_max_new_tokens=40", "quark.rewards=[consistency,task_metric]", "quark.sample_interval=72",
        "quark.contrast_inputs=8",
        "quark.train.lr=1e-3", "quark.train.batch_size=8", "engine.batch_size=32"]


@pytest.mark.slow
def test_targeted_rewards_rise_from_round_1_to_round_2_on_the_embedded_model(tmp_path):
    """Round 1's samples come from the SFT policy; round 2's from the QUARK policy after one round
    of training, conditioned on the best bins: both targeted rewards' means must go up."""
    cfg = compose([*SLOW, f"paths.root={tmp_path}"])
    run(cfg)
    r1, r2 = _rounds(cfg)
    print("quark slow: round 1", r1["reward_means"], "round 2", r2["reward_means"])
    print("quark slow: contrast round 1", r1["contrast"], "round 2", r2["contrast"])
    print("quark slow: pool", r1["pool_size"], r2["pool_size"], "dropped malformed", r1["dropped_malformed"],
          r2["dropped_malformed"], "merged", r1["duplicates_merged"], r2["duplicates_merged"],
          "schedule steps", r1["train"]["schedule_step"], r2["train"]["schedule_step"])
    assert r2["train"]["schedule_step"] == 144  # one schedule over both rounds
    for name in ("consistency", "task_metric"):
        assert r2["reward_means"][name] > r1["reward_means"][name], (name, r1["reward_means"], r2["reward_means"])
