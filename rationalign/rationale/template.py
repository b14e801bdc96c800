"""`template`: rule-based rationales from ERRANT edit types, one sentence per edit, in exactly the
paper's form ("The word X should be deleted/inserted/replaced by Y because ...", Table 12 / Fig. 3). Offline, deterministic, and the
default, so the whole pipeline runs without a teacher LLM."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rationalign.edits import Edit
from rationalign.rationale.base import RationaleSource, register_source

# Reasons keyed by (op, category); (None, category) applies to any op. Grammar-specific types keep
# their reason whatever the task: a spelling fix is a spelling fix in a simplification too.
_REASONS: dict[tuple[str | None, str], str] = {
    (None, "VERB:SVA"): "the verb must agree with its subject (subject-verb agreement)",
    (None, "VERB:TENSE"): "the verb tense must fit the time the sentence describes",
    (None, "VERB:FORM"): "the sentence needs a different form of the verb here (infinitive, gerund or participle)",
    (None, "VERB:INFL"): "the verb is inflected incorrectly",
    (None, "NOUN:NUM"): "the noun must be singular or plural to agree with its context",
    (None, "NOUN:INFL"): "the plural of the noun is formed incorrectly",
    (None, "NOUN:POSS"): "the possessive form of the noun is needed here",
    (None, "ADJ:FORM"): "the comparative or superlative form of the adjective is incorrect",
    (None, "SPELL"): "it is misspelled",
    (None, "ORTH"): "the capitalisation or spacing is incorrect",
    (None, "MORPH"): "the word needs a different form (part of speech) for its role in the sentence",
    (None, "CONTR"): "the contraction is used incorrectly",
    (None, "WO"): "the words are in the wrong order",
    (None, "PART"): "the verb takes a different particle",
    ("R", "DET"): "a different determiner is correct here",
    ("M", "DET"): "a determiner is needed before the noun",
    ("U", "DET"): "the determiner is not needed here",
    ("R", "PREP"): "a different preposition is required in this context",
    ("M", "PREP"): "a preposition is required here",
    ("U", "PREP"): "the preposition is not needed here",
    ("R", "PUNCT"): "the wrong punctuation mark is used",
    ("M", "PUNCT"): "punctuation is required here",
    ("U", "PUNCT"): "the punctuation mark is not needed here",
    ("R", "PRON"): "a different pronoun is correct here",
    ("M", "PRON"): "a pronoun is needed here",
    ("U", "PRON"): "the pronoun is not needed here",
    ("R", "CONJ"): "a different conjunction correctly links the clauses",
    ("M", "CONJ"): "a conjunction is needed to link the clauses",
    ("U", "CONJ"): "the conjunction is not needed here",
}

# Content-word and catch-all types say nothing about *why*; there the task gives the reason.
_GENERIC = {"OTHER", "UNK", "VERB", "NOUN", "ADJ", "ADV"}

# task -> (reason for a replacement/insertion, reason for a deletion, no-edit rationale)
_TASK_REASONS: dict[str, tuple[str, str, str]] = {
    "gec": ("it corrects a grammatical error",
            "it is unnecessary and makes the sentence ungrammatical",
            "The sentence is already grammatically correct, so no change is needed."),
    "fluency": ("it makes the text more fluent", "removing it makes the text more fluent",
                "The text is already fluent, so no change is needed."),
    "clarity": ("it makes the text clearer", "removing it makes the text clearer and more concise",
                "The text is already clear, so no change is needed."),
    "coherence": ("it makes the text more coherent", "removing it makes the text more coherent",
                  "The text is already coherent, so no change is needed."),
    "paraphrase": ("it rephrases the text while keeping its meaning",
                   "the paraphrase keeps the meaning without it",
                   "The text needs no change to keep its meaning."),
    "simplification": ("it makes the sentence simpler", "removing it makes the sentence simpler",
                       "The sentence is already simple, so no change is needed."),
    "formality": ("it makes the text more formal", "removing it makes the text more formal",
                  "The text is already formal, so no change is needed."),
    "informality": ("it makes the text more informal", "removing it makes the text more informal",
                    "The text is already informal, so no change is needed."),
    "neutralization": ("it replaces subjective or biased wording with neutral wording",
                       "it expresses a subjective or biased view, and removing it makes the text neutral",
                       "The text is already neutral, so no change is needed."),
}
_DEFAULT_TASK = ("it improves the text as the instruction asks",
                 "removing it improves the text as the instruction asks",
                 "The text already satisfies the instruction, so no change is needed.")
_ALIASES = {"grammar": "gec", "neutralize": "neutralization", "neutralisation": "neutralization",
            "simplify": "simplification", "formal": "formality", "paraphrasing": "paraphrase"}


def task_key(task: str, instruction: str = "") -> str:
    key = _ALIASES.get(task.lower(), task.lower())
    # Formality data sets go both ways; only the instruction says which.
    if key == "formality" and re.search(r"\binformal\b", instruction, re.IGNORECASE) \
            and not re.search(r"\bformal\b", instruction, re.IGNORECASE):
        key = "informality"
    return key


def edit_reason(edit: Edit, task: str = "gec", instruction: str = "") -> str:
    """The 'because ...' clause for one edit."""
    op, cat = edit.op, edit.category
    if cat not in _GENERIC:
        reason = _REASONS.get((op, cat)) or _REASONS.get((None, cat))
        if reason:
            return reason
    keep_or_add, delete, _ = _TASK_REASONS.get(task_key(task, instruction), _DEFAULT_TASK)
    # An empty corrected side means a deletion even when ERRANT types it UNK.
    return delete if (op == "U" or not edit.c_str) else keep_or_add


def edit_prefix(source: str, target: str) -> str:
    """The paper's template (Table 12, Fig. 3) for one edit up to its reason: 'The word "X" should be
    deleted/inserted/replaced by "Y" because', with X and Y in double quotes as in the paper's own
    example output (Fig. 10: 'The word "who" should be replaced by "that" because ...'). "The word"
    stays for multi-word spans and punctuation too, and a word-order edit is a replacement, so every
    sentence has exactly the template's form. Grounded decoding (rationale/grounded.py) forces this
    prefix and lets the model write the reason."""
    if not source:
        return f'The word "{target}" should be inserted because'
    if not target:
        return f'The word "{source}" should be deleted because'
    return f'The word "{source}" should be replaced by "{target}" because'


def edit_sentence(edit: Edit, task: str = "gec", instruction: str = "") -> str:
    """One rationale sentence for one edit: its template prefix (edit_prefix) and the rule's reason."""
    return f"{edit_prefix(edit.o_str, edit.c_str)} {edit_reason(edit, task, instruction)}."


def no_change_sentence(task: str = "gec", instruction: str = "") -> str:
    """The rationale of a revision that changes nothing, e.g. 'The text is already clear, so no change is needed.'"""
    return _TASK_REASONS.get(task_key(task, instruction), _DEFAULT_TASK)[2]


def template_rationale(edits: Sequence[Edit], task: str = "gec", instruction: str = "") -> str:
    if not edits:
        return no_change_sentence(task, instruction)
    return " ".join(edit_sentence(e, task, instruction) for e in edits)


@dataclass
class TemplateConfig:
    name: str = "template"


@register_source("template", TemplateConfig)
class TemplateSource(RationaleSource):
    needs_edits = True
    needs_target = True

    def __init__(self, config: TemplateConfig | None = None) -> None:
        super().__init__()
        self.config = config or TemplateConfig()

    def _explain(self, records, edits):
        return [template_rationale(e, r.task, r.instruction) for r, e in zip(records, edits)], {}
