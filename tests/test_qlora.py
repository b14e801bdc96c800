"""QLoRA path: a 4-bit NF4 base (bitsandbytes) with trainable LoRA adapters, on CPU.

The tiny random Llama is saved as a normal HF checkpoint and loaded through model.source=hf with
model.quantization=4bit, exactly the way a user loads Llama-3.1-8B with QLoRA. Speed claims for
this path need a GPU; here we check that it loads quantized, trains and saves its adapter.
"""

import pytest
import torch

pytest.importorskip("bitsandbytes")


def test_qlora_loads_4bit_and_trains_adapters(tmp_path):
    import bitsandbytes as bnb

    from rationalign.models import build_tiny_llama, load_for_training, load_tokenizer, save_model
    from rationalign.training.logps import collate_completion, sequence_logps

    tok = load_tokenizer({"source": "tiny"})
    base = build_tiny_llama(tok)
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    cfg = {"source": "hf", "path": str(tmp_path / "base"), "quantization": "4bit", "dtype": "float32",
           "lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
    model, tok = load_for_training(cfg)
    n4 = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert n4 >= 2 * 7  # every attention/MLP projection of both layers is NF4
    trainable = [p for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    feats = [{"prompt_ids": tok("fix: he go", add_special_tokens=False)["input_ids"],
              "completion_ids": tok("he goes", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]}]
    batch = collate_completion(feats * 2, tok.pad_token_id)
    before = [p.detach().clone() for p in trainable]
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    lp, n = sequence_logps(model, **batch)
    loss = -(lp / n).mean()
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainable))
    save_model(model, tok, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").exists()
