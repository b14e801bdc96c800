"""The stand-in LLM class (vllm.entrypoints.llm.LLM in vLLM). See the package docstring."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

CALLS: list[dict] = []

# The EngineArgs names this stand-in accepts (a subset of vLLM's; anything else is a TypeError there too).
_ENGINE_ARGS = {"tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code", "tensor_parallel_size",
                "dtype", "quantization", "revision", "seed", "gpu_memory_utilization", "swap_space", "enforce_eager",
                "max_model_len", "enable_prefix_caching", "enable_lora", "max_lora_rank", "max_loras",
                "max_num_seqs", "disable_log_stats"}


def _record(entry: dict) -> None:
    CALLS.append(entry)
    path = os.environ.get("FAKE_VLLM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")


class LLM:
    def __init__(self, model: str, **kwargs: Any):
        unknown = set(kwargs) - _ENGINE_ARGS
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword arguments {sorted(unknown)}")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = str(model)
        self.kwargs = kwargs
        self.enable_lora = bool(kwargs.get("enable_lora", False))
        self.max_lora_rank = int(kwargs.get("max_lora_rank", 16))
        self.seed = int(kwargs.get("seed") or 0)
        self._base = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32).eval()
        self._tok = AutoTokenizer.from_pretrained(kwargs.get("tokenizer") or self.model_path)
        self._loras: dict[int, Any] = {}
        self._requests = 0
        _record({"call": "LLM", "model": self.model_path, **{k: v for k, v in kwargs.items()}})

    def get_tokenizer(self, lora_request=None):
        return self._tok

    def _model_for(self, lora):
        if lora is None:
            return self._base
        if not self.enable_lora:
            raise ValueError(f"LoRA is not enabled! (lora_request={lora.lora_name})")
        if lora.lora_int_id not in self._loras:
            from peft import PeftModel

            with open(os.path.join(lora.lora_path, "adapter_config.json"), encoding="utf-8") as f:
                conf = json.load(f)
            if int(conf.get("r", 0)) > self.max_lora_rank:
                raise ValueError(f"LoRA rank {conf['r']} is greater than max_lora_rank {self.max_lora_rank}.")
            if conf.get("modules_to_save") or conf.get("trainable_token_indices"):
                raise ValueError("vLLM LoRA does not serve modules_to_save / added tokens; merge the adapter")
            import copy

            self._loras[lora.lora_int_id] = PeftModel.from_pretrained(copy.deepcopy(self._base), lora.lora_path).eval()
        return self._loras[lora.lora_int_id]

    def generate(self, prompts: Any, sampling_params: SamplingParams | Sequence[SamplingParams] | None = None, *,
                 use_tqdm: bool = True, lora_request=None) -> list[RequestOutput]:
        single = isinstance(prompts, (str, dict))
        plist = [prompts] if single else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = list(sampling_params) if isinstance(sampling_params, (list, tuple)) else [sampling_params] * len(plist)
        if len(params) != len(plist):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        loras = list(lora_request) if isinstance(lora_request, (list, tuple)) else [lora_request] * len(plist)
        kinds, ids_list = [], []
        for p in plist:
            if isinstance(p, str):  # vLLM tokenises text itself, special tokens included (the double-BOS trap)
                kinds.append("text")
                ids_list.append(self._tok(p)["input_ids"])
            elif isinstance(p, dict) and "prompt_token_ids" in p:
                kinds.append("tokens")
                ids_list.append([int(t) for t in p["prompt_token_ids"]])
            elif isinstance(p, dict) and "prompt" in p:
                kinds.append("text")
                ids_list.append(self._tok(p["prompt"])["input_ids"])
            else:
                raise TypeError(f"unsupported prompt type {type(p)}")
        _record({"call": "generate", "model": self.model_path, "n_prompts": len(plist), "kinds": sorted(set(kinds)),
                 "prompt_token_ids": ids_list, "params": [sp.as_dict() for sp in params],
                 "lora": [None if r is None else [r.lora_name, r.lora_int_id, r.lora_path] for r in loras]})
        return [self._one(ids, sp, lora) for ids, sp, lora in zip(ids_list, params, loras)]

    def _one(self, ids: list[int], sp: SamplingParams, lora) -> RequestOutput:
        import torch
        from transformers import LogitsProcessorList

        from rationalign.engines.hf import PresencePenalty

        model = self._model_for(lora)
        self._requests += 1
        eos = list(sp.stop_token_ids or []) + [self._tok.eos_token_id]
        kw: dict[str, Any] = {"max_new_tokens": sp.max_tokens or 16, "eos_token_id": eos,
                              "pad_token_id": self._tok.pad_token_id or self._tok.eos_token_id}
        if sp.stop:
            kw.update(stop_strings=list(sp.stop), tokenizer=self._tok)
        if sp.temperature == 0:
            kw.update(do_sample=False)
        else:
            kw.update(do_sample=True, temperature=sp.temperature, top_p=sp.top_p,
                      top_k=sp.top_k if sp.top_k > 0 else None, num_return_sequences=sp.n)
            if sp.presence_penalty:
                kw["logits_processor"] = LogitsProcessorList([PresencePenalty(sp.presence_penalty, len(ids))])
        torch.manual_seed(sp.seed if sp.seed is not None else self.seed + self._requests)
        with torch.no_grad():
            gen = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 **kw)[:, len(ids):]
        rows = gen.tolist() if sp.temperature > 0 else gen.tolist() * sp.n
        outs = []
        for i, row in enumerate(rows):
            toks, finish = [], "length"
            for t in row:
                toks.append(t)
                if t in eos:
                    finish = "stop"
                    break
            text = self._tok.decode(toks, skip_special_tokens=sp.skip_special_tokens)
            for s in sp.stop or []:
                if s in text:
                    finish = "stop"
                    text = text[: text.index(s) + (len(s) if sp.include_stop_str_in_output else 0)]
                    break
            outs.append(CompletionOutput(index=i, text=text, token_ids=toks, finish_reason=finish))
        return RequestOutput(request_id=str(self._requests), prompt=None, prompt_token_ids=ids, prompt_logprobs=None,
                             outputs=outs)
