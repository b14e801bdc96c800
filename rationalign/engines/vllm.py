"""vLLM engine (GPU machines; `pip install '.[vllm]'`): same interface and outputs as HFEngine.

It never renders or tokenises a prompt itself: `Engine.encode` gives the token ids training uses
(training.chat.prompt_ids) and they reach vLLM as `TokensPrompt(prompt_token_ids=...)`, so the
chat template is applied once and no second BOS appears. Completions are decoded from their token
ids with our tokenizer and `skip_special_tokens=True`, as HFEngine decodes. A LoRA adapter is served
through `LoRARequest`; what vLLM cannot serve as an adapter (added tokens, modules_to_save) is handed
to it as a merged model directory by the factory (engines.factory).

Sampling: one `SamplingParams` per prompt with its own seed, derived from the stage seed and the
prompt's ids, so a request's samples do not depend on what else is in the batch: a resumed stage
regenerates exactly the shards it lost. Stop strings stay in the text (include_stop_str_in_output),
as HF's stop_strings keep them.

Only the CPU stand-in under tests/fake_vllm has run this code here; the real engine needs a GPU.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from pathlib import Path
from typing import Any

from rationalign.engines.base import Engine
from rationalign.io import read_json_located

log = logging.getLogger("rationalign")

# vLLM accepts these max_lora_rank values; an adapter's r is rounded up to the next one.
_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def import_vllm():
    try:
        import vllm
        from vllm import LLM, SamplingParams  # noqa: F401
    except ImportError:
        raise ImportError("engine=vllm needs vLLM on a GPU machine: pip install '.[vllm]' "
                          "(or use engine=hf)") from None
    return vllm


def request_seed(seed: int, ids: list[int]) -> int:
    """A request's seed: a function of the stage seed and the prompt's ids only."""
    h = hashlib.sha256(f"{seed}:{','.join(map(str, ids))}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def lora_rank(adapter_dir: Path) -> int:
    r = int(read_json_located(Path(adapter_dir) / "adapter_config.json").get("r", 16))
    return next((x for x in _LORA_RANKS if x >= r), r)


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model_dir: str | Path, tokenizer, *, lora_dir: str | Path | None = None, seed: int = 0,
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85,
                 enable_prefix_caching: bool = True, dtype: str = "auto", max_model_len: int | None = None,
                 llm_kwargs: dict | None = None, cleanup: list[Path] | None = None,
                 on_close: list | None = None, layout=None):
        from rationalign.training.chat import Layout

        super().__init__(tokenizer, layout=layout or Layout())
        import_vllm()
        from vllm import LLM

        self.seed = seed
        self.model_dir = str(model_dir)
        self.lora_dir = str(lora_dir) if lora_dir else None
        self._cleanup = list(cleanup or [])  # temporary model copies, deleted by close()
        self._on_close = list(on_close or [])  # e.g. move an offloaded training model back
        kwargs: dict[str, Any] = {"tokenizer": self.model_dir, "seed": seed, "dtype": dtype,
                                  "tensor_parallel_size": int(tensor_parallel_size),
                                  "gpu_memory_utilization": float(gpu_memory_utilization),
                                  "enable_prefix_caching": bool(enable_prefix_caching)}
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        if self.lora_dir:
            kwargs.update(enable_lora=True, max_lora_rank=lora_rank(Path(self.lora_dir)), max_loras=1)
        kwargs.update(llm_kwargs or {})
        log.info("vllm: loading %s%s (tensor_parallel_size=%s)", self.model_dir,
                 f" + LoRA {self.lora_dir}" if self.lora_dir else "", tensor_parallel_size)
        self.llm = LLM(model=self.model_dir, **kwargs)

    def _params(self, ids: list[int], n: int, *, temperature: float, top_p: float, top_k: int,
                presence_penalty: float, max_new_tokens: int, seed: int, stop: list[str] | None):
        from vllm import SamplingParams

        greedy = temperature <= 0
        # Greedy ignores the sampling knobs, as HF's greedy path does.
        return SamplingParams(
            n=n, temperature=0.0 if greedy else float(temperature), top_p=1.0 if greedy else float(top_p),
            top_k=int(top_k) if (top_k and not greedy) else -1,
            presence_penalty=0.0 if greedy else float(presence_penalty), max_tokens=int(max_new_tokens),
            seed=request_seed(seed, ids), stop=list(stop) if stop else None, include_stop_str_in_output=True,
            stop_token_ids=[self.tok.eos_token_id], skip_special_tokens=True)

    def sample_ids(self, prompt_ids: list[list[int]], n: int = 1, *, temperature: float = 0.0, top_p: float = 1.0,
                   top_k: int = 0, presence_penalty: float = 0.0, max_new_tokens: int = 128,
                   seed: int | None = None, stop: list[str] | None = None, **_: Any) -> list[list[str]]:
        from vllm.inputs import TokensPrompt

        if not prompt_ids:
            return []
        seed = self.seed if seed is None else seed
        kw = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "presence_penalty": presence_penalty,
              "max_new_tokens": max_new_tokens, "seed": seed, "stop": stop}
        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompt_ids]
        params = [self._params(ids, n, **kw) for ids in prompt_ids]
        lora = None
        if self.lora_dir:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.lora_dir)
        outs = self.llm.generate(prompts, params, use_tqdm=False, lora_request=lora)
        if len(outs) != len(prompts):
            raise RuntimeError(f"vllm returned {len(outs)} outputs for {len(prompts)} prompts")
        result = []
        for o in outs:
            comps = sorted(o.outputs, key=lambda c: c.index)
            result.append([self.tok.decode(list(c.token_ids), skip_special_tokens=True).strip() for c in comps])
        return result

    def close(self) -> None:
        import shutil

        llm, self.llm = getattr(self, "llm", None), None
        del llm
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass
        for p in self._cleanup:
            shutil.rmtree(p, ignore_errors=True)
        self._cleanup = []
        callbacks, self._on_close = self._on_close, []
        for fn in callbacks:
            fn()
