"""Turn (rendered prompt, completion) into token ids the same way for training, scoring and generation.

`Layout` (config `prompts.layout`) decides how a prompt rendered by `rationalign.prompts` reaches
the model, for every consumer (SFT, K-fold, sampling, alignment, evaluation, reward model, local
teacher, QUARK):

- plain (default, the paper's Table 8): the rendered text as it is, for every model, preceded by the
  tokenizer's BOS token when the tokenizer adds one by default (Llama 3 does, SmolLM2 does not);
- chat: the tokenizer's chat template around it (system turn `prompts.chat.system`, then the
  prompt as the user turn, then the assistant header), for instruct models.

Encoder-decoder (T5-family) models read the rendered text itself as the encoder input, ending in
</s> as T5 was trained, in either layout; the completion is the decoder's target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rationalign.cfg_access import cfg_get
from rationalign.prompt_config import LAYOUTS


@dataclass(frozen=True)
class Layout:
    name: str = "plain"
    system: str | None = None  # chat only: the system turn (None: no system message)

    def __post_init__(self) -> None:
        if self.name not in LAYOUTS:
            raise ValueError(f"prompts.layout={self.name!r}: expected one of {', '.join(LAYOUTS)}")

    @classmethod
    def from_cfg(cls, prompts_cfg: Any) -> Layout:
        chat = cfg_get(prompts_cfg, "chat") or {}
        system = cfg_get(chat, "system")
        return cls(str(cfg_get(prompts_cfg, "layout", "plain")), str(system) if system else None)

    def to_dict(self) -> dict:
        return {"name": self.name, "system": self.system}

    def text(self, tokenizer, prompt: str, *, seq2seq: bool = False) -> str:
        """The full model input up to where the answer starts (seq2seq: the encoder text)."""
        if seq2seq:
            return prompt
        if self.name == "plain":
            return _bos(tokenizer) + prompt
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompts.layout=chat: this tokenizer has no chat template; use prompts.layout=plain")
        msgs = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)


def _bos(tokenizer) -> str:
    """The BOS token as text when the tokenizer puts it in front of every text by default."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None or not getattr(tokenizer, "bos_token", None):
        return ""
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return tokenizer.bos_token if ids and ids[0] == bos_id else ""


def prompt_text(tokenizer, prompt: str, *, layout: Layout, seq2seq: bool = False) -> str:
    return layout.text(tokenizer, prompt, seq2seq=seq2seq)


def prompt_ids(tokenizer, prompt: str, *, layout: Layout, seq2seq: bool = False) -> list[int]:
    """The token ids a model reads before its answer: what training puts before the completion, what
    every generation engine (hf, vllm) is given as-is, so no engine renders or tokenises on its own
    (no second BOS, no other template). seq2seq: the encoder input, ending in one </s>."""
    if seq2seq:
        return encoder_ids(tokenizer, layout.text(tokenizer, prompt, seq2seq=True), 1 << 30)
    return tokenizer(layout.text(tokenizer, prompt), add_special_tokens=False)["input_ids"]


def encoder_ids(tokenizer, text: str, max_length: int) -> list[int]:
    """Seq2seq encoder input: the text's ids ending in exactly one eos (T5 saw </s> at the end of every
    input in pre-training, and T5ForSequenceClassification pools the decoder state at that </s>).
    Over-long inputs lose their start, keeping the eos."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = max(max_length - 1, 0)
    return (ids[len(ids) - keep:] if keep else []) + [tokenizer.eos_token_id]


def encode_pair(tokenizer, prompt: str, completion: str, max_length: int, *, layout: Layout,
                seq2seq: bool = False) -> tuple[list[int], list[int]]:
    """(prompt_ids, completion_ids); the completion ends with eos so the model learns to stop.

    Over-long examples keep the whole completion and cut the prompt from the left, because the
    loss lives on the completion; a completion longer than max_length is cut at the end.
    For seq2seq the encoder and decoder are separate sequences, so each gets max_length on its own.
    """
    c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(c) >= max_length:
        c = c[: max_length - 1]
    if seq2seq:
        return encoder_ids(tokenizer, layout.text(tokenizer, prompt, seq2seq=True), max_length), c
    p = prompt_ids(tokenizer, prompt, layout=layout)
    room = max_length - len(c)
    if len(p) > room:
        p = p[len(p) - room:]
    return p, c
