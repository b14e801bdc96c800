"""Shared-prompt preference batches (training.shared_prompt) against the unpacked batch.

Each pair packed as prompt + chosen + rejected under a block mask must give the unpacked rows'
sequence log-probs and the same gradients, for every preference loss (with rationale rows for
rdpo/rorpo), to float tolerance; and the trainer must pick the packed path for decoder-only models.
"""

from __future__ import annotations

import pytest
import torch

from rationalign.losses import LOSSES
from rationalign.models import add_lora, load_base_model
from rationalign.training.logps import sequence_logps
from rationalign.training.preference import collate_preference, make_loss_fn
from rationalign.training.shared_prompt import pack_preference, packed_sequence_logps


def _features(with_rationale=False, seed=0):
    g = torch.Generator().manual_seed(seed)

    def ids(n):
        return torch.randint(10, 2000, (n,), generator=g).tolist()

    feats = []
    for p_len, w, l in [(12, 5, 9), (7, 11, 3), (20, 1, 6)]:
        prompt = ids(p_len)
        f = {"c_prompt": prompt, "c_ids": ids(w), "r_prompt": list(prompt), "r_ids": ids(l),
             "rewards": (0.9, 0.2), "ref": (-20.0, -25.0)}
        if with_rationale:
            f["x_prompt"], f["x_ids"] = ids(p_len + 4), ids(4)
        feats.append(f)
    return feats


def assert_equal_sums(a: torch.Tensor, b: torch.Tensor, n_terms: int) -> None:
    """a == b up to the rounding of a sum of n_terms in their dtype: two orders of accumulating the same
    terms differ by at most n_terms * eps * (sum of |terms|), bounded here by the larger |value| (float64:
    eps 2.2e-16, so even 10^6 terms leave a 2e-10 relative margin that no real bug fits in; float32's
    1.2e-7 would leave none, which is why these comparisons run in float64)."""
    assert a.dtype == b.dtype == torch.float64 and a.shape == b.shape
    scale = max(float(a.abs().max()), float(b.abs().max()), torch.finfo(a.dtype).tiny)
    tol = n_terms * torch.finfo(a.dtype).eps * scale
    assert float((a - b).abs().max()) <= tol, (float((a - b).abs().max()), tol)


def summed_terms(model, feats) -> int:
    """Terms one value accumulates: each LM-head row sums over the vocabulary, each LoRA gradient over
    every packed or unpacked token."""
    return model.config.vocab_size * unpacked_backbone_tokens(feats)


@pytest.fixture(scope="module")
def lora_model():
    model, _tok = load_base_model({"source": "tiny"})
    torch.manual_seed(0)
    m = add_lora(model, {"lora": {"r": 4, "alpha": 8, "dropout": 0.0}})
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.2)  # an adapter that changes the outputs, so its gradients mean something
    m.eval()
    return m


def _rms_norm_in_input_dtype(self, x):
    """LlamaRMSNorm without its cast to float32 (which would round a float64 model to float32 precision
    at every layer, so two sums that differ by float64 rounding could come out 1e-7 apart)."""
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


@pytest.fixture(scope="module")
def lora_model64(lora_model):
    """The same adapter in float64 all through: equivalence checks compare in float64 (assert_equal_sums)."""
    import copy
    import types

    m = copy.deepcopy(lora_model).double()
    norms = [mod for mod in m.modules() if type(mod).__name__.endswith("RMSNorm")]
    assert norms and m.config._attn_implementation == "sdpa"  # eager attention would softmax in float32
    for mod in norms:
        mod.forward = types.MethodType(_rms_norm_in_input_dtype, mod)
    return m


@pytest.mark.parametrize("with_rationale", [False, True])
def test_packed_logps_equal_unpacked(lora_model64, with_rationale):
    feats = _features(with_rationale)
    flat = collate_preference(feats, pad_id=0)
    want, want_len = sequence_logps(lora_model64, flat["input_ids"], flat["attention_mask"], flat["labels"])
    got, got_len = packed_sequence_logps(lora_model64, pack_preference(feats, pad_id=0))
    assert torch.equal(got_len, want_len)
    assert_equal_sums(got, want, summed_terms(lora_model64, feats))
    assert packed_backbone_tokens(feats) < unpacked_backbone_tokens(feats)


def packed_backbone_tokens(feats):
    return int(pack_preference(feats, 0)["packed_ids"].numel())


def unpacked_backbone_tokens(feats):
    return int(collate_preference(feats, 0)["input_ids"].numel())


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_packed_loss_and_gradients_equal_unpacked(lora_model64, loss):
    from rationalign.runner import compose
    from rationalign.training.preference import setup_for

    setup = setup_for(compose([f"loss={loss}"]).loss)
    feats = _features(setup.with_rationale)
    fn = make_loss_fn(setup.loss_name, setup.hparams)
    params = [p for n, p in lora_model64.named_parameters() if "lora_" in n]

    def run(batch):
        lora_model64.zero_grad()
        value, _ = fn(lora_model64, {**batch, "n_pairs": len(feats)})
        value.backward()
        return value.detach(), [p.grad.clone() for p in params]

    v_flat, g_flat = run(collate_preference(feats, 0))
    v_pack, g_pack = run(pack_preference(feats, 0))
    n = summed_terms(lora_model64, feats)
    assert_equal_sums(v_pack, v_flat, n)
    for a, b in zip(g_pack, g_flat):
        assert_equal_sums(a, b, n)
    assert any(g.abs().sum() > 0 for g in g_flat)


def test_a_completion_never_sees_the_other(lora_model):
    """Changing the chosen tokens must leave the rejected log-prob unchanged (block mask), and
    changing the prompt must change both."""
    feats = _features()
    base, _ = packed_sequence_logps(lora_model, pack_preference(feats, 0))
    f2 = [dict(f) for f in feats]
    f2[0]["c_ids"] = [11] * len(f2[0]["c_ids"])
    moved, _ = packed_sequence_logps(lora_model, pack_preference(f2, 0))
    b = len(feats)
    assert not torch.allclose(moved[0], base[0]) and torch.allclose(moved[b], base[b], atol=1e-5)
    f3 = [dict(f) for f in feats]
    f3[0]["c_prompt"] = f3[0]["r_prompt"] = [12] + feats[0]["c_prompt"][1:]
    moved, _ = packed_sequence_logps(lora_model, pack_preference(f3, 0))
    assert not torch.allclose(moved[0], base[0]) and not torch.allclose(moved[b], base[b])


def test_pairs_must_share_the_prompt():
    feats = _features()
    feats[1]["r_prompt"] = feats[1]["r_prompt"][:-1]
    with pytest.raises(ValueError, match="share the prompt"):
        pack_preference(feats, 0)


def test_trainer_packs_decoder_only_pairs(tmp_path, lora_model):
    from types import SimpleNamespace

    from rationalign.runner import compose
    from rationalign.training.preference import build_preference_trainer, setup_for
    from rationalign.training.sft import EncodedDataset

    _m, tok = load_base_model({"source": "tiny"})
    setup = setup_for(compose(["loss=simpo"]).loss)
    feats = _features()
    for f in feats:
        f["input_ids"] = [0] * (len(f["c_prompt"]) + len(f["c_ids"]))
    tc = SimpleNamespace(epochs=1.0, max_steps=1, lr=1e-4, batch_size=3, grad_accum=1, warmup_ratio=0.0,
                         weight_decay=0.0, bf16=False, logging_steps=1, save_steps=0, group_by_length=False,
                         gradient_checkpointing=False)
    for shared, key in ((True, "packed_ids"), (False, "input_ids")):
        tr = build_preference_trainer(lora_model, tok, EncodedDataset(feats), setup, tc, tmp_path / str(shared),
                                      seed=0, device="cpu", shared_prompt=shared)
        batch = tr.data_collator(feats)
        assert key in batch and ("packed_ids" in batch) == shared
    before = lora_model.config._attn_implementation_internal
    lora_model.config._attn_implementation_internal = "flash_attention_2"
    try:
        from rationalign.training.shared_prompt import supports_block_mask

        assert not supports_block_mask(lora_model)
    finally:
        lora_model.config._attn_implementation_internal = before


@pytest.mark.slow
def test_packed_equals_unpacked_on_the_embedded_model():
    """The same check on SmolLM2-135M (30 layers, grouped-query attention, tied head)."""
    from rationalign.models import load_for_training
    from rationalign.runner import compose

    model, _tok = load_for_training(compose(["model=smollm2-135m"]).model)
    model.eval()
    feats = _features(with_rationale=True)
    flat = collate_preference(feats, pad_id=0)
    want, _ = sequence_logps(model, flat["input_ids"], flat["attention_mask"], flat["labels"])
    got, _ = packed_sequence_logps(model, pack_preference(feats, pad_id=0))
    assert torch.allclose(got, want, atol=1e-3, rtol=1e-5)
    want.sum().backward()
    g_flat = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    got.sum().backward()
    g_pack = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert len(g_pack) == len(g_flat) > 0
    for a, b in zip(g_pack, g_flat):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def test_chunked_head_gives_the_same_logps_and_gradients(lora_model64):
    """Was flaky in float32 (rtol 1e-4 against sums of ~10^6 float32 terms: -1.6100 vs -1.6101)."""
    feats = _features(with_rationale=True)
    batch = pack_preference(feats, 0)
    out = []
    for chunk in (0, 7):
        lora_model64.zero_grad()
        lp, _ = packed_sequence_logps(lora_model64, batch, logits_chunk=chunk)
        lp.sum().backward()
        out.append((lp.detach(), [p.grad.clone() for n, p in lora_model64.named_parameters() if "lora_" in n]))
    (a, ga), (b, gb) = out
    assert batch["pred_target"].numel() > 7  # really more than one chunk
    n = summed_terms(lora_model64, feats)
    assert_equal_sums(a, b, n)
    for x, y in zip(ga, gb):
        assert_equal_sums(x, y, n)
    assert any(x.abs().sum() > 0 for x in ga)
