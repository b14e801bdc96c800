"""Edit-grounded rationale decoding (`rationale_decoding=grounded` of evaluate, predict and serve).

Free decoding (the paper's, the default) lets the model write suggestion and rationale in one go,
so nothing stops the rationale from explaining an edit the suggestion never makes. Grounded
decoding writes the rationale from the edits actually made:

1. the suggestion is decoded greedily as in free decoding, up to the rationale marker (or taken from
   a free run's output: greedy decoding of the same prompt gives the same suggestion);
2. its ERRANT edits against the source (explanations.span_edits, the spans the faithfulness metric
   and the page use);
3. for each edit, in order, the paper's template prefix ('The word "X" should be replaced by "Y"
   because', rationale/template.edit_prefix: the sentence form the training rationales use) is forced
   after the answer's text up to its rationale, and the model writes the reason up to the end of the
   sentence (., !, ? or a line break), at most `reason_max_new_tokens` tokens;
4. a suggestion without edits gets the task's no-change sentence of the template source.

Each edit's reason is conditioned on the prompt, the suggestion and its own prefix, not on the
reasons written for the other edits: that is what lets every edit of every text decode in one
batch (Engine.continue_ids: on engine=hf the prompt and suggestion are computed once per text). The
rationale is the list of (edit, sentence) pairs; its flat text is their join, in edit order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rationalign.edits import Edit
from rationalign.explanations import SpanEdit, span_edits
from rationalign.prompt_config import response_format
from rationalign.rationale.template import edit_prefix, edit_reason, no_change_sentence
from rationalign.responses import parse_response, parse_stopped_response

MODES = ("free", "grounded")
# A reason ends at the first of these; the line break is not kept.
SENTENCE_ENDS = (".", "!", "?", "\n")


@dataclass(frozen=True)
class GroundedSentence:
    edit: SpanEdit | None  # None: the no-change sentence of a suggestion without edits
    sentence: str
    reason: str  # what follows "because" ("" for the no-change sentence)
    reason_from: str  # model | template (the model wrote no reason) | no_edit

    def to_dict(self) -> dict:
        return {"edit": self.edit.to_dict() if self.edit else None, "sentence": self.sentence,
                "reason": self.reason, "reason_from": self.reason_from}


@dataclass(frozen=True)
class GroundedAnswer:
    suggestion_output: str  # the model text the suggestion was read from
    suggestion: str  # the source when the model proposed nothing
    ok: bool  # the suggestion was well formed (what free decoding's parser says of it)
    reason: str
    sentences: list[GroundedSentence]
    output: str  # suggestion and grounded rationale in the system's response layout

    @property
    def rationale(self) -> str:
        return " ".join(s.sentence for s in self.sentences)


def check_mode(mode: str, where: str) -> str:
    if mode not in MODES:
        raise ValueError(f"{where}={mode}: expected one of {', '.join(MODES)}")
    return mode


def read_suggestion(output: str, source: str, position: str, prompts_cfg=None) -> tuple[str, bool, str]:
    """(suggestion, ok, reason) of a model output whose rationale will be replaced. "after": the text
    before the rationale marker, well formed when the marker was reached (parse_stopped_response, so
    an output decoded past the marker reads the same as one stopped there); "before": the text after
    the suggestion marker. An empty suggestion proposes no change, as in stage=evaluate."""
    if position == "after":
        p = parse_stopped_response(output, prompts_cfg)
        ok, reason = p.ok, p.reason
    elif position == "before":
        p = parse_response(output, "before", prompts_cfg)
        ok, reason = bool(p.suggestion), ("" if p.suggestion else p.reason)
    else:
        raise ValueError(f"grounded rationales need a system that writes one (rationale position {position!r})")
    if not p.suggestion:
        return source, False, reason or "no suggestion: source kept"
    return p.suggestion, ok, reason


def decode_suggestions(engine, prompts: Sequence[str], *, position: str, prompts_cfg=None,
                       max_new_tokens: int) -> list[str]:
    """Greedy outputs holding the suggestion: stopped at the rationale marker when the rationale comes
    after it (the rationale is written by grounded decoding, so decoding it freely would be wasted)."""
    stop = [response_format(prompts_cfg)["rationale_marker"]] if position == "after" else None
    return engine.generate(list(prompts), temperature=0, max_new_tokens=max_new_tokens, stop=stop)


def rationale_context(suggestion: str, position: str, prompts_cfg=None) -> str:
    """The answer's text up to its first rationale sentence, as format_response lays it out."""
    r = response_format(prompts_cfg)
    if position == "after":
        return f"{suggestion}{r['separator']}{r['rationale_marker']} "
    return f"{r['rationale_marker']} "


def clean_reason(text: str) -> str:
    """The model's reason up to the end of its first sentence, ending in . ! or ? ("" if it wrote none).
    Unbalanced double quotes are dropped: they would make the sentence splitter (explanations.py) read
    past the end of this sentence."""
    cut = min((i for i in (text.find(c) for c in SENTENCE_ENDS) if i >= 0), default=len(text))
    reason = text[:cut + (cut < len(text) and text[cut] != "\n")].strip()
    if reason.count('"') % 2 or reason.count("\u201c") != reason.count("\u201d"):
        reason = re.sub('["\u201c\u201d]', "", reason).strip()
    if not reason.rstrip(".!?").strip():
        return ""
    return reason if reason[-1] in ".!?" else reason + "."


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    n = min(len(r) for r in rows) - 1  # every tail keeps at least one token
    for i in range(max(n, 0)):
        if any(r[i] != rows[0][i] for r in rows[1:]):
            return i
    return max(n, 0)


def grounded_sentences(engine, prompts: Sequence[str], sources: Sequence[str], suggestions: Sequence[str],
                       tasks: Sequence[str], instructions: Sequence[str] | None = None, *, position: str,
                       prompts_cfg=None, reason_max_new_tokens: int) -> list[list[GroundedSentence]]:
    """One sentence per ERRANT edit of each suggestion (or its no-change sentence), reasons decoded by
    `engine` in one batch over all edits of all texts."""
    if getattr(engine, "seq2seq", False):
        raise ValueError("rationale_decoding=grounded: encoder-decoder models are not supported (the forced "
                         "prefix continues the decoder's answer); use rationale_decoding=free")
    instructions = list(instructions) if instructions is not None else [""] * len(sources)
    edits = span_edits(list(sources), list(suggestions))
    prompt_ids = engine.encode(list(prompts))
    groups, owners = [], []
    for i, (sug, text_edits) in enumerate(zip(suggestions, edits)):
        if not text_edits:
            continue
        ctx = rationale_context(sug, position, prompts_cfg)
        full = [engine.tok(ctx + edit_prefix(e.source, e.target), add_special_tokens=False)["input_ids"]
                for e in text_edits]
        # Tokenised whole, as training tokenises the answer; the part all edits share is the prefix.
        k = _common_prefix(full)
        groups.append((list(prompt_ids[i]) + full[0][:k], [f[k:] for f in full]))
        owners.append(i)
    reasons = engine.continue_ids(groups, max_new_tokens=reason_max_new_tokens, stop=list(SENTENCE_ENDS)) \
        if groups else []
    by_text = dict(zip(owners, reasons))
    out = []
    for i, text_edits in enumerate(edits):
        if not text_edits:
            out.append([GroundedSentence(None, no_change_sentence(tasks[i], instructions[i]), "", "no_edit")])
            continue
        row = []
        for e, raw in zip(text_edits, by_text[i]):
            reason, source = clean_reason(raw), "model"
            if not reason:  # the model ended the sentence at once: the template's rule gives the reason
                as_edit = Edit(e.source_tokens[0], e.source_tokens[1], e.source, e.target, e.type)
                reason, source = edit_reason(as_edit, tasks[i], instructions[i]) + ".", "template"
            row.append(GroundedSentence(e, f"{edit_prefix(e.source, e.target)} {reason}", reason, source))
        out.append(row)
    return out


def grounded_answers(engine, prompts: Sequence[str], sources: Sequence[str], tasks: Sequence[str],
                     instructions: Sequence[str] | None = None, *, position: str, prompts_cfg=None,
                     max_new_tokens: int, reason_max_new_tokens: int,
                     outputs: Sequence[str] | None = None) -> list[GroundedAnswer]:
    """Suggestions (decoded, or read from `outputs` of the same greedy decoding) with grounded rationales."""
    from rationalign.responses import format_response

    if outputs is None:
        outputs = decode_suggestions(engine, prompts, position=position, prompts_cfg=prompts_cfg,
                                     max_new_tokens=max_new_tokens)
    read = [read_suggestion(o, s, position, prompts_cfg) for o, s in zip(outputs, sources)]
    sentences = grounded_sentences(engine, prompts, sources, [r[0] for r in read], tasks, instructions,
                                   position=position, prompts_cfg=prompts_cfg,
                                   reason_max_new_tokens=reason_max_new_tokens)
    answers = []
    for o, (sug, ok, why), sents in zip(outputs, read, sentences):
        text = " ".join(s.sentence for s in sents)
        answers.append(GroundedAnswer(o, sug, ok, why, sents, format_response(sug, text, position, prompts_cfg)))
    return answers
