"""Encoder-decoder (T5-family) backbones: log-probs, RM score, HF engine and the sft / reward / align
stages on model=tiny-t5 (a random 2-layer T5 with ByT5's file-free byte tokenizer)."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from rationalign.losses import LOSSES
from rationalign.models import add_lora, architecture, build_tiny_t5, load_base_model, load_for_training
from rationalign.runner import compose, run
from rationalign.training.chat import Layout, encode_pair
from rationalign.training.logps import collate_completion, full_sequence_logps_reference, is_seq2seq, sequence_logps

T5 = {"source": "tiny", "architecture": "seq2seq", "dtype": "float32"}
PAIRS = [("Fix: he go", "he goes"), ("Simplify this long sentence please", "Short."), ("x", "a b c d e")]
SUBJECTS = ["The cat", "My brother", "The old man", "Our teacher", "A small dog", "The girl", "His friend", "The bird"]
VERBS = ["sat on", "looked at", "walked to", "painted", "cleaned", "found", "liked", "visited"]
OBJECTS = ["the mat", "the house", "a red car", "the garden", "the river", "a new book", "the station", "the park"]
MARKER = " zz qq"


@pytest.fixture(scope="module")
def t5():
    return load_base_model(T5)


def batch_for(tok, pairs=PAIRS, max_length=64):
    feats = [dict(zip(("prompt_ids", "completion_ids"), encode_pair(tok, p, c, max_length, layout=Layout(), seq2seq=True)))
             for p, c in pairs]
    return feats, collate_completion(feats, tok.pad_token_id, seq2seq=True)


# ------------------------------------------------------------------------------------ model + log-probs
def test_tiny_t5_is_seeded_small_and_detected(t5):
    model, tok = t5
    assert is_seq2seq(model) and model.config.is_encoder_decoder and model.config.d_model == 64
    again = build_tiny_t5(tok)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert architecture(T5) == "seq2seq" and architecture({"source": "tiny"}) == "causal"
    with pytest.raises(ValueError, match="model.architecture='encdec'"):
        architecture({"architecture": "encdec"})
    cfg = compose(["model=tiny-t5"]).model
    assert cfg.architecture == "seq2seq" and list(cfg.lora.target_modules) == ["q", "k", "v", "o"]
    xxl = compose(["model=flan-t5-xxl"]).model
    assert xxl.path == "google/flan-t5-xxl" and xxl.dtype == "bfloat16" and xxl.architecture == "seq2seq"


def test_seq2seq_batch_layout(t5):
    _, tok = t5
    feats, batch = batch_for(tok)
    # Encoder: the plain prompt (no chat template, no response header) ending in one </s>.
    assert tok.decode(feats[0]["prompt_ids"]) == "Fix: he go</s>"
    assert all(f["prompt_ids"].count(tok.eos_token_id) == 1 for f in feats)
    # Decoder labels: the completion + </s> only, -100 on padding; the prompt is not in the labels.
    assert batch["labels"].shape[1] == max(len(f["completion_ids"]) for f in feats)
    assert tok.decode(batch["labels"][0][batch["labels"][0] != -100]) == "he goes</s>"
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    # Over-long prompts lose their start and keep the </s>; the encoder has its own max_length budget.
    p, c = encode_pair(tok, "a" * 100 + "END", "ok", 20, layout=Layout(), seq2seq=True)
    assert len(p) == 20 and tok.decode(p) == "a" * 16 + "END</s>" and tok.decode(c) == "ok</s>"


@pytest.mark.parametrize("tied", [False, True])
def test_seq2seq_logps_equal_full_logits(t5, tied):
    _, tok = t5
    model = build_tiny_t5(tok)
    if tied:  # T5 v1.0 layout: tied embeddings, decoder output scaled by d_model**-0.5 before the head
        from transformers import T5Config, T5ForConditionalGeneration

        conf = model.config.to_dict()
        conf.pop("scale_decoder_outputs", None)  # derived from tie_word_embeddings by T5Config
        conf = T5Config(**{**conf, "tie_word_embeddings": True})
        torch.manual_seed(1)
        model = T5ForConditionalGeneration(conf)
        assert model.config.scale_decoder_outputs
    model.eval()
    feats, batch = batch_for(tok)
    fast, n = sequence_logps(model, **batch)
    ref, n_ref = full_sequence_logps_reference(model, **batch)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(n, n_ref) and n.tolist() == [len(f["completion_ids"]) for f in feats]
    # Independent of the batch: each row alone gives the same value (padding is masked).
    for i, f in enumerate(feats):
        alone, _ = sequence_logps(model, **collate_completion([f], tok.pad_token_id, seq2seq=True))
        torch.testing.assert_close(alone[0], fast[i], rtol=1e-5, atol=1e-5)


def test_seq2seq_logps_through_lora(t5):
    _, tok = t5
    peft_model = add_lora(build_tiny_t5(tok), {"lora": {"r": 4, "alpha": 8, "dropout": 0.0}})
    assert peft_model.peft_config["default"].task_type == "SEQ_2_SEQ_LM"
    assert set(peft_model.peft_config["default"].target_modules) == {"q", "k", "v", "o"}  # default mapped for T5
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # make the adapter change the outputs
    peft_model.eval()
    _, batch = batch_for(tok)
    fast, _ = sequence_logps(peft_model, **batch)
    ref, _ = full_sequence_logps_reference(peft_model, **batch)
    base, _ = full_sequence_logps_reference(build_tiny_t5(tok), **batch)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fast, base)  # the adapters are in the fast path


# ------------------------------------------------------------------------------------ reward head
def test_rm_score_is_head_on_decoder_last_state(t5):
    from rationalign.training import reward as R

    _, tok = t5
    model, tok = load_for_training(T5, head="score")
    R.ensure_head_trainable(model)  # classification_head is saved/trained alongside LoRA
    model.eval()
    texts = ["Fix it: the cat sat.", "Fix it: a much longer sentence about the old man and the river."]
    seqs = [R.encode_rm_text(tok, t, 128, layout=Layout(), seq2seq=True) for t in texts]
    assert all(s[-1] == tok.eos_token_id for s in seqs)
    batch = R.collate_rm([{"chosen_ids": seqs[0], "rejected_ids": seqs[1]}], tok.pad_token_id)
    scores = R._last_token_scores(model, batch["input_ids"], batch["attention_mask"])
    inner = model.get_base_model()
    for i, s in enumerate(seqs):  # unpadded, by hand: decoder over the shifted input, state at the final </s>
        ids = torch.tensor([s])
        dec = inner.transformer(input_ids=ids, decoder_input_ids=inner._shift_right(ids)).last_hidden_state
        want = inner.classification_head(dec[:, -1])[0, 0]
        torch.testing.assert_close(scores[i], want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ engine
def test_hf_engine_generates_for_t5(t5):
    from rationalign.engines.hf import HFEngine

    model, tok = t5
    prompts = ["Fix the grammar: he go home.", "x", "Make it formal: gonna be late lol", "hi"]
    eng = HFEngine(model, tok, batch_size=2, progress=False, layout=Layout())
    greedy = eng.generate(prompts, max_new_tokens=12)
    assert greedy == eng.generate(prompts, max_new_tokens=12)  # deterministic
    # a random model may end some answers at once (EOS first): strings, not all empty
    assert all(isinstance(g, str) for g in greedy) and any(greedy)
    # Order preserved and batching invisible: each equals the prompt generated alone, unbatched, with
    # HF generate on the plain encoder text (the output holds no prompt, only the decoder's tokens).
    for p, g in zip(prompts, greedy):
        ids = torch.tensor([tok(p)["input_ids"]])
        alone = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
        assert g == tok.decode(alone[0], skip_special_tokens=True).strip()
    sampled = eng.sample(prompts, n=3, temperature=1.0, top_p=0.9, top_k=50, presence_penalty=1.2,
                         max_new_tokens=8, seed=3)
    assert [len(s) for s in sampled] == [3, 3, 3, 3]
    assert sampled == eng.sample(prompts, n=3, temperature=1.0, top_p=0.9, top_k=50, presence_penalty=1.2,
                                 max_new_tokens=8, seed=3)  # seeded
    assert len({s for row in sampled for s in row}) > 4  # actually sampled, not greedy copies


# ------------------------------------------------------------------------------------ stages
def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def t5_overrides(tiny_overrides):
    return ["model=tiny-t5" if o == "model=tiny" else o for o in tiny_overrides]


def test_reward_stage_on_tiny_t5(tmp_path, tiny_overrides):
    from rationalign.stages.base import Context
    from rationalign.training.reward import RewardScorer

    rng = random.Random(0)
    rows = []
    for i in range(32):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        rows.append({"id": f"p{i}", "task": "gec", "instruction": "Fix the grammar:", "source": s.lower(),
                     "chosen": s, "rejected": s[:-1] + MARKER + ".", "chosen_score": 1.0, "rejected_score": 0.0,
                     "metric": "m2"})
    pairs = write_jsonl(tmp_path / "rm.jsonl", rows)
    cfg = compose(t5_overrides(tiny_overrides) + [
        "stage=reward", f"reward.pairs={pairs}", "reward.train.batch_size=8", "reward.train.lr=3e-3",
        "reward.train.epochs=3", "reward.train.logging_steps=1", "reward.heldout_fraction=0.25",
        # Byte-level ids make the paper's RM template ~240 tokens; a short one keeps the test fast.
        "prompts.rm_template='{source} => {response}'"])
    m = run(cfg)
    assert m["counts"]["pairs"] == 32 and m["metrics"]["steps"] > 0
    assert m["metrics"]["loss_last"] < m["metrics"]["loss_first"], m["metrics"]
    rm_dir = Context(cfg=cfg, workdir=tmp_path / "out" / "default").stage_dir("reward") / "rm"
    meta = json.loads((rm_dir / "reward_model.json").read_text())
    assert meta["model"]["architecture"] == "seq2seq"
    scorer = RewardScorer.load(rm_dir, batch_size=2)
    assert is_seq2seq(scorer.model)
    items = [("gec", "Fix:", "the cat sat.", "The cat sat."), ("gec", "Fix:", "the cat sat.", "The cat" + MARKER + "."),
             ("gec", "Fix:", "a dog ran.", "A dog ran.")]
    scores = scorer.score(items)
    assert len(scores) == 3 and scorer.score(items[::-1]) == pytest.approx(scores[::-1], abs=1e-4)
    assert scores[0] > scores[1]  # trained: the marked suggestion scores lower


def test_sft_then_align_mpo_on_tiny_t5(tmp_path, tiny_overrides):
    from rationalign.stages.base import Context

    rng = random.Random(1)
    rows = []
    for i in range(8):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        bad = s[:-1] + MARKER + "."
        rows.append({"id": f"h{i}", "task": "gec", "instruction": "Fix the grammar:", "source": s.lower(),
                     "chosen": f"{s}\nExplanation: capitalised the first word.",
                     "rejected": f"{bad}\nExplanation: added words.",
                     "chosen_reward": 0.9, "rejected_reward": 0.1 * (i % 3)})
    d_h = write_jsonl(tmp_path / "d_h.jsonl", rows)
    base = t5_overrides(tiny_overrides) + ["sft.train.max_steps=2", f"align.pairs={d_h}", "loss=mpo",
                                           "align.train.batch_size=4", "align.train.max_steps=2",
                                           "align.train.logging_steps=1"]
    # align.init=sft (the default) builds rationalize -> sft on the demo data first.
    cfg = compose(base + ["stage=align"])
    m = run(cfg)
    ctx = Context(cfg=cfg, workdir=tmp_path / "out" / "default")
    sft_manifest = json.loads((ctx.stage_dir("sft") / "manifest.json").read_text())
    assert sft_manifest["metrics"]["steps"] == 2 and sft_manifest["counts"]["records"] == 6
    assert m["upstream"] == {"sft": ctx.key("sft")}
    assert m["counts"]["pairs"] == 8 and m["metrics"]["steps"] == 2 and m["metrics"]["loss"] == "mpo"
    assert m["metrics"]["loss_first"] is not None and math.isfinite(m["metrics"]["loss_first"])
    adapter = json.loads((ctx.stage_dir("align") / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM" and set(adapter["target_modules"]) == {"q", "k", "v", "o"}

    # From the base model (fresh LoRA, no sft upstream).
    cfg_b = compose(base + ["stage=align", "align.init=base"])
    mb = run(cfg_b)
    assert mb["upstream"] == {} and mb["metrics"]["steps"] == 2


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_preference_loss_takes_a_step_on_tiny_t5(name, tmp_path):
    """All losses run on the encoder-decoder path: encoder prompts, decoder targets, finite loss and
    reward statistics, LoRA weights moved."""
    from rationalign.training import preference as P
    from rationalign.training.pairs_io import load_pref_pairs
    from tests.test_preference_trainer import loss_cfg, toy_dh_rows, train_cfg

    torch.manual_seed(0)
    model, tok = load_for_training({**T5, "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q", "v"]}})
    setup = P.setup_for(loss_cfg(name))
    pairs = load_pref_pairs(write_jsonl(tmp_path / "d.jsonl", toy_dh_rows(4)), need_rewards=setup.with_rewards,
                            need_rationale=setup.with_rationale)
    ds = P.encode_preference(pairs, tok, [f"Fix: {p.source}" for p in pairs], 96,
                             with_rationale=setup.with_rationale, with_rewards=setup.with_rewards, seq2seq=True,
                             layout=Layout())
    if setup.needs_reference:
        P.attach_reference(ds, P.compute_reference_logps(model, ds, tok.pad_token_id))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = P.build_preference_trainer(model, tok, ds, setup, train_cfg(max_steps=1, lr=1e-2), tmp_path, seed=0)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 1 and math.isfinite(logs[0]["loss"]) and math.isfinite(logs[0]["rewards/margins"])
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)


def test_stage_quark_two_rounds_on_tiny_t5(tiny_overrides):
    """QUARK on an encoder-decoder: control tokens reach the encoder input, KL/CE come from decoder
    logits, the saved policy reloads with its tokens and the two rounds resume like the causal path."""
    from pathlib import Path

    from rationalign.quark.control import inference_prefix, load_quark_policy
    from rationalign.stages.base import Context

    over = t5_overrides(tiny_overrides) + [
        "stage=quark", "sft.train.max_steps=2", "quark.rewards=[task_metric,length]", "quark.max_new_tokens=16",
        "quark.eval_max_new_tokens=12", "quark.train.batch_size=8", "quark.sample_interval=2"]
    cfg = compose(over)
    m = run(cfg)
    out = Context(cfg, Path(cfg.paths.workdir)).stage_dir("quark")
    rounds = json.loads((out / "quark_rounds.json").read_text())
    assert m["counts"]["rounds"] == 2 and [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        # KL to the frozen reference: 0 at the first step, > 0 once the policy has moved (last step logged)
        assert r["train"]["steps"] == 2 and math.isfinite(r["train"]["ce"]) and r["train"]["kl"] > 0
    assert rounds[1]["sampling_prefix"] == "<|quark_task_metric_4|><|quark_length_4|>"
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM"
    model, tok = load_quark_policy(cfg.model, out)
    assert is_seq2seq(model)
    prefix = inference_prefix(out)
    enc, _ = encode_pair(tok, prefix + "Fix: he go", "He goes.", 64, layout=Layout(), seq2seq=True)
    assert enc[:2] == tok.convert_tokens_to_ids(["<|quark_task_metric_4|>", "<|quark_length_4|>"])
    # the control-token rows were trained: rows of tokens seen in training moved from where they
    # started (the mean embedding of the token's description words in the untouched base model,
    # quark.control.add_control_tokens); two steps need not see every bin, so not every row moves
    from rationalign.quark.control import describe

    emb = model.get_input_embeddings().weight
    base, base_tok = load_base_model(cfg.model)
    base_emb = base.get_input_embeddings().weight
    tokens = [t for t in tok.get_added_vocab() if t.startswith("<|quark_")]
    moved = []
    for token in tokens:
        start = base_emb[base_tok(" " + describe(token), add_special_tokens=False)["input_ids"]].mean(0)
        moved.append(not torch.allclose(emb[tok.convert_tokens_to_ids(token)], start, atol=1e-6))
    assert len(tokens) == 10 and any(moved), dict(zip(tokens, moved))
