"""stage=quark's policy: built from the base (+ the SFT adapter merged in) with control tokens and a
fresh LoRA, saved per round, and wrapped in a generation engine for sampling."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path

from rationalign.cfg_access import cache_dir
from rationalign.quark.control import merged
from rationalign.stages.base import Context


def build_policy(cfg, ctx: Context, tokens: list[str]):
    """(model, tokenizer, init_adapter): base (+ SFT adapter merged in, so that disabling the new
    adapter gives back the SFT policy = the KL reference), control tokens added, fresh LoRA whose
    trainable_token_indices train the control-token embedding rows."""
    from rationalign.models import load_base_model
    from rationalign.quark.control import add_control_tokens

    model, tok = load_base_model(cfg.model, cache_dir(cfg))
    init_adapter = None
    if cfg.quark.init == "sft":
        from peft import PeftModel

        init_adapter = ctx.require("sft") / "adapter"
        if not (init_adapter / "adapter_config.json").exists():
            raise ValueError(f"{init_adapter}: quark needs the SFT LoRA adapter (model.lora.merge=false in sft)")
        model = PeftModel.from_pretrained(model, str(init_adapter)).merge_and_unload()
    ids = add_control_tokens(model, tok, tokens)
    if cfg.model.lora.enabled:
        from rationalign.models import add_lora

        # Only the new embedding rows train (tied heads follow); add_lora picks the causal or
        # seq2seq task type and T5's projection names.
        model = add_lora(model, cfg.model, trainable_token_indices=list(ids))
    return model, tok, (str(init_adapter.resolve()) if init_adapter else None)


def save_policy(model, tok, adapter_dir: Path, meta: dict) -> None:
    from rationalign.quark.control import write_meta

    adapter_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        # The control-token rows travel in the adapter (trainable tokens), so the full embedding
        # matrix need not be saved.
        model.save_pretrained(adapter_dir, save_embedding_layers=False)
    else:
        model.save_pretrained(adapter_dir)
    tok.save_pretrained(adapter_dir)
    write_meta(adapter_dir, meta)


@contextmanager
def policy_engine(cfg, model, tok):
    """An engine over the policy as it is now. hf generates with the adapters merged in place (about
    twice as fast); vllm gets a merged copy of the policy (engines.factory)."""
    from rationalign.engines import build_engine

    with merged(model) if cfg.engine.name == "hf" else nullcontext(), \
            build_engine(cfg, model, tok, progress=False) as engine:
        yield engine
