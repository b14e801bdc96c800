"""Model directories an out-of-process engine (vLLM) can load: the base weights of a config, a plain
LoRA adapter next to them, or a merged copy of anything else.

`save_merged` writes a PEFT model's merged weights as a plain transformers checkpoint *without*
unloading the adapters (training goes on afterwards, e.g. between QUARK rounds): adapters are merged
in place, the state dict is renamed back to the base model's keys, and they are unmerged again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rationalign.io import read_json_located

# PEFT wrapper segments whose removal gives the base model's key back.
_WRAPPER = re.compile(r"\.(base_layer|token_adapter|modules_to_save\.default)(?=\.)")
_ADAPTER_ONLY = re.compile(r"(\.lora_[A-Za-z_]+\.|\.trainable_tokens_delta|\.original_module\.)")


def adapter_config(adapter_dir: Path) -> dict | None:
    """A LoRA dir's adapter_config.json (None without one); invalid JSON is an error naming the file."""
    p = Path(adapter_dir) / "adapter_config.json"
    return read_json_located(p) if p.exists() else None


def is_plain_lora(conf: dict | None) -> bool:
    """A LoRA adapter vLLM serves through LoRARequest: no trainable tokens, no saved full modules."""
    return bool(conf) and conf.get("peft_type") == "LORA" and not conf.get("modules_to_save") \
        and not conf.get("trainable_token_indices")


def merged_state_dict(model) -> dict[str, Any]:
    """The base model's state dict with the (already merged) adapters' wrappers removed."""
    out = {}
    for k, v in model.get_base_model().state_dict().items():
        if _ADAPTER_ONLY.search(k):
            continue
        out[_WRAPPER.sub("", k)] = v
    return out


def save_merged(model, tokenizer, out_dir: Path) -> Path:
    """A loadable checkpoint of the model as it generates now (adapters merged in)."""
    from rationalign.quark.control import merged

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "peft_config"):
        with merged(model):
            base = model.get_base_model()
            base.save_pretrained(out_dir, state_dict={k: v.detach().clone() for k, v in merged_state_dict(model).items()})
    else:
        model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
