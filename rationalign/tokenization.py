"""PTB-style tokens for GEC scoring: CoNLL-2014 evaluated the way GEC papers do.

The CoNLL-2014 M2 files hold tokenised text ("I do n't know ."), tokenised with NLTK's word tokenizer
(the shared task's preprocessing). A writing assistant should read and write natural text, so:

- `detokenize(tokens)`: the model's input, detokenised with sacremoses' Moses detokenizer after
  joining PTB's split negation ("I do n't know ." -> "I don't know."); it only removes spaces, so
  every detokenised word is a run of source tokens;
- `retokenize(text, source_tokens=...)`: the model's suggestion tokenised like the gold before M2
  scoring, with NLTK's Treebank-style word tokenizer (`nltk`, the CoNLL convention: "check-up" and
  "he/she" stay one token, "don't" -> "do n't") or spaCy's (`spacy`, the tokenizer ERRANT uses).
  With the source's tokens given, every word the suggestion leaves unchanged keeps the source's own
  tokens: the gold's tokenisation is not always one a tokenizer reproduces ("'vertically'" as one
  token, "this ,they"), and a model must not be charged with edits it never made. Changed words are
  tokenised by the tokenizer.

The two steps are independent options of the M2 reader (data spec keys `detokenize`, `retokenize`,
`keep_source_tokens`), recorded in each record's meta["m2_tokenization"] and in the report.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Sequence

DETOKENIZERS = ("moses", "none")
_CLITICS = {"'s", "'m", "'ll", "'re", "'ve", "'d"}
_SHIELD = "\ue000"  # a private-use character: never in the text
RETOKENIZERS = ("nltk", "spacy", "none")


def check_methods(detokenize: str, retokenize: str, where: str = "m2") -> None:
    if detokenize not in DETOKENIZERS:
        raise ValueError(f"{where}: detokenize={detokenize!r}: expected one of {', '.join(DETOKENIZERS)}")
    if retokenize not in RETOKENIZERS:
        raise ValueError(f"{where}: retokenize={retokenize!r}: expected one of {', '.join(RETOKENIZERS)}")


@functools.lru_cache(maxsize=1)
def _moses():
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang="en")


def detokenize(tokens: Sequence[str], method: str = "moses") -> str:
    """Natural text from PTB-style tokens (`none`: the tokens joined by spaces)."""
    if method == "none":
        return " ".join(tokens)
    if method != "moses":
        raise ValueError(f"detokenize={method!r}: expected one of {', '.join(DETOKENIZERS)}")
    # Moses re-attaches 's 'm 'll 're 've 'd but not PTB's split negation ("do n't"): join that first.
    # It also glues any other token starting with an apostrophe to the word before ("extended
    # 'vertically'" -> "extended'vertically'"): such tokens are shielded and restored afterwards.
    # unescape=False: the M2 text has no XML escapes, and characters must stay as they are.
    joined: list[str] = []
    for t in tokens:
        if t.lower() == "n't" and joined:
            joined[-1] += t
        elif t.startswith("'") and len(t) > 1 and t.lower() not in _CLITICS:
            joined.append(_SHIELD + t[1:])
        else:
            joined.append(t)
    return _moses().detokenize(joined, unescape=False).replace(_SHIELD, "'")


@functools.lru_cache(maxsize=1)
def _nltk():
    from nltk.tokenize import TreebankWordTokenizer

    return TreebankWordTokenizer()


def _spacy():
    from rationalign.nlp_models import spacy_tokenizer

    return spacy_tokenizer()


def tokenize(text: str, method: str = "nltk") -> list[str]:
    if method == "none":
        return text.split()
    if method == "spacy":
        return [t.text for t in _spacy()(text) if not t.is_space]
    if method != "nltk":
        raise ValueError(f"retokenize={method!r}: expected one of {', '.join(RETOKENIZERS)}")
    # Treebank writes `` and '' for double quotes; the CoNLL text keeps the plain " character.
    return ['"' if t in ("``", "''") and t not in text else t for t in _nltk().tokenize(text)]


def _word_groups(words: Sequence[str], tokens: Sequence[str]) -> list[list[str]] | None:
    """The source tokens behind each detokenised word, or None when they do not line up."""
    groups, i = [], 0
    for w in words:
        group, joined = [], ""
        while i < len(tokens) and len(joined) < len(w):
            group.append(tokens[i])
            joined += tokens[i]
            i += 1
        if joined != w:
            return None
        groups.append(group)
    return groups if i == len(tokens) else None


def retokenize(text: str, method: str = "nltk", source_tokens: Sequence[str] | None = None,
               detokenize_method: str = "moses") -> list[str]:
    """The suggestion as gold-style tokens (see the module docstring)."""
    if source_tokens is None:
        return tokenize(text, method)
    words = detokenize(source_tokens, detokenize_method).split()
    groups = _word_groups(words, source_tokens)
    if groups is None:  # the detokenizer changed characters: no alignment to trust
        return tokenize(text, method)
    hyp = text.split()
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, words, hyp, autojunk=False).get_opcodes():
        if op == "equal":
            for g in groups[i1:i2]:
                out.extend(g)
        elif j2 > j1:  # replaced or inserted words: tokenised as the gold would be
            out.extend(tokenize(" ".join(hyp[j1:j2]), method))
    return out


def m2_hypothesis(meta: dict | None, prediction: str) -> str:
    """A prediction for a record read from M2, tokenised like its gold (meta["m2_tokenization"])."""
    tk = (meta or {}).get("m2_tokenization")
    if not tk or tk.get("retokenize", "none") == "none":
        return prediction
    src = tk.get("source_tokens") if tk.get("keep_source_tokens") else None
    return " ".join(retokenize(prediction, tk["retokenize"], src.split() if src else None,
                               tk.get("detokenize", "moses")))
