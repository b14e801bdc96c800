"""A CPU stand-in for vLLM's public offline API, for tests only (tests/fake_vllm on PYTHONPATH).

Same names and call shapes as vllm's `LLM`, `SamplingParams`, `TokensPrompt`, `RequestOutput`,
`CompletionOutput` and `vllm.lora.request.LoRARequest` (vLLM 0.8+ era, read from its source):
`LLM(model, *, tokenizer=..., **engine_args)`, `llm.generate(prompts, sampling_params, *, use_tqdm,
lora_request)` with prompts as strings or TokensPrompt dicts and one SamplingParams or one per prompt.
Underneath it runs transformers generate on CPU, one request at a time, seeded by the request's
seed, and it loads the LoRA adapter a LoRARequest names with peft: so a wrong model dir, a missing
adapter or re-tokenised prompts show up as wrong outputs, not just wrong calls.

Every LLM() and generate() call is appended to `CALLS` (and to the JSON-lines file named by
$FAKE_VLLM_LOG, for runs in subprocesses). It is not vLLM: no paged attention, no batching, no GPU.
"""

from __future__ import annotations

from vllm.entrypoints import CALLS, LLM
from vllm.inputs import TextPrompt, TokensPrompt
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

__version__ = "0.0.0+rationalign.stand-in"

__all__ = ["CALLS", "LLM", "CompletionOutput", "RequestOutput", "SamplingParams", "TextPrompt", "TokensPrompt"]
