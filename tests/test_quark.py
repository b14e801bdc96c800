"""QUARK multi-reward training (stage=quark): rewards alone, quantisation, control tokens, the stage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from rationalign.data.records import Record
from rationalign.quark.quantize import Pool, assign_bins, quantile_edges, rank_bins
from rationalign.quark.rewards import REWARDS, RewardEnv, Sample, build_reward
from rationalign.runner import compose, run
from rationalign.stages.base import Context

GEC = Record(id="r1", task="gec", instruction="Fix the grammar:", source="He go to school yesterday.",
             target="He went to school yesterday.")


def _s(suggestion, rationale, record=GEC):
    return Sample(record, suggestion, rationale)


# ------------------------------------------------------------------------------------------- rewards
def test_registry_ships_the_rewards_and_names_bad_options():
    assert {"rm", "rm_rationale", "task_metric", "consistency", "diversity", "distinct", "length"} <= set(REWARDS.names())
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


VAGUE = "It reads better now."  # 4 words
QUOTING = ('The "go" becomes "went" because yesterday needs the past tense, and "a" becomes "an" '
           'before "apple"; "have" becomes "has".')  # 19 words, 3 edits quoted
LOOP = "the verb is wrong the verb is wrong the verb is wrong the verb is wrong"


def test_diversity_is_marios_product_of_one_minus_repetition_over_2_3_4_grams():
    r = build_reward("diversity", RewardEnv())
    assert len(VAGUE.split()) == 4 and len(QUOTING.split()) == 19
    vague, quoting, loop, empty, one = r.score([_s("x", VAGUE), _s("x", QUOTING), _s("x", LOOP), _s("x", None),
                                                _s("x", "Fine.")])
    # neither non-looping text repeats an n-gram: both 1, whatever their length (the old distinct-1/2
    # gave 1.00 and 0.68 and so preferred the vague one)
    assert vague == 1.0 and quoting == 1.0
    # LOOP: 16 tokens; 4 distinct of 15 bigrams, 4 of 14 trigrams, 4 of 13 4-grams
    assert loop == pytest.approx((4 / 15) * (4 / 14) * (4 / 13)) and loop < 0.05
    assert empty == 0.0  # no rationale: the floor
    assert one == 1.0    # MaRio: an order with no n-grams has repetition 0
    # one repeated bigram out of 5 ("a b a b c d"): (1 - 1/5) * 1 * 1
    assert r.score([_s("x", "a b a b c d")]) == [pytest.approx(0.8)]


def test_distinct_keeps_the_old_distinct_n_reward():
    r = build_reward("distinct", RewardEnv(), {"orders": [1, 2]})
    s = r.score([_s("x", "a b c d"), _s("x", "the the the the"), _s("x", ""), _s("x", "word")])
    assert s[0] == 1.0
    assert s[1] == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert s[2] == 0.0
    assert s[3] == 0.5  # no bigrams: a one-word rationale cannot reach the maximum
    vague, quoting = r.score([_s("x", VAGUE), _s("x", QUOTING)])
    assert vague == 1.0 and quoting < 0.8  # what issue 19 measured: it prefers the vague rationale


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
    # rm_rationale: the same RM on "suggestion \n Explanation: rationale"; no rationale -> the batch minimum
    rr = build_reward("rm_rationale", RewardEnv(rm_dir=tmp_path / "rm"))
    good = "He went to school yesterday."
    s2 = rr.score([_s(good, 'The verb "go" becomes "went".'), _s(good, None), _s(good, "Other words entirely.")])
    with_r = RewardScorer.load(tmp_path / "rm").score(
        [("gec", GEC.instruction, GEC.source, f'{good}\nExplanation: The verb "go" becomes "went".'),
         ("gec", GEC.instruction, GEC.source, f"{good}\nExplanation: Other words entirely.")])
    assert [s2[0], s2[2]] == pytest.approx(with_r) and s2[0] != s2[2]
    assert s2[1] == min(s2[0], s2[2]) and s2[0] != pytest.approx(s[0])  # the rationale changes the score


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


def test_rank_bins_split_the_tied_pool_into_equal_counts_not_all_ties_into_the_top_bin():
    """Issue 19's pool: 60% at 1.0, 15% at 0.5, 25% at 0.0. Value quantiles bin it [25, 15, 0, 0, 60]
    (every 1.0 in the best bin); equal-count ranks give 20 per bin, the 1.0s over the top three."""
    v = [1.0] * 60 + [0.5] * 15 + [0.0] * 25
    old = assign_bins(v, quantile_edges(v, 5))
    assert [old.count(b) for b in range(5)] == [25, 15, 0, 0, 60]
    bins = rank_bins(v, 5, keys=[f"k{i}" for i in range(100)], seed=0)
    assert [bins.count(b) for b in range(5)] == [20] * 5
    assert {b for b, x in zip(bins, v) if x == 1.0} == {2, 3, 4}
    assert all(bins[i] == 1 for i in range(60, 75))  # 0.5: ranks 60-74, all in bin 1
    assert sorted(b for b, x in zip(bins, v) if x == 0.0) == [0] * 20 + [1] * 5
    # higher value never in a lower bin than a smaller value
    assert all(a >= b for x, a in zip(v, bins) for y, b in zip(v, bins) if x > y)
    # the tie order is a seeded hash of the keys: reproducible, independent of pool position, seed-dependent
    assert rank_bins(v, 5, keys=[f"k{i}" for i in range(100)], seed=0) == bins
    perm = list(range(100))[::-1]
    rev = rank_bins([v[i] for i in perm], 5, keys=[f"k{i}" for i in perm], seed=0)
    assert [rev[perm.index(i)] for i in range(100)] == bins
    assert rank_bins(v, 5, keys=[f"k{i}" for i in range(100)], seed=1) != bins


def test_rank_bins_on_distinct_values_and_small_pools():
    assert rank_bins(list(range(10)), 5) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert rank_bins([3.0, 1.0, 2.0], 5) == [4, 1, 3]  # fewer items than bins: the best bin is filled first
    assert rank_bins(list(range(7)), 5).count(4) >= 1 and rank_bins([], 5) == []
    with pytest.raises(ValueError, match="keys"):
        rank_bins([1.0, 2.0], 5, keys=["a"])


def test_binary_rewards_get_binary_bins_under_either_method():
    pool = Pool([{"rewards": {"em": float(i % 3 == 0), "v": float(i)}} for i in range(9)])
    for method in ("rank", "quantile"):
        bins, info = pool.quantize(["em", "v"], 5, method=method)
        assert [b["em"] for b in bins] == [4, 0, 0, 4, 0, 0, 4, 0, 0]
        assert info["em"]["method"] == "binary" and info["em"]["counts"] == [6, 0, 0, 0, 3]
        assert info["v"]["method"] == method
    _, info = pool.quantize(["v"], 5, method="rank")
    assert sum(info["v"]["counts"]) == 9 and info["v"]["lowest"][4] == 7.0
    with pytest.raises(ValueError, match="rank or quantile"):
        pool.quantize(["v"], 5, method="values")


def test_pool_dedup_merges_repeated_prompt_completion_pairs():
    def row(m, c, v=1.0):
        return {"user_message": m, "completion": c, "rewards": {"a": v}}

    pool = Pool(dedup=True)
    assert pool.add([row("x", "A"), row("x", "B"), row("y", "A")]) == 0  # same completion, other prompt: kept
    assert pool.add([row("x", "A"), row("x", "A"), row("y", "C")]) == 2
    assert len(pool) == 4 and pool.rows[0]["copies"] == 3
    kept = Pool(dedup=False)
    assert kept.add([row("x", "A"), row("x", "A")]) == 0 and len(kept) == 2


def test_growing_pool_requantises_old_items():
    pool = Pool([{"rewards": {"a": float(x), "b": float(-x)}} for x in range(10)])
    for method in ("rank", "quantile"):
        bins, info = pool.quantize(["a", "b"], 5, method=method)
        assert bins[9] == {"a": 4, "b": 0} and info["a"]["counts"] == [2] * 5
    pool.add([{"rewards": {"a": float(x), "b": 0.0}} for x in range(10, 20)])
    for method in ("rank", "quantile"):
        bins2, info2 = pool.quantize(["a"], 5, method=method)
        assert len(pool) == 20 and set(bins2[0]) == {"a"}
        assert bins2[9]["a"] == 2  # best in round 1, average once better samples joined
        assert info2["a"]["lowest"][4] == 16.0


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
    from rationalign.stages.quark_policy import save_policy
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


def test_control_token_rows_get_their_own_learning_rate_on_the_one_schedule():
    from peft import LoraConfig, get_peft_model

    from rationalign.models import load_base_model
    from rationalign.quark.control import add_control_tokens, all_control_tokens
    from rationalign.quark.schedule import build_optimizer

    model, tok = load_base_model(compose(["model=tiny"]).model)
    ids = add_control_tokens(model, tok, all_control_tokens(["length"], 2))
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj"], task_type="CAUSAL_LM",
                                             trainable_token_indices=ids))
    q = compose(["quark.token_lr=1e-2", "quark.train.lr=1e-4", "quark.train.weight_decay=0.1",
                 "quark.rounds=2", "quark.sample_interval=5", "quark.warmup_steps=2"]).quark
    opt, sched = build_optimizer(model, q)
    rows, rest = opt.param_groups
    assert rows["weight_decay"] == 0.0 and rest["weight_decay"] == 0.1
    assert sum(p.numel() for p in rows["params"]) == 2 * model.get_input_embeddings().weight.shape[1]
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == n_trainable
    # linear warmup over 2 steps, then linear decay to 0 at total_steps = 10, both groups scaled alike
    lrs = []
    for _ in range(10):
        lrs.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
        opt.step()
        sched.step()
    assert lrs[0] == (0.0, 0.0) and lrs[2] == pytest.approx((1e-2, 1e-4))
    assert lrs[6] == pytest.approx((1e-2 * 4 / 8, 1e-4 * 4 / 8)) and opt.param_groups[1]["lr"] == 0.0


def test_cli_prints_marios_run_for_quark_schedule_mario(tmp_path):
    """What issue 19's done-when runs: the console entrypoint turns quark.schedule=mario into the preset."""
    import subprocess
    import sys

    import yaml

    proc = subprocess.run([sys.executable, "-m", "rationalign", "--cfg", "job", "experiment=mario_writing",
                           "quark.schedule=mario", f"paths.root={tmp_path}"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    q = yaml.safe_load(proc.stdout)["quark"]
    assert (q["kl_coef"], q["entropy_coef"], q["top_p"], q["rounds"], q["sample_interval"], q["total_steps"]) == \
        (0.1, 0.0, 0.7, 13, 4000, 50000)


def test_schedule_presets_by_name_and_round_steps():
    from rationalign.quark.schedule import group_overrides, round_steps

    mario = compose(["experiment=mario_writing", "quark.schedule=mario"]).quark
    assert (mario.schedule, mario.kl_coef, mario.entropy_coef, mario.top_p) == ("mario", 0.1, 0.0, 0.7)
    assert mario.rounds == 13 and mario.n_bins == 5 and mario.binning == "rank" and mario.train.lr == 3e-5
    assert round_steps(mario) == [4000] * 12 + [2000] and sum(round_steps(mario)) == 50000
    quark = compose(["experiment=mario_writing"]).quark
    assert (quark.schedule, quark.kl_coef, quark.entropy_coef, quark.rounds) == ("quark", 0.05, 0.06, 2)
    assert compose(["quark/schedule=mario"]).quark.kl_coef == 0.1  # the group spelling works too
    assert compose(["quark.schedule=mario", "quark.kl_coef=0.2"]).quark.kl_coef == 0.2
    assert group_overrides(["quark.schedule=mario", "quark.rounds=3"]) == ["quark/schedule=mario", "quark.rounds=3"]
    with pytest.raises(ValueError, match="13 rounds, but quark.rounds=2"):
        round_steps(compose(["quark.schedule=mario", "quark.rounds=2"]).quark)
    with pytest.raises(ValueError, match="warmup_steps"):
        round_steps(compose(["quark.warmup_steps=72"]).quark)


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
    with pytest.raises(ValueError, match=r"quark.train.max_steps=5: .*quark.sample_interval"):
        check_params(compose(["quark.train.max_steps=5"]).quark)
    with pytest.raises(ValueError, match="rank or quantile"):
        check_params(compose(["quark.binning=values"]).quark)


# ------------------------------------------------------------------------------------------ stage
QUICK = ["stage=quark", "quark.max_new_tokens=16", "quark.eval_max_new_tokens=12", "quark.train.batch_size=8",
         "quark.sample_interval=3"]


def _rounds(cfg) -> list[dict]:
    return json.loads((Context(cfg, Path(cfg.paths.workdir)).stage_dir("quark") / "quark_rounds.json").read_text())


def test_stage_quark_runs_two_rounds_reports_and_resumes(tiny_overrides):
    from rationalign.quark.control import inference_prefix, load_quark_policy

    # the random tiny model's answers never parse: keep them, so the pool holds policy samples
    over = [*tiny_overrides, *QUICK, "quark.rewards=[task_metric,consistency,diversity,length]", "quark.log_samples=2",
            "quark.drop_malformed=false"]
    cfg = compose(over)
    m = run(cfg)
    out = Context(cfg, Path(cfg.paths.workdir)).stage_dir("quark")
    rounds = _rounds(cfg)
    assert m["counts"]["rounds"] == 2 and [r["round"] for r in rounds] == [1, 2]
    # pool: 6 gold rows + 6 inputs x 2 samples in round 1, + 12 in round 2, minus empties and duplicates
    r1, r2 = rounds
    assert r1["dropped_malformed"] == r2["dropped_malformed"] == 0
    assert r1["pool_size"] == r1["pool_added"] == 6 + 12 - r1["empty_outputs"] - r1["duplicates_merged"]
    assert r2["pool_size"] == r1["pool_size"] + 12 - r2["empty_outputs"] - r2["duplicates_merged"]
    assert m["counts"]["duplicates_merged"] == r1["duplicates_merged"] + r2["duplicates_merged"]
    # one optimiser and one schedule: 3 + 3 steps of a linear decay over 6, not two fresh decays
    assert [r["train"]["schedule_step"] for r in rounds] == [3, 6]
    assert r1["train"]["lr_after"][0] == pytest.approx(1e-3 * 3 / 6) and r2["train"]["lr_after"][0] == 0.0
    assert r1["schedule"] == {"name": "quark", "round_steps": 3, "total_steps": 6, "warmup_steps": 0}
    assert (out / "round_1" / "optimizer.pt").exists()
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
    r1_time = (out / "round_1" / "round.json").stat().st_mtime
    m2 = run(compose(over))
    assert (out / "round_1" / "round.json").stat().st_mtime == r1_time
    assert m2["counts"]["rounds"] == 2 and (out / "round_2" / "round.json").exists()
    # the resumed round 2 continued round 1's optimizer and schedule (a fresh one would end at step 3)
    resumed = _rounds(compose(over))[1]
    assert resumed["train"]["schedule_step"] == 6 and resumed["train"]["lr_after"] == r2["train"]["lr_after"]
    assert resumed["pool_size"] == r2["pool_size"]


def test_contrast_check_samples_best_and_worst_bins_on_the_same_inputs(tiny_overrides):
    over = [*tiny_overrides, *QUICK, "quark.rewards=[length,diversity]", "quark.rounds=1", "quark.contrast_inputs=3"]
    cfg = compose(over)
    m = run(cfg)
    c = _rounds(cfg)[0]["contrast"]
    assert c["inputs"] == 3 and set(c["best"]) == set(c["worst"]) == {"length", "diversity"}
    assert 0 < c["best_samples"] <= 6 and 0 < c["worst_samples"] <= 6  # 3 inputs x 2 samples, minus empties
    # pool hygiene by default: the unparsable answers of the random model are dropped and counted
    r = _rounds(cfg)[0]
    assert r["malformed"] > 0 and r["dropped_malformed"] == r["malformed"]
    assert r["pool_size"] == 6 + r["new_samples"] - r["malformed"] - r["duplicates_merged"]
    assert m["counts"]["dropped_malformed"] == r["dropped_malformed"]
    assert m["metrics"]["rounds"][0]["contrast"] == c
    off = compose([*over, "quark.contrast_inputs=0", f"paths.root={cfg.paths.root}-off"])
    run(off)
    assert _rounds(off)[0]["contrast"] is None


def test_additive_and_canonical_runs_differ_as_claimed(tiny_overrides):
    base = [*tiny_overrides, *QUICK, "quark.rewards=[length,diversity]", "quark.seed_pool_with_gold=false"]
    with pytest.raises(ValueError, match=r"round 1: the pool is empty \(12 samples: 0 empty, 12 malformed"):
        run(compose([*base, "quark.rounds=1"]))  # the random model never parses: nothing left to train on
    base.append("quark.drop_malformed=false")
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
