"""Per-sequence log-probabilities computed only where they are needed.

A small model's 49k-vocabulary output layer costs more than its transformer blocks, so we run the
backbone once, gather the hidden states at completion positions, and apply the LM head to those
rows only (instead of to every prompt and padding position).

Encoder-decoder (T5-family) models take a different batch layout: input_ids/attention_mask are the
encoder's (the prompt), labels are the decoder's targets (the completion, -100 on padding), and the
decoder reads the labels shifted right. `sequence_logps`, `completion_token_logps` and
`sft_loss_from_batch` dispatch on the model (`is_seq2seq`), so trainers call them the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unwrap_parallel(model):
    """The module inside a DDP / DeepSpeed / FSDP(1) / torch.compile wrapper (the model itself if none)."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model)


def unwrap_model(model):
    """The transformers model under any parallel wrapper and the PEFT wrapper."""
    inner = unwrap_parallel(model)
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def _backbone_and_head(model):
    inner = unwrap_model(model)
    return inner.get_decoder(), inner.get_output_embeddings()


def is_sharded(model) -> bool:
    """Parameters sharded across ranks (FSDP, DeepSpeed): the LM head can only run inside the model's
    own forward there, so log-probs take the full-logits path."""
    if type(model).__name__ in ("FullyShardedDataParallel", "DeepSpeedEngine"):
        return True
    first = next(unwrap_parallel(model).parameters(), None)
    try:
        from torch.distributed.tensor import DTensor  # FSDP2 (fully_shard) keeps the module, shards params
    except ImportError:  # pragma: no cover
        return False
    return isinstance(first, DTensor)


def final_hidden_states(model, input_ids, attention_mask, position_ids=None):
    """The decoder's last hidden states [B, T, H], computed by calling the *top-level* model (so a DDP
    wrapper prepares its gradient all-reduce), with the LM head run on one position only; the
    states are caught by a forward hook on the decoder. `attention_mask` may be a prepared 4D mask
    (training.shared_prompt), passed through as is."""
    import inspect

    inner = unwrap_model(model)
    caught: dict = {}

    def hook(_module, _args, out):
        caught["h"] = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    kw: dict = {"use_cache": False}
    if position_ids is not None:
        kw["position_ids"] = position_ids
    if "logits_to_keep" in inspect.signature(inner.forward).parameters:
        kw["logits_to_keep"] = 1
    handle = inner.get_decoder().register_forward_hook(hook)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, **kw)
    finally:
        handle.remove()
    return caught["h"]


def is_seq2seq(model) -> bool:
    """True for encoder-decoder models (T5 family), also under a PEFT wrapper."""
    return bool(getattr(getattr(unwrap_model(model), "config", None), "is_encoder_decoder", False))


def seq2seq_completion_logits(model, input_ids, attention_mask, labels):
    """Seq2seq: encoder on the prompt, decoder on the labels shifted right.

    Returns (logits [N, V] float, targets [N], row_index [N]) at the labels != -100 positions. For T5
    the LM head runs on the completion rows only (decoder padding skipped), applying T5's own
    d_model**-0.5 output scaling when its embeddings are tied; any other encoder-decoder (whose head
    may add a bias, as BART's does) takes the full-logits path through its own forward.
    """
    inner = unwrap_model(model)
    decoder_input_ids = inner.prepare_decoder_input_ids_from_labels(labels)  # shift right, -100 -> pad
    mask = labels != -100
    rows = torch.arange(labels.size(0), device=labels.device).unsqueeze(1).expand_as(labels)[mask]
    wrapped = unwrap_parallel(model) is not model or is_sharded(model)
    if (not wrapped and getattr(inner.config, "model_type", None) == "t5"
            and hasattr(inner.config, "scale_decoder_outputs")):
        enc = inner.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = inner.get_decoder()(input_ids=decoder_input_ids, encoder_hidden_states=enc,
                                     encoder_attention_mask=attention_mask, use_cache=False).last_hidden_state
        h = hidden[mask]
        if inner.config.scale_decoder_outputs:
            h = h * (inner.config.d_model ** -0.5)
        logits = at_least_fp32(inner.get_output_embeddings()(h))
    else:  # through the (possibly wrapped) model's own forward
        logits = at_least_fp32(model(input_ids=input_ids, attention_mask=attention_mask,
                                     decoder_input_ids=decoder_input_ids, use_cache=False).logits[mask])
    return logits, labels[mask], rows


def at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits in float32 for the log-softmax; float32 and float64 as they are (a float64
    model, as the equivalence tests use, keeps its precision)."""
    return logits if logits.dtype == torch.float64 else logits.float()


def _seq2seq_token_logps(model, input_ids, attention_mask, labels):
    logits, targets, rows = seq2seq_completion_logits(model, input_ids, attention_mask, labels)
    return -F.cross_entropy(logits, targets, reduction="none"), rows


def completion_token_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
    """Log pi(token) at every label != -100 position.

    Returns (token_logps [N], row_index [N]) where N is the number of completion tokens in the batch
    and row_index says which sequence each belongs to.
    """
    if is_seq2seq(model):
        return _seq2seq_token_logps(model, input_ids, attention_mask, labels)
    # position t predicts token t+1
    targets = labels[:, 1:]
    mask = targets != -100
    rows = torch.arange(labels.size(0), device=labels.device).unsqueeze(1).expand_as(targets)[mask]
    logits = causal_completion_logits(model, input_ids, attention_mask, mask)
    # Fused log-softmax + gather: no second [N, vocab] tensor kept for backward.
    logp = -F.cross_entropy(logits, targets[mask], reduction="none")
    return logp, rows


def causal_completion_logits(model, input_ids, attention_mask, mask) -> torch.Tensor:
    """[N, V] float logits at the positions `mask` [B, T-1] selects (those predicting completion tokens).
    Unsharded models (plain or DDP): the LM head on those rows only. FSDP / DeepSpeed: full logits
    from the model's own forward, then selected."""
    if is_sharded(model):
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return at_least_fp32(logits[:, :-1][mask])
    hidden = final_hidden_states(model, input_ids, attention_mask)
    return at_least_fp32(unwrap_model(model).get_output_embeddings()(hidden[:, :-1][mask]))


def sequence_logps(model, input_ids, attention_mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion log-probs [B], number of completion tokens [B])."""
    tok_logp, rows = completion_token_logps(model, input_ids, attention_mask, labels)
    b = labels.size(0)
    sums = torch.zeros(b, dtype=tok_logp.dtype, device=tok_logp.device).index_add(0, rows, tok_logp)
    lens = torch.zeros(b, dtype=tok_logp.dtype, device=tok_logp.device).index_add(0, rows, torch.ones_like(tok_logp))
    return sums, lens


def full_sequence_logps_reference(model, input_ids, attention_mask, labels):
    """Straightforward full-logits version, kept as the test oracle for `sequence_logps`."""
    if is_seq2seq(model):  # HF's own forward with labels: decoder logits align with labels (no shift)
        logits = at_least_fp32(model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits)
        mask = labels != -100
        lp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (lp * mask).sum(-1), mask.sum(-1).to(lp.dtype)
    logits = at_least_fp32(model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1])
    targets = labels[:, 1:]
    mask = targets != -100
    lp = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1), mask.sum(-1).to(lp.dtype)


def pad_batch(seqs: list[list[int]], pad_value: int, side: str = "right") -> torch.Tensor:
    n = max(len(s) for s in seqs)
    out = torch.full((len(seqs), n), pad_value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "right":
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        else:
            out[i, n - len(s):] = torch.tensor(s, dtype=torch.long)
    return out


def collate_completion(features: list[dict], pad_id: int, *, seq2seq: bool = False) -> dict[str, torch.Tensor]:
    """features: {'prompt_ids', 'completion_ids'} -> right-padded input_ids/attention_mask/labels.

    Decoder-only: one sequence prompt + completion, labels -100 on the prompt. Seq2seq: input_ids are
    the prompts (encoder), labels the completions (decoder targets), -100 on padding.
    """
    if seq2seq:
        enc = [f["prompt_ids"] for f in features]
        return {
            "input_ids": pad_batch(enc, pad_id),
            "attention_mask": pad_batch([[1] * len(s) for s in enc], 0),
            "labels": pad_batch([f["completion_ids"] for f in features], -100),
        }
    ids = [f["prompt_ids"] + f["completion_ids"] for f in features]
    labels = [[-100] * len(f["prompt_ids"]) + f["completion_ids"] for f in features]
    input_ids = pad_batch(ids, pad_id)
    return {
        "input_ids": input_ids,
        "attention_mask": pad_batch([[1] * len(s) for s in ids], 0),
        "labels": pad_batch(labels, -100),
    }


def sft_loss_from_batch(model, batch, num_items_in_batch=None) -> tuple[torch.Tensor, int]:
    """Token-level cross-entropy over completion tokens (sum / number of tokens)."""
    tok_logp, _ = completion_token_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    n = tok_logp.numel()
    denom = num_items_in_batch if num_items_in_batch is not None else max(n, 1)
    if isinstance(denom, torch.Tensor):
        denom = denom.to(tok_logp.device)
    return -tok_logp.sum() / denom, n


__all__ = ["F", "collate_completion", "completion_token_logps", "is_seq2seq", "pad_batch", "sequence_logps"]
