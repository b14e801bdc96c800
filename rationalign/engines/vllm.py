"""vLLM engine (GPU machines; `pip install '.[vllm]'`): same interface and outputs as HFEngine."""

from __future__ import annotations

from typing import Any


class VLLMEngine:
    def __init__(self, model_dir: str, tokenizer_dir: str | None = None, *, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.85, enable_prefix_caching: bool = True, seed: int = 0,
                 lora_dir: str | None = None, dtype: str = "auto"):
        try:
            from vllm import LLM
        except ImportError:
            raise ImportError("engine=vllm needs vLLM on a GPU machine: pip install '.[vllm]' "
                              "(or use engine=hf)") from None
        self.lora_dir = lora_dir
        self.seed = seed
        self.llm = LLM(model=model_dir, tokenizer=tokenizer_dir or model_dir, seed=seed, dtype=dtype,
                       tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                       enable_prefix_caching=enable_prefix_caching, enable_lora=lora_dir is not None)
        self.tok = self.llm.get_tokenizer()

    @classmethod
    def from_config(cls, cfg: Any, *, model_dir: str | None = None, lora_dir: str | None = None) -> VLLMEngine:
        if model_dir is None:
            raise ValueError("engine=vllm needs a model directory (merged model or base + lora_dir)")
        return cls(model_dir, tensor_parallel_size=int(cfg.engine.tensor_parallel_size),
                   gpu_memory_utilization=float(cfg.engine.gpu_memory_utilization),
                   enable_prefix_caching=bool(cfg.engine.enable_prefix_caching), seed=int(cfg.engine.seed),
                   lora_dir=lora_dir)

    def sample(self, prompts: list[str], n: int = 1, *, temperature: float = 0.0, top_p: float = 1.0,
               top_k: int = 0, presence_penalty: float = 0.0, max_new_tokens: int = 128,
               seed: int | None = None, **_: Any) -> list[list[str]]:
        from vllm import SamplingParams

        from rationalign.training.chat import prompt_text

        params = SamplingParams(n=n, temperature=max(temperature, 0.0), top_p=top_p if temperature > 0 else 1.0,
                                top_k=top_k if (temperature > 0 and top_k) else -1,
                                presence_penalty=presence_penalty, max_tokens=max_new_tokens,
                                seed=self.seed if seed is None else seed)
        texts = [prompt_text(self.tok, p) for p in prompts]
        lora = None
        if self.lora_dir:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.lora_dir)
        outs = self.llm.generate(texts, params, lora_request=lora)
        return [[c.text.strip() for c in o.outputs] for o in outs]

    def generate(self, prompts: list[str], **sampling: Any) -> list[str]:
        sampling.pop("n", None)
        return [o[0] for o in self.sample(prompts, n=1, **sampling)]
