"""BLEU, formality accuracy, statistics and the metric registry."""
from __future__ import annotations

import numpy as np
import pytest

from rationalign.metrics import METRICS, get_metric
from rationalign.metrics import formality as F
from rationalign.metrics.bleu import corpus_bleu
from rationalign.metrics.stats import paired_bootstrap, pearson


def test_registry_names():
    assert set(METRICS) == {"sari", "m2", "errant", "bleu", "formality"}
    assert all(callable(get_metric(n)) for n in METRICS)


# ---- BLEU

def test_bleu_sacrebleu_readme_example():
    hyps = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [["The dog bit the man.", "The dog had bit the man."],
            ["It was not unexpected.", "No one was surprised."],
            ["The man bit him first.", "The man had bitten the dog."]]
    res = corpus_bleu(hyps, refs)
    assert res["score"] == pytest.approx(48.53, abs=0.01)      # value printed in sacrebleu's README
    assert "nrefs:2" in res["signature"] and "tok:13a" in res["signature"]
    assert get_metric("bleu")(None, hyps, refs)["score"] == res["score"]


def test_bleu_variable_reference_counts_and_errors():
    res = corpus_bleu(["a b c d e", "f g h i"], [["a b c d e"], ["f g h i", "x y z w"]])
    assert res["score"] == pytest.approx(100.0) and "nrefs:var" in res["signature"]
    with pytest.raises(ValueError, match="no reference"):
        corpus_bleu(["a"], [[]])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        corpus_bleu(["a", "b"], [["a"]])


# ---- formality

@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RATIONALIGN_CACHE", str(tmp_path))
    monkeypatch.setattr(F, "_DEFAULT", None)
    return tmp_path


def test_default_classifier_trains_caches_and_reports_heldout(fresh_cache):
    clf = F.default_classifier()
    assert 0.8 <= clf.heldout_accuracy <= 1.0 and clf.n_heldout >= 60
    cached = list((fresh_cache / "formality").glob("*.pkl"))
    assert len(cached) == 1
    F._DEFAULT = None
    again = F.default_classifier()          # loaded from the pickle, same predictions
    texts = ["I would be grateful if you could confirm the appointment.",
             "omg that party was sooo lit lol", "The committee has approved the budget.",
             "dude wanna grab food l8r??"]
    assert again.predict(texts) == clf.predict(texts) == [1, 0, 1, 0]
    res = get_metric("formality")(None, texts, None)
    assert res["score"] == 50.0
    assert get_metric("formality")(None, texts, None, target=0)["score"] == 50.0


def test_pairs_file_is_well_formed():
    pairs = F.load_pairs()
    assert len(pairs) >= 150 and len(set(pairs)) == len(pairs)


class _Always:
    def __init__(self, label):
        self.label = label

    def predict(self, texts):
        return [self.label] * len(texts)


def test_formality_accuracy_uses_given_classifier():
    assert F.formality_accuracy(["x", "y"], _Always(1)) == 100.0
    assert F.formality_accuracy(["x", "y"], _Always(1), target=0) == 0.0
    with pytest.raises(ValueError):
        F.formality_accuracy([], _Always(1))


def _tiny_hf_model(path, id2label):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    import torch

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "i", "would", "be", "grateful", "lol", "omg", "dude", "the", "report"]
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)},
                                                           unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]",
                                                pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, num_labels=2,
                                  id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return model, fast


@pytest.mark.parametrize("id2label,formal", [({0: "informal", 1: "formal"}, 1),
                                             ({0: "FORMAL", 1: "INFORMAL"}, 0)])
def test_hf_classifier_on_tiny_random_model(tmp_path, id2label, formal):
    import torch

    model, tok = _tiny_hf_model(tmp_path, id2label)
    clf = F.HFFormalityClassifier(str(tmp_path), batch_size=2)
    assert clf.formal_label == formal
    texts = ["i would be grateful", "lol omg dude", "the report", "dude"]
    with torch.no_grad():
        logits = model.eval()(**tok(texts, padding=True, return_tensors="pt")).logits
    expected = [int(i == formal) for i in logits.argmax(-1).tolist()]
    assert clf.predict(texts) == expected


# ---- statistics

def test_pearson():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # hand: x=[1,2,3,4], y=[1,3,2,4]: cov=3, var_x=var_y=5 (sums of squares) -> 0.8
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        pearson([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError):
        pearson([1, 2], [1, 2, 3])


def test_paired_bootstrap():
    rng = np.random.default_rng(1)
    base = rng.normal(size=200)
    better = base + 0.5
    assert paired_bootstrap(better, base, seed=3) < 0.01
    assert paired_bootstrap(base, better, seed=3) > 0.99
    assert paired_bootstrap(base, base) == 1.0                 # never strictly better
    noisy = base + rng.normal(scale=2.0, size=200) + 0.05
    p1, p2 = paired_bootstrap(noisy, base, seed=7), paired_bootstrap(noisy, base, seed=7)
    assert p1 == p2 and 0.0 < p1 < 1.0                        # seeded, and a real p-value
    # corpus-level aggregate (e.g. a ratio of summed statistics)
    p = paired_bootstrap(better, base, n_resamples=200, aggregate=lambda s: float(np.median(s)))
    assert p < 0.05
    with pytest.raises(ValueError):
        paired_bootstrap([1, 2], [1])
