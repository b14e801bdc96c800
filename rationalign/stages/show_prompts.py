"""stage=show_prompts: what every model sees, before any GPU hour is spent.

For `show_prompts.records_per_task` record(s) of each selected task (`task=all` for the eight), print
exactly the strings that reach the models, laid out as `prompts.layout` says, with their token counts
under the configured tokenizer:

- the writing assistant's prompt (SFT, sampling, alignment, evaluation: Table 8 + Table 12) and its
  SFT target (suggestion + rationale joined per prompts.response); the no-rationale prompt that the
  K-fold models and the sft_no_rationale baseline read (Table 8 + our plain instruction);
- the reward model's input (Table 7 + Table 11), with the gold revision as the hypothesis;
- the rationale teacher's prompt (Fig. 3 + Table 10 + the record's ERRANT edits).

Only the tokenizer is loaded (no model weights; the embedded model's tokenizer comes from its one-time
conversion cache). Nothing is trained and nothing is written: the stage has no artifact dir.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rationalign.cfg_access import cache_dir
from rationalign.data.records import Record, load_records
from rationalign.stages.base import Context, register_stage
from rationalign.stages.common import completion, layout, user_message, with_rationale

RULE = "=" * 100


def pick_records(cfg, records: list[Record]) -> list[Record]:
    """The first `records_per_task` records with a gold revision, per selected task, in task order."""
    n = int(cfg.show_prompts.records_per_task)
    out = []
    for task in cfg.task.names:
        out.extend([r for r in records if r.task == task and r.target][:n])
    return out


def sft_rationales(ctx: Context, records: list[Record]) -> tuple[dict[str, str], str]:
    """(id -> rationale, where it came from): the rationalize stage's own output when it has run, the
    template source's rationale when that is the configured source (exactly what rationalize writes),
    otherwise nothing (a teacher is never called from here)."""
    cfg = ctx.cfg
    if ctx.is_done("rationalize"):
        ids = {r.id for r in records}
        got = {r.id: r.rationale for r in load_records(ctx.stage_dir("rationalize") / "d_e.jsonl")
               if r.id in ids and r.rationale}
        return got, f"stage rationalize ({ctx.stage_dir('rationalize')})"
    if cfg.rationale.name == "template":
        from rationalign.rationale import build_source

        texts = build_source("template").explain(records)
        return {r.id: t for r, t in zip(records, texts) if t}, "rationale=template"
    return {}, f"rationale={cfg.rationale.name} (not run: stage=rationalize would ask it)"


def _counter(tok, seq2seq: bool):
    from rationalign.training.chat import encoder_ids

    def count(text: str) -> int:
        if seq2seq:
            return len(encoder_ids(tok, text, 1 << 30))
        return len(tok(text, add_special_tokens=False)["input_ids"])

    return count


def blocks_for(ctx: Context, tok, record: Record, rationale: str | None, rationale_from: str,
               seq2seq: bool) -> list[dict[str, Any]]:
    """The strings one record puts before each model, each with a title and a token count."""
    from rationalign.edits import extract_edits
    from rationalign.rationale.prompt import teacher_prompt
    from rationalign.training.reward import RMTemplate

    cfg = ctx.cfg
    lay = layout(cfg)
    count = _counter(tok, seq2seq)
    max_len = int(cfg.model.max_length)
    use_r = bool(cfg.sft.use_rationale) and with_rationale(cfg)
    out = []

    prompt = lay.text(tok, user_message(cfg, record, rationale=use_r), seq2seq=seq2seq)
    out.append({"key": "wa_prompt", "title": "writing assistant: prompt (SFT, sample, align, evaluate; paper Table 8 + Table 12)",
                "text": prompt, "tokens": count(prompt)})
    if use_r and not rationale:
        target = completion(cfg, record.target, "<the rationale from " + rationale_from + ">")
        note = "placeholder rationale: " + rationale_from
    else:
        target = completion(cfg, record.target, rationale if use_r else None)
        note = f"rationale from {rationale_from}" if use_r else "no rationale"
    n_target = len(tok(target, add_special_tokens=False)["input_ids"]) + 1
    over = f"; prompt + target = {out[0]['tokens'] + n_target} > model.max_length={max_len}, the prompt's start " \
           "is cut in training" if out[0]["tokens"] + n_target > max_len else ""
    out.append({"key": "wa_target", "title": f"writing assistant: SFT target completion ({note}; +1 eos token{over})",
                "text": target, "tokens": n_target})
    plain = lay.text(tok, user_message(cfg, record, rationale=False), seq2seq=seq2seq)
    out.append({"key": "wa_prompt_no_rationale", "title": "writing assistant without rationale: prompt (K-fold models, sft_no_rationale baseline)",
                "text": plain, "tokens": count(plain)})

    rm = RMTemplate.from_cfg(cfg.prompts, cfg.task)
    rm_text = rm.layout.text(tok, rm.user_message(record.task, record.instruction, record.source, record.target),
                             seq2seq=seq2seq)
    out.append({"key": "rm_input", "title": "reward model input (paper Table 7 + Table 11; hypothesis = the gold revision)",
                "text": rm_text, "tokens": count(rm_text)})

    edits = extract_edits([record.source], [record.target])[0]
    teacher = teacher_prompt(cfg.prompts, cfg.task)(record, edits)  # what the rationalize stage sends
    local = cfg.rationale.name == "local"
    if local:  # a local teacher is one of our models: its prompt is laid out like theirs
        teacher = lay.text(tok, teacher, seq2seq=seq2seq)
    out.append({"key": "teacher_prompt", "title": "rationale teacher prompt (paper Fig. 3 + Table 10; "
                + ("rationale=local: laid out by prompts.layout)" if local else
                   "rationale=teacher sends it as the chat user message)"),
                "text": teacher, "tokens": count(teacher)})
    return out


def render_block(block: dict[str, Any]) -> str:
    return f"---- {block['title']} [{block['tokens']} tokens] ----\n{block['text']}\n"


@register_stage("show_prompts", artifacts=False)
def run_show_prompts(ctx: Context, out=None) -> dict:
    """Print the exact prompt strings and their token counts for one record of each task; train nothing."""
    from rationalign.data.splits import load_split
    from rationalign.models import architecture, load_tokenizer

    cfg = ctx.cfg
    if cfg.show_prompts.split not in ("labeled", "test"):
        raise ValueError(f"show_prompts.split={cfg.show_prompts.split}: expected labeled or test")
    records = pick_records(cfg, load_split(cfg, str(cfg.show_prompts.split)))
    missing = [t for t in cfg.task.names if not any(r.task == t for r in records)]
    tok = load_tokenizer(cfg.model, cache_dir(cfg))
    seq2seq = architecture(cfg.model) == "seq2seq"
    rationales, source = sft_rationales(ctx, records) if with_rationale(cfg) else ({}, "")
    counts = {}
    w = sys.stdout.write
    w(f"{RULE}\nshow_prompts: model={cfg.model.name} (tokenizer only), prompts.layout={cfg.prompts.layout}, "
      f"rationale.position={cfg.rationale.position}, split={cfg.show_prompts.split}\n")
    for r in records:
        blocks = blocks_for(ctx, tok, r, rationales.get(r.id), source, seq2seq)
        w(f"{RULE}\ntask {r.task} (record {r.id})\n{RULE}\n")
        for b in blocks:
            w(render_block(b))
        counts[r.id] = {b["key"]: b["tokens"] for b in blocks}
    for t in missing:
        w(f"{RULE}\ntask {t}: no record with a gold revision in split {cfg.show_prompts.split}\n")
    w(f"{RULE}\ntoken counts: {json.dumps(counts)}\n")
    sys.stdout.flush()
    return {"counts": counts, "missing_tasks": missing}
