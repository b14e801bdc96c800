"""Turn (user message, completion) into token ids the same way for training, scoring and generation.

Decoder-only models read one sequence: the chat-templated prompt followed by the completion.
Encoder-decoder (T5-family) models have no chat template: the user message itself, ending in </s>
as T5 was trained, is the encoder input, and the completion is the decoder's target.
"""

from __future__ import annotations

SYSTEM_PROMPT = "You are a writing assistant."


def prompt_text(tokenizer, user_message: str, *, seq2seq: bool = False) -> str:
    """The full prompt string up to where the assistant's answer starts (seq2seq: the encoder text)."""
    if seq2seq:
        return user_message
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message}]
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    # Base models without a chat template: a plain instruction layout.
    return f"{user_message}\n\n### Response:\n"


def prompt_ids(tokenizer, user_message: str, *, seq2seq: bool = False) -> list[int]:
    """The token ids a model reads before its answer: what training puts before the completion, what
    every generation engine (hf, vllm) is given as-is, so no engine renders or tokenises on its own
    (no second BOS, no other template). seq2seq: the encoder input, ending in one </s>."""
    if seq2seq:
        return encoder_ids(tokenizer, prompt_text(tokenizer, user_message, seq2seq=True), 1 << 30)
    return tokenizer(prompt_text(tokenizer, user_message), add_special_tokens=False)["input_ids"]


def encoder_ids(tokenizer, text: str, max_length: int) -> list[int]:
    """Seq2seq encoder input: the text's ids ending in exactly one eos (T5 saw </s> at the end of every
    input in pre-training, and T5ForSequenceClassification pools the decoder state at that </s>).
    Over-long inputs lose their start, keeping the eos."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = max(max_length - 1, 0)
    return (ids[len(ids) - keep:] if keep else []) + [tokenizer.eos_token_id]


def encode_pair(tokenizer, user_message: str, completion: str, max_length: int, *,
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
        return encoder_ids(tokenizer, prompt_text(tokenizer, user_message, seq2seq=True), max_length), c
    p = prompt_ids(tokenizer, user_message)
    room = max_length - len(c)
    if len(p) > room:
        p = p[len(p) - room:]
    return p, c
