"""The one way a stage gets a generation engine: `build_engine(cfg, ...)`, for hf and vllm alike.

Say what to generate from in one of three ways:
  * `model=, tokenizer=`: a model in memory (just trained: a K-fold model, a QUARK policy);
  * `adapter=`: a saved LoRA adapter, a merged/full model dir or a QUARK policy dir on top of the
    configured base (`model_cfg`, default cfg.model);
  * neither: the configured base model itself (zero-shot).

hf generates with that model where it is (a loaded one is moved to cfg.device). vllm needs a model
directory: the base weights (the converted GGUF dir, the hub id or path; the tiny test model is
written to a temporary dir), plus a plain LoRA adapter through LoRARequest; anything vLLM cannot
serve as an adapter (QUARK's added tokens, modules_to_save), an in-memory policy, or
`engine.lora=merged` goes as a merged copy in a temporary dir that `engine.close()` deletes.
Use the engine as a context manager (`with build_engine(...) as eng:`) so vLLM's GPU memory and
those copies are released before training resumes.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rationalign.engines.snapshot import adapter_config, is_plain_lora, save_merged
from rationalign.registry import Registry

log = logging.getLogger("rationalign")

# engine.name -> builder(cfg, model, tokenizer, adapter, model_cfg, progress); registered below.
ENGINES: Registry = Registry("engine", group="engine")
LORA_MODES = ("adapter", "merged")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _get(node: Any, key: str, default: Any = None) -> Any:
    if node is None:
        return default
    if isinstance(node, dict):
        return node.get(key, default)
    return node.get(key, default) if hasattr(node, "get") else getattr(node, key, default)


def build_engine(cfg: Any, model=None, tokenizer=None, *, adapter: str | Path | None = None,
                 model_cfg: Any = None, progress: bool = True):
    """An engine for cfg.engine.name over one model (see the module docstring)."""
    name = str(cfg.engine.name)
    if name not in ENGINES:
        raise ValueError(f"engine.name={name}: expected one of {', '.join(ENGINES)}")
    model_cfg = cfg.model if model_cfg is None else model_cfg
    if model is not None and tokenizer is None:
        raise ValueError("build_engine: a model in memory needs its tokenizer")
    return ENGINES.get(name)(cfg, model, tokenizer, adapter, model_cfg, progress)


# ------------------------------------------------------------------------------------------- hf
@ENGINES.register("hf")
def _hf_engine(cfg, model, tok, adapter, model_cfg, progress):
    from rationalign.engines.hf import HFEngine

    if model is None:
        from rationalign.cfg_access import cache_dir, device_of
        from rationalign.models import move_to
        from rationalign.quark.control import load_for_inference

        model, tok, _prefix = load_for_inference(model_cfg, adapter, cache_dir(cfg))
        move_to(model, device_of(cfg))
    return HFEngine(model, tok, batch_size=int(cfg.engine.batch_size), seed=int(cfg.seed), progress=progress,
                    layout=_layout(cfg), prefill_once=bool(cfg.engine.get("prefill_once", False)))


def _layout(cfg):
    """prompts.layout: how every engine lays prompts out, as training does (training.chat.Layout)."""
    from rationalign.training.chat import Layout

    return Layout.from_cfg(cfg.prompts)


# ----------------------------------------------------------------------------------------- vllm
def _tmpdir(cfg, prefix: str) -> Path:
    from rationalign.cfg_access import cache_dir

    root = cache_dir(cfg) / "vllm-tmp"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=root, prefix=prefix))


def base_model_dir(cfg, model_cfg, cleanup: list[Path]) -> str:
    """A directory (or hub id) holding the base weights of model_cfg, for vLLM to load."""
    from rationalign.cfg_access import cache_dir
    from rationalign.models import converted_gguf_dir, load_base_model

    source = _get(model_cfg, "source", "gguf")
    if source == "gguf":
        return str(converted_gguf_dir(_get(model_cfg, "gguf_package"), _get(model_cfg, "gguf_file"), cache_dir(cfg)))
    if source in ("hf", "dir"):
        return str(_get(model_cfg, "path"))
    # tiny: a seeded random model exists only in memory; write it out.
    model, tok = load_base_model(_plain(model_cfg), cache_dir(cfg))
    d = _tmpdir(cfg, "base-")
    cleanup.append(d)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


def _check_vllm_model(model_cfg) -> None:
    from rationalign.models import architecture

    if architecture(_plain(model_cfg)) == "seq2seq":
        raise ValueError("engine=vllm: encoder-decoder (T5-family) models are not served by this engine; "
                         "use engine=hf")


@ENGINES.register("vllm")
def _vllm_engine(cfg, model, tok, adapter, model_cfg, progress):
    # vLLM shows its own progress bar; `progress` is the hf engine's tqdm switch.
    from rationalign.cfg_access import cache_dir
    from rationalign.engines.vllm import VLLMEngine, import_vllm
    from rationalign.models import load_tokenizer

    import_vllm()  # fail before any copy is written
    _check_vllm_model(model_cfg)
    e = cfg.engine
    lora_mode = str(e.get("lora", "adapter"))
    if lora_mode not in LORA_MODES:
        raise ValueError(f"engine.lora={lora_mode}: expected one of {', '.join(LORA_MODES)}")
    cleanup: list[Path] = []
    on_close: list = []
    lora_dir = None
    try:
        if model is not None:
            conf = model.peft_config["default"].to_dict() if hasattr(model, "peft_config") else None
            if lora_mode == "adapter" and is_plain_lora(conf):
                d = _tmpdir(cfg, "adapter-")
                cleanup.append(d)
                model.save_pretrained(d)
                model_dir, lora_dir = base_model_dir(cfg, model_cfg, cleanup), d
            else:
                d = _tmpdir(cfg, "merged-")
                cleanup.append(d)
                model_dir = str(save_merged(model, tok, d))
            on_close.append(_offload(model))
        elif adapter is not None:
            model_dir, lora_dir, tok = _saved_system(cfg, Path(adapter), model_cfg, lora_mode, cleanup)
        else:
            model_dir = base_model_dir(cfg, model_cfg, cleanup)
        if tok is None:
            tok = load_tokenizer(_plain(model_cfg), cache_dir(cfg))
        dtype = str(_get(model_cfg, "dtype", "auto") or "auto")
        kwargs = dict(_plain(e.get("llm_kwargs")) or {})
        if _get(model_cfg, "quantization", "none") in ("4bit", "8bit"):
            kwargs.setdefault("quantization", "bitsandbytes")
        return VLLMEngine(model_dir, tok, lora_dir=lora_dir, seed=int(cfg.seed),
                          tensor_parallel_size=int(e.tensor_parallel_size),
                          gpu_memory_utilization=float(e.gpu_memory_utilization),
                          enable_prefix_caching=bool(e.enable_prefix_caching), dtype=dtype,
                          max_model_len=e.get("max_model_len"), llm_kwargs=kwargs, cleanup=cleanup,
                          on_close=on_close, layout=_layout(cfg))
    except BaseException:
        import shutil

        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)
        for fn in on_close:
            fn()
        raise


def _offload(model):
    """Move a training model off the GPU while vLLM holds it; returns the callback that moves it back."""
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return lambda: None
    model.to("cpu")
    torch.cuda.empty_cache()
    return lambda: model.to(device)


def _saved_system(cfg, adapter: Path, model_cfg, lora_mode: str, cleanup: list[Path]):
    """(model dir, LoRA dir or None, tokenizer or None) for a saved system directory."""
    from rationalign.cfg_access import cache_dir
    from rationalign.quark.control import is_quark_dir, load_quark_policy

    if is_quark_dir(adapter):  # added control tokens: only a merged copy loads in vLLM
        model, tok = load_quark_policy(model_cfg, adapter, cache_dir(cfg))
        d = _tmpdir(cfg, "merged-")
        cleanup.append(d)
        return str(save_merged(model, tok, d)), None, tok
    conf = adapter_config(adapter)
    if conf is None:
        if not (adapter / "config.json").exists():
            raise FileNotFoundError(f"{adapter}: neither a LoRA adapter (adapter_config.json) nor a model dir")
        from rationalign.models import load_tokenizer

        return str(adapter), None, load_tokenizer({"source": "dir", "path": str(adapter)})  # a full model dir
    if lora_mode == "adapter" and is_plain_lora(conf):
        return base_model_dir(cfg, model_cfg, cleanup), str(adapter), None
    from rationalign.models import load_trained

    model, tok = load_trained(_plain(model_cfg), adapter, cache_dir(cfg), merge=True)
    d = _tmpdir(cfg, "merged-")
    cleanup.append(d)
    return str(save_merged(model, tok, d)), None, tok
