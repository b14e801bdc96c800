"""Turn (user message, completion) into token ids the same way for training, scoring and generation."""

from __future__ import annotations

SYSTEM_PROMPT = "You are a writing assistant."


def prompt_text(tokenizer, user_message: str) -> str:
    """The full prompt string up to where the assistant's answer starts."""
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message}]
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    # Base models without a chat template: a plain instruction layout.
    return f"{user_message}\n\n### Response:\n"


def encode_pair(tokenizer, user_message: str, completion: str, max_length: int) -> tuple[list[int], list[int]]:
    """(prompt_ids, completion_ids); the completion ends with eos so the model learns to stop.

    Over-long examples keep the whole completion and cut the prompt from the left, because the
    loss lives on the completion; a completion longer than max_length is cut at the end.
    """
    p = tokenizer(prompt_text(tokenizer, user_message), add_special_tokens=False)["input_ids"]
    c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(c) >= max_length:
        c = c[: max_length - 1]
    room = max_length - len(c)
    if len(p) > room:
        p = p[len(p) - room:]
    return p, c
