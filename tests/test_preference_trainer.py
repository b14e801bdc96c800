"""Preference trainer: every loss, one forward per step, cached reference, resume, grad accumulation,
D_H validation and stage=align."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerCallback

from rationalign.losses import LOSSES
from rationalign.models import load_for_training
from rationalign.runner import compose, run
from rationalign.training import preference as P
from rationalign.training.chat import Layout
from rationalign.training.pairs_io import PairsError, load_pref_pairs

SUBJECTS = ["The cat", "My brother", "The old man", "Our teacher", "A small dog", "The girl", "His friend", "The bird"]
VERBS = ["sat on", "looked at", "walked to", "painted", "cleaned", "found", "liked", "visited"]
OBJECTS = ["the mat", "the house", "a red car", "the garden", "the river", "a new book", "the station", "the park"]
MARKER = " zz qq"


def toy_dh_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        bad = s[:-1] + MARKER + "."
        rows.append({"id": f"h{i}", "task": "gec", "instruction": "Fix the grammar:", "source": s.lower(),
                     "chosen": f"{s}\nExplanation: capitalised the first word.",
                     "rejected": f"{bad}\nExplanation: added words.",
                     "chosen_reward": 0.9, "rejected_reward": 0.1 * (i % 3),
                     "chosen_suggestion": s, "rejected_suggestion": bad,
                     "rationale": "Response A fixes the capital letter without adding words."})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_cfg(**kw):
    base = {"epochs": 1.0, "max_steps": -1, "lr": 1e-3, "batch_size": 4, "grad_accum": 1, "warmup_ratio": 0.0, "weight_decay": 0.0,
                "bf16": False, "logging_steps": 1, "save_steps": 0, "group_by_length": False, "gradient_checkpointing": False}
    base.update(kw)
    return SimpleNamespace(**base)


def loss_cfg(name: str):
    cfg = compose([f"loss={name}"])
    return cfg.loss


TINY = {"source": "tiny", "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("dh") / "d_h.jsonl", toy_dh_rows(16))


def dataset(tok, path, name, n=None):
    setup = P.setup_for(loss_cfg(name))
    pairs = load_pref_pairs(path, need_rewards=setup.with_rewards, need_rationale=setup.with_rationale)[:n]
    msgs = [f"Fix the grammar:\n\nText: {p.source}" for p in pairs]
    ds = P.encode_preference(pairs, tok, msgs, 128, with_rationale=setup.with_rationale,
                             with_rewards=setup.with_rewards, layout=Layout())
    return setup, ds


# ------------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("shared_prompt", [True, False])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_trains_with_one_forward_per_step(name, shared_prompt, pairs_file, tmp_path, monkeypatch):
    from rationalign.training import shared_prompt as SP

    torch.manual_seed(0)
    model, tok = load_for_training(TINY)
    setup, ds = dataset(tok, pairs_file, name, n=8)
    if setup.needs_reference:
        P.attach_reference(ds, P.compute_reference_logps(model, ds, tok.pad_token_id))
    calls = []
    real, real_packed = P.sequence_logps, SP.packed_sequence_logps
    monkeypatch.setattr(P, "sequence_logps", lambda m, ids, *a: calls.append(ids.shape[0]) or real(m, ids, *a))
    monkeypatch.setattr(SP, "packed_sequence_logps",
                        lambda m, b, **kw: calls.append(b["packed_ids"].shape[0]) or real_packed(m, b, **kw))
    trainer = P.build_preference_trainer(model, tok, ds, setup, train_cfg(max_steps=1), tmp_path, seed=0,
                                         shared_prompt=shared_prompt)
    trainer.train()
    # unpacked: chosen + rejected (+ rationale) rows stacked in one batch; packed: one row per pair
    # (+ one per rationale)
    per_pair = (1 if shared_prompt else 2) + (1 if setup.with_rationale else 0)
    assert calls == [per_pair * 4]
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 1 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                "logps/rejected", "tokens_per_second"):
        assert key in logs[0], (name, key)
    assert logs[0]["tokens_per_second"] > 0


def test_hparams_come_from_loss_config():
    assert P.setup_for(loss_cfg("dpo")).hparams == {"beta": 0.1}
    assert P.setup_for(loss_cfg("mpo")).hparams == {"beta": 0.01, "gamma": 1.0, "lam": 0.8, "ce_reduction": "mean",
                                                    "margin_scale": "inside"}
    assert P.setup_for(compose(["loss=simpo", "loss.gamma=0.9"]).loss).hparams["gamma"] == 0.9
    assert P.setup_for({"name": "orpo", "lam": 0.3}).hparams == {"lam": 0.3, "ce_reduction": "mean"}  # defaults fill


def test_setup_reads_the_needs_from_the_registry_entry():
    for name in LOSSES:
        setup, entry = P.setup_for(loss_cfg(name)), LOSSES.entry(name)
        assert (setup.needs_reference, setup.with_rationale, setup.with_rewards) == \
            (entry.needs_reference, entry.needs_rationale, entry.needs_rewards), name
    assert [n for n in LOSSES if P.setup_for(loss_cfg(n)).needs_reference] == ["dpo", "rdpo"]
    assert [n for n in LOSSES if P.setup_for(loss_cfg(n)).with_rationale] == ["rdpo", "rorpo"]
    assert [n for n in LOSSES if P.setup_for(loss_cfg(n)).with_rewards] == ["mpo"]


def test_setup_refuses_a_key_the_loss_does_not_take():
    with pytest.raises(ValueError, match=r"loss.lam: unknown key \(known: beta\)"):
        P.setup_for({"name": "dpo", "beta": 0.1, "lam": 0.8})
    with pytest.raises(ValueError, match="not a preference loss; known: cpo, dpo"):
        P.setup_for({"name": "sft"})


def test_mpo_loss_falls_on_learnable_pairs(tmp_path):
    # Full fine-tuning: LoRA on the tiny model's attention alone barely moves a 49k-way output layer.
    torch.manual_seed(0)
    model, tok = load_for_training({"source": "tiny", "lora": {"enabled": False}})
    setup, ds = dataset(tok, write_jsonl(tmp_path / "d.jsonl", toy_dh_rows(16)), "mpo")
    trainer = P.build_preference_trainer(model, tok, ds, setup, train_cfg(epochs=3, lr=6e-3, batch_size=8),
                                         tmp_path, seed=0)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    trace = [(round(h["loss"], 3), round(h["rewards/margins"], 4), round(h["margin_loss"], 4)) for h in logs]
    assert logs[-1]["loss"] < logs[0]["loss"] - 1.0, trace
    # the preference part learns too, not only the NLL term
    assert logs[-1]["rewards/margins"] > logs[0]["rewards/margins"] and logs[-1]["margin_loss"] < logs[0]["margin_loss"], trace


# ------------------------------------------------------------------------------------ reference
def test_reference_logps_cached_and_equal_to_live(pairs_file, tmp_path, monkeypatch):
    model, tok = load_for_training(TINY)
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.3)  # an "SFT" adapter that changes the model
    _, ds = dataset(tok, pairs_file, "dpo")
    calls = []
    real = P._reference_forward
    monkeypatch.setattr(P, "_reference_forward", lambda m, b: calls.append(1) or real(m, b))
    kw = {"cache_dir": tmp_path / "refcache", "model_identity": {"m": "tiny", "init": "x"}, "max_length": 128,
              "batch_size": 5}
    first = P.reference_logps(model, ds, tok.pad_token_id, **kw)
    n_first = len(calls)
    assert n_first == 4 and len(list((tmp_path / "refcache").glob("*.pt"))) == 1  # ceil(16 / 5) batches
    again = P.reference_logps(model, ds, tok.pad_token_id, **kw)
    assert len(calls) == n_first and torch.equal(first, again)  # second run: no reference forward at all
    # Any change to identity or data misses the cache.
    P.reference_logps(model, ds, tok.pad_token_id, **{**kw, "model_identity": {"m": "tiny", "init": "y"}})
    assert len(calls) == n_first + 4

    # Equal to live per-pair log-probs of the initial policy (eval mode), and "base" = adapters off.
    model.eval()
    with torch.no_grad():
        for i in (0, 7, 15):
            b = P.collate_preference([ds[i]], tok.pad_token_id)
            live = P.sequence_logps(model, b["input_ids"], b["attention_mask"], b["labels"])[0]
            torch.testing.assert_close(first[i], live, rtol=1e-4, atol=1e-4)
    base = P.compute_reference_logps(model, ds, tok.pad_token_id, mode="base")
    assert not torch.allclose(base, first)
    with model.disable_adapter(), torch.no_grad():
        b = P.collate_preference([ds[3]], tok.pad_token_id)
        torch.testing.assert_close(base[3], P.sequence_logps(model, b["input_ids"], b["attention_mask"],
                                                             b["labels"])[0], rtol=1e-4, atol=1e-4)


def test_reference_free_losses_compute_no_reference(pairs_file, tmp_path, monkeypatch):
    monkeypatch.setattr(P, "_reference_forward", lambda *a: pytest.fail("reference forward for a ref-free loss"))
    model, tok = load_for_training(TINY)
    pairs = load_pref_pairs(pairs_file)[:4]
    stats = P.train_preference(model, tok, pairs, [p.source for p in pairs], loss_cfg("simpo"), train_cfg(max_steps=1),
                               tmp_path, max_length=96, seed=0, reference_cache=tmp_path / "rc", layout=Layout())
    assert stats["steps"] == 1 and not (tmp_path / "rc").exists()


# ------------------------------------------------------------------------------------ resume / GA
class _Crash(Exception):
    pass


class CrashAfterSave(TrainerCallback):
    """Simulates a killed job: raises right after checkpoint-<step> is written."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kw):
        if state.global_step == self.step:
            raise _Crash()


def _run(tok_model, ds, setup, out, cfg, callbacks=None):
    model, tok = tok_model
    trainer = P.build_preference_trainer(model, tok, ds, setup, cfg, out, seed=0, callbacks=callbacks)
    from rationalign.training.trainer import fit

    return trainer, fit(trainer, out)


def test_resume_reproduces_uninterrupted_run(pairs_file, tmp_path):
    cfg = train_cfg(max_steps=4, save_steps=2, batch_size=4, lr=2e-3)

    def fresh():
        torch.manual_seed(0)
        model, tok = load_for_training(TINY)
        setup, ds = dataset(tok, pairs_file, "mpo")
        return (model, tok), ds, setup

    mt, ds, setup = fresh()
    full, _ = _run(mt, ds, setup, tmp_path / "full", cfg)
    full_losses = dict(full.loss_history)

    mt, ds, setup = fresh()
    with pytest.raises(_Crash):
        _run(mt, ds, setup, tmp_path / "resumed", cfg, callbacks=[CrashAfterSave(2)])
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").is_dir()
    mt, ds, setup = fresh()  # a new process: fresh model, resumes from checkpoint-2
    resumed, stats = _run(mt, ds, setup, tmp_path / "resumed", cfg)
    got = dict(resumed.loss_history)
    assert sorted(got) == [3, 4] and stats["steps"] == 4
    for step in (3, 4):
        assert got[step] == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6), (step, got, full_losses)
    assert full_losses[3] != full_losses[1]  # the comparison is not trivially constant


def test_resume_mid_epoch_with_length_grouping_reproduces_uninterrupted_run(pairs_file, tmp_path):
    """group_by_length (the default) and a resume inside the second epoch: the rest of that epoch
    must see the same batches as the uninterrupted run (a requeued SLURM job, make slurm-check c)."""
    cfg = train_cfg(epochs=2, save_steps=5, batch_size=4, lr=2e-3, group_by_length=True)  # 4 steps per epoch

    def fresh():
        torch.manual_seed(0)
        model, tok = load_for_training(TINY)
        setup, ds = dataset(tok, pairs_file, "mpo")
        return (model, tok), ds, setup

    mt, ds, setup = fresh()
    full, _ = _run(mt, ds, setup, tmp_path / "full", cfg)
    full_losses = dict(full.loss_history)
    mt, ds, setup = fresh()
    with pytest.raises(_Crash):
        _run(mt, ds, setup, tmp_path / "resumed", cfg, callbacks=[CrashAfterSave(5)])
    mt, ds, setup = fresh()
    resumed, stats = _run(mt, ds, setup, tmp_path / "resumed", cfg)
    got = dict(resumed.loss_history)
    assert sorted(got) == [6, 7, 8] and stats["steps"] == 8
    for step in (6, 7, 8):
        assert got[step] == pytest.approx(full_losses[step], rel=1e-5, abs=1e-6), (step, got, full_losses)


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    """A job killed while the Trainer saved checkpoint-6 (no trainer_state.json yet, or half of it)
    resumes from the last complete one."""
    from rationalign.training.trainer import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step, state in ((2, "{}"), (4, "{}"), (6, None), (8, '{"global_st')):
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        for name in ("adapter_model.safetensors", "optimizer.pt", "rng_state.pth"):  # the rest of a checkpoint
            (d / name).write_bytes(b"")
        if state is not None:
            (d / "trainer_state.json").write_text(state)
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoints" / "checkpoint-4")


def test_grad_accumulation_matches_full_batch(pairs_file, tmp_path):
    grads = {}

    class Grab(TrainerCallback):
        def __init__(self, key, model):
            self.key, self.model = key, model

        def on_pre_optimizer_step(self, args, state, control, **kw):
            grads[self.key] = {n: p.grad.detach().clone() for n, p in self.model.named_parameters()
                               if p.requires_grad and p.grad is not None}

    for key, bs, ga in (("2x4", 4, 2), ("1x8", 8, 1)):
        torch.manual_seed(0)
        model, tok = load_for_training({**TINY, "lora": {**TINY["lora"], "dropout": 0.0}})
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)  # non-zero B so lora_A gets gradients too
        setup, ds = dataset(tok, pairs_file, "mpo", n=8)
        trainer = P.build_preference_trainer(model, tok, ds, setup, train_cfg(max_steps=1, batch_size=bs, grad_accum=ga),
                                             tmp_path / key, seed=0, callbacks=[Grab(key, model)])
        trainer.args.max_grad_norm = 0.0  # clipping would hide a scale error
        trainer.train()
    a, b = grads["2x4"], grads["1x8"]
    assert a.keys() == b.keys() and len(a) > 0
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=1e-4, atol=1e-6, msg=n)
    assert any(a[n].abs().max() > 1e-4 for n in a)


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("mutate,kw,needle", [
    (lambda r: r.pop("chosen_reward"), {"need_rewards": True}, ":3: field 'chosen_reward' is missing"),
    (lambda r: r.pop("rationale"), {"need_rationale": True}, ":3: field 'rationale' is missing"),
    (lambda r: r.update(chosen_reward=float("nan")), {}, ":3: field 'chosen_reward' must be a finite number"),
    (lambda r: r.pop("source"), {}, ":3: field 'source' is missing"),
])
def test_dh_errors_name_file_line_field(tmp_path, mutate, kw, needle):
    rows = toy_dh_rows(4)
    mutate(rows[2])
    path = write_jsonl(tmp_path / "d_h.jsonl", rows)
    with pytest.raises(PairsError) as e:
        load_pref_pairs(path, **kw)
    assert str(path) + needle in str(e.value)


def test_user_layout_pairs(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"prompt": "Fix: he go", "chosen": "He goes.", "rejected": "He go."},
                                              {"prompt": "Fix: i am", "chosen": "I am.", "rejected": "i am",
                                               "chosen_reward": 1, "rejected_reward": 0}])
    pairs = load_pref_pairs(path)
    assert [p.prompt for p in pairs] == ["Fix: he go", "Fix: i am"] and pairs[1].chosen_reward == 1.0
    with pytest.raises(PairsError, match=":1: field 'chosen_reward' is missing"):
        load_pref_pairs(path, need_rewards=True)


# ------------------------------------------------------------------------------------ stage
def align_overrides(tmp_path, pairs, *extra):
    return ["model=tiny", f"paths.root={tmp_path / 'out'}", "stage=align", f"align.pairs={pairs}",
            "align.train.batch_size=4", "align.train.max_steps=2", "align.train.logging_steps=1", *extra]


def test_align_stage_from_base_with_pairs_file(pairs_file, tmp_path):
    cfg = compose(align_overrides(tmp_path, pairs_file, "align.init=base", "loss=mpo"))
    from rationalign.components import import_components
    from rationalign.stages.base import STAGES, Context

    import_components()
    assert STAGES.get("align").upstream_of(cfg) == ()
    manifest = run(cfg)
    assert manifest["counts"]["pairs"] == 16 and manifest["metrics"]["steps"] == 2
    assert manifest["metrics"]["loss"] == "mpo" and manifest["metrics"]["loss_first"] is not None
    out = Context(cfg=cfg, workdir=tmp_path / "out" / "default").stage_dir("align")
    assert (out / "adapter" / "adapter_config.json").exists()


def test_align_stage_dpo_from_sft(pairs_file, tmp_path, monkeypatch):
    calls = []
    real = P._reference_forward
    monkeypatch.setattr(P, "_reference_forward", lambda m, b: calls.append(1) or real(m, b))
    ov = align_overrides(tmp_path, pairs_file, "loss=dpo", "sft.train.max_steps=2", "sft.use_rationale=false",
                         "data.max_labeled_per_task=8", f"paths.cache={tmp_path / 'cache'}")
    # tiny's tokenizer lives in the shared conversion cache; only the reference cache moves to tmp.
    import os

    from rationalign.models import default_cache_dir

    (tmp_path / "cache").mkdir()
    os.symlink(default_cache_dir() / "models", tmp_path / "cache" / "models")
    cfg = compose(ov)
    from rationalign.components import import_components
    from rationalign.stages.base import STAGES

    import_components()
    assert STAGES.get("align").upstream_of(cfg) == ("sft",)
    manifest = run(cfg)
    assert manifest["metrics"]["steps"] == 2 and len(calls) > 0
    assert list((tmp_path / "cache" / "reference_logps").glob("*.pt"))
    n = len(calls)
    run(compose(ov + ["loss.beta=0.2"]))  # a beta sweep point: new align dir, same reference cache
    assert len(calls) == n


def test_align_stage_rdpo_requires_rationale(tmp_path):
    rows = toy_dh_rows(4)
    rows[1].pop("rationale")
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(PairsError, match=r"d.jsonl:2: field 'rationale' is missing"):
        run(compose(align_overrides(tmp_path, path, "align.init=base", "loss=rdpo")))


@pytest.mark.slow
def test_embedded_mpo_loss_falls(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", toy_dh_rows(32))
    cfg = compose(["model=smollm2-135m", f"paths.root={tmp_path / 'out'}", "stage=align", f"align.pairs={path}",
                   "align.init=base", "loss=mpo", "align.train.batch_size=8", "align.train.epochs=2",
                   "align.train.lr=1e-3", "align.train.logging_steps=1", "model.max_length=128"])
    m = run(cfg)["metrics"]
    assert m["loss_last"] < m["loss_first"] - 0.2, m
