"""Control tokens: one per (reward, bin), added to the tokenizer and embeddings, and the prompt
prefix that conditions the policy on them.

The prefix goes at the start of the *user message*, so every engine (which applies the chat
template to user messages) sees it without changes. The tokens are special tokens: they are never
split, and `skip_special_tokens` keeps them out of decoded outputs.

`quark.json` beside the saved adapter records rewards, bins, token order and the init adapter, so
`inference_prefix` / `load_quark_policy` rebuild exactly what training used (stage=evaluate calls them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

META = "quark.json"


def control_token(reward: str, b: int) -> str:
    return f"<|quark_{reward}_{b}|>"


def all_control_tokens(rewards: Sequence[str], n_bins: int) -> list[str]:
    return [control_token(r, b) for r in rewards for b in range(n_bins)]


def control_prefix(bins: dict[str, int], order: Sequence[str]) -> str:
    """Tokens of the rewards in `bins`, in `order` (rewards not in bins, e.g. not yet added in the
    additive variant, are left out)."""
    return "".join(control_token(r, bins[r]) for r in order if r in bins)


def best_prefix(active: Sequence[str], order: Sequence[str], n_bins: int) -> str:
    return control_prefix({r: n_bins - 1 for r in active}, order)


def describe(token: str) -> str:
    """Plain words for a control token ("<|quark_task_metric_4|>" -> "task metric 4"): its initial
    embedding is the mean of these words' embeddings."""
    body = token.removeprefix("<|quark_").removesuffix("|>")
    reward, _, b = body.rpartition("_")
    return f"{reward.replace('_', ' ')} {b}"


def add_control_tokens(model, tokenizer, tokens: Sequence[str]) -> list[int]:
    """Add the tokens, grow the embeddings, and start each new row at the mean embedding of its
    description's words (`describe`). Rows must start *distinct*: LoRA can only condition on tokens
    whose embeddings differ, and starting every row at the vocabulary mean left the bins of a reward
    indistinguishable after a round of training (measured: best-bin and worst-bin prefixes gave the
    same reward means). Words keep the rows in the embedding distribution. Returns the token ids."""
    import torch

    new = [t for t in tokens if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_tokens(list(new), special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    old = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > old:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            out = model.get_output_embeddings()
            untied = out is not None and out.weight.data_ptr() != emb.data_ptr()
            for t, i in zip(tokens, ids):
                if i < old:
                    continue
                words = [w for w in tokenizer(" " + describe(t), add_special_tokens=False)["input_ids"] if w < old]
                emb[i] = emb[words].mean(0) if words else emb[:old].mean(0)
                if untied:  # never generated: a neutral output row
                    out.weight[i] = out.weight[:old].mean(0)
    return list(ids)


def write_meta(adapter_dir: Path, meta: dict) -> None:
    from rationalign.io import atomic_write_json

    atomic_write_json(Path(adapter_dir) / META, meta)


def read_meta(quark_dir: str | Path) -> dict:
    """quark.json from a quark stage dir or its adapter/ dir."""
    p = Path(quark_dir)
    for cand in (p / META, p / "adapter" / META):
        if cand.exists():
            return json.loads(cand.read_text())
    raise FileNotFoundError(f"{p}: no {META} (not a quark stage or adapter dir)")


def inference_prefix(quark_dir: str | Path) -> str:
    """The user-message prefix for inference: the best bin of every reward the policy was last
    trained with, in training order. stage=evaluate prepends it to each user message."""
    m = read_meta(quark_dir)
    return best_prefix(m["active_rewards"], m["token_order"], int(m["n_bins"]))


def adapter_dir_of(quark_dir: str | Path) -> Path:
    p = Path(quark_dir)
    return p / "adapter" if (p / "adapter" / META).exists() else p


def load_quark_policy(model_cfg: Any, quark_dir: str | Path, cache_dir: str | Path | None = None,
                      *, trainable: bool = False):
    """(model, tokenizer) of a trained QUARK policy: base, SFT adapter merged in (when init=sft),
    embeddings resized to the saved tokenizer, then the QUARK adapter (LoRA + control-token rows)."""
    from transformers import AutoTokenizer

    from rationalign.models import load_base_model

    adir = adapter_dir_of(quark_dir)
    meta = read_meta(adir)
    tok = AutoTokenizer.from_pretrained(str(adir))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not (adir / "adapter_config.json").exists():  # full fine-tuning saved a whole model
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        enc_dec = getattr(AutoConfig.from_pretrained(str(adir)), "is_encoder_decoder", False)
        model = (AutoModelForSeq2SeqLM if enc_dec else AutoModelForCausalLM).from_pretrained(str(adir))
    else:
        from peft import PeftModel

        model, _ = load_base_model(model_cfg, cache_dir)
        if meta.get("init_adapter"):
            model = PeftModel.from_pretrained(model, meta["init_adapter"]).merge_and_unload()
        model.resize_token_embeddings(len(tok), mean_resizing=False)  # rows come from the adapter
        model = PeftModel.from_pretrained(model, str(adir), is_trainable=trainable)
    if not trainable:
        # Merged for inference: peft's trainable-token layers copy the whole embedding matrix on
        # every forward, which doubles generation time.
        model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        model.eval()
    return model, tok


@contextmanager
def merged(model):
    """Adapters (LoRA + control-token rows) merged into the weights for the duration of a
    generation pass and unmerged after: same outputs up to float rounding, about twice as fast."""
    if not hasattr(model, "merge_adapter"):
        yield model
        return
    model.merge_adapter()
    try:
        yield model
    finally:
        model.unmerge_adapter()


def is_quark_dir(model_dir: str | Path | None) -> bool:
    return model_dir is not None and (adapter_dir_of(model_dir) / META).exists()


def load_for_inference(model_cfg: Any, model_dir: str | Path | None, cache_dir: str | Path | None = None):
    """(model, tokenizer, user-message prefix) for any system dir: a QUARK policy gets its control
    tokens and best-bin prefix; anything else loads as before (models.load_trained) with prefix "".
    This is the one call stage=evaluate needs."""
    if is_quark_dir(model_dir):
        model, tok = load_quark_policy(model_cfg, model_dir, cache_dir)
        return model, tok, inference_prefix(model_dir)
    from rationalign.models import load_trained

    model, tok = load_trained(model_cfg, model_dir, cache_dir)
    return model, tok, ""
