"""Formality accuracy: the share of outputs a classifier judges formal (1) or informal (0).

Two classifiers behind one interface (``predict(texts) -> list[int]``, 1 = formal):
- :class:`HFFormalityClassifier`: any Hugging Face sequence-classification model (the paper's
  setting uses a RoBERTa formality classifier); the label meaning "formal" is read from
  ``config.id2label`` when it says so, else ``formal_label``.
- :func:`default_classifier`: an offline char + word n-gram logistic regression trained on the
  formal/informal pairs shipped in ``formality_data/pairs.tsv`` (written for this project; GYAFC is
  licence-restricted). It is trained on first use and cached under ``$RATIONALIGN_CACHE`` (default
  ``~/.cache/rationalign``); ``heldout_accuracy`` is its accuracy on a held-out fifth of the pairs.
  It is a smoke-level proxy, not a replacement for a classifier trained on GYAFC.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["FormalityClassifier", "HFFormalityClassifier", "NgramFormalityClassifier",
           "default_classifier", "formality_accuracy", "load_pairs"]

DATA_FILE = Path(__file__).with_name("formality_data") / "pairs.tsv"
HELDOUT_EVERY = 5   # pair i is held out when i % 5 == 0: both sides of a pair stay in one split


class FormalityClassifier(Protocol):
    def predict(self, texts: Sequence[str]) -> list[int]: ...


def formality_accuracy(predictions: Sequence[str], classifier: FormalityClassifier | None = None,
                       target: int = 1) -> float:
    """Percentage (0-100) of predictions classified as ``target`` (1 formal, 0 informal)."""
    if not predictions:
        raise ValueError("formality: no predictions")
    clf = classifier or default_classifier()
    labels = clf.predict(list(predictions))
    return 100.0 * sum(int(y == target) for y in labels) / len(labels)


# ---------------------------------------------------------------- Hugging Face model

class HFFormalityClassifier:
    def __init__(self, model_name_or_path: str, formal_label: int | None = None, batch_size: int = 32,
                 device: str | None = None, max_length: int = 256):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_name_or_path).eval()
        if device:
            self.model.to(device)
        self.batch_size, self.max_length = batch_size, max_length
        self.formal_label = formal_label if formal_label is not None else self._formal_from_config()

    def _formal_from_config(self) -> int:
        names = {int(i): str(n).lower() for i, n in (self.model.config.id2label or {}).items()}
        for i, n in names.items():
            if "formal" in n and "informal" not in n:
                return i
        return 1   # generic LABEL_0/LABEL_1: assume 1 = formal, as in GYAFC-trained classifiers

    def predict(self, texts: Sequence[str]) -> list[int]:
        import torch

        out: list[int] = []
        for k in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(list(texts[k:k + self.batch_size]), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            batch = {n: t.to(self.model.device) for n, t in batch.items()}
            with torch.no_grad():
                pred = self.model(**batch).logits.argmax(-1).tolist()
            out.extend(int(p == self.formal_label) for p in pred)
        return out


# ---------------------------------------------------------------- offline default

def load_pairs(path: Path = DATA_FILE) -> list[tuple[str, str]]:
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError(f"{path}:{lineno}: expected 'formal<TAB>informal'")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


_RULES = [(r"\byou\b", "u"), (r"\byour\b", "ur"), (r"\bbecause\b", "cuz"), (r"\bI am\b", "im"),
          (r"\bdo not\b", "dont"), (r"\bcannot\b", "cant"), (r"\bgoing to\b", "gonna"),
          (r"\bplease\b", "pls"), (r"\bthanks?\b|\bthank you\b", "thx")]


def _informalise(text: str) -> str:
    """Rule-made informal variant of a formal sentence (training augmentation only)."""
    for pat, rep in _RULES:
        text = re.sub(pat, rep, text, flags=re.IGNORECASE)
    return text.lower().rstrip(".") + (" lol" if len(text) % 3 == 0 else "")


@dataclass
class NgramFormalityClassifier:
    pipeline: object
    heldout_accuracy: float
    n_train: int
    n_heldout: int

    def predict(self, texts: Sequence[str]) -> list[int]:
        return [int(y) for y in self.pipeline.predict(list(texts))]


def _split(pairs):
    train = [p for i, p in enumerate(pairs) if i % HELDOUT_EVERY]
    held = [p for i, p in enumerate(pairs) if i % HELDOUT_EVERY == 0]
    return train, held


def train_default(pairs: list[tuple[str, str]]) -> NgramFormalityClassifier:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    train, held = _split(pairs)
    x = [f for f, _ in train] + [i for _, i in train] + [_informalise(f) for f, _ in train]
    y = [1] * len(train) + [0] * (2 * len(train))
    # case and punctuation carry much of the signal, so no lowercasing in the char features
    pipe = make_pipeline(
        make_union(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False,
                                   sublinear_tf=True),
                   TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"[^\s]+",
                                   sublinear_tf=True)),
        LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced"))
    pipe.fit(x, y)
    hx = [f for f, _ in held] + [i for _, i in held]
    hy = [1] * len(held) + [0] * len(held)
    acc = sum(int(p == t) for p, t in zip(pipe.predict(hx), hy)) / len(hy)
    # the shipped model is refit on all pairs; heldout_accuracy reports the split above
    full = pairs
    x = [f for f, _ in full] + [i for _, i in full] + [_informalise(f) for f, _ in full]
    pipe.fit(x, [1] * len(full) + [0] * (2 * len(full)))
    return NgramFormalityClassifier(pipe, acc, len(x), len(hy))


def _cache_dir() -> Path:
    return Path(os.environ.get("RATIONALIGN_CACHE", Path.home() / ".cache" / "rationalign")) / "formality"


_DEFAULT: NgramFormalityClassifier | None = None


def default_classifier(path: Path = DATA_FILE) -> NgramFormalityClassifier:
    """The offline classifier: trained once, pickled in the cache (keyed by data + sklearn version)."""
    global _DEFAULT
    if _DEFAULT is not None and path == DATA_FILE:
        return _DEFAULT
    import sklearn

    data = path.read_bytes()
    key = hashlib.sha256(data + sklearn.__version__.encode() + b"v1").hexdigest()[:16]
    cache = _cache_dir() / f"ngram-lr-{key}.pkl"
    clf = None
    if cache.exists():
        try:
            with cache.open("rb") as fh:
                clf = pickle.load(fh)
        except Exception:  # noqa: BLE001 - a corrupt or stale cache is rebuilt, never fatal
            clf = None
    if clf is None:
        clf = train_default(load_pairs(path))
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as fh:
            pickle.dump(clf, fh)
        os.replace(tmp, cache)   # atomic: concurrent runs never read a half-written file
    if path == DATA_FILE:
        _DEFAULT = clf
    return clf
