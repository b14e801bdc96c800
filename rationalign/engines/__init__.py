"""Generation engines behind one interface: generate(prompts, **sampling) -> list[str].

`prompts` are user messages; the engine applies the chat template used in training.
Sampling keys (paper App. B.4 names): temperature (0 = greedy), top_p, top_k, presence_penalty,
max_new_tokens, n (samples per prompt, `sample()`), seed.
"""

from __future__ import annotations

from typing import Any


def build_engine(cfg: Any, model=None, tokenizer=None, *, model_dir: str | None = None):
    """Engine named by cfg.engine.name over an already-loaded HF model (hf) or a model dir (vllm)."""
    name = cfg.engine.name
    if name == "hf":
        from rationalign.engines.hf import HFEngine

        return HFEngine(model, tokenizer, batch_size=int(cfg.engine.batch_size), seed=int(cfg.engine.seed))
    if name == "vllm":
        from rationalign.engines.vllm import VLLMEngine

        return VLLMEngine.from_config(cfg, model_dir=model_dir)
    raise ValueError(f"engine.name={name}: expected hf or vllm")
