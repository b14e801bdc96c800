"""CoNLL-2014 scored as GEC papers do: detokenised input, suggestions retokenised like the gold M2."""

from __future__ import annotations

import pytest

from rationalign.data.readers.m2 import read_m2
from rationalign.m2_format import read_m2 as parse_m2
from rationalign.metrics import m2
from rationalign.tokenization import detokenize, m2_hypothesis, retokenize, tokenize

from .conftest import shared_dir

GOLD = """S I do n't know why he go there .
A 6 7|||Vform|||goes|||REQUIRED|||-NONE-|||0

S She said , " it 's the student 's book . "
A -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||0

S They ca n't come ( maybe ) ; we 're sorry , are n't we ?
A 0 1|||Pref|||We|||REQUIRED|||-NONE-|||0

S The notion of authority also extended 'vertically' .
A 5 6|||Wform|||extends|||REQUIRED|||-NONE-|||0
"""
NATURAL = [
    "I don't know why he go there.",
    'She said, "it\'s the student\'s book."',
    "They can't come (maybe); we're sorry, aren't we?",
    "The notion of authority also extended 'vertically'.",
]


@pytest.fixture
def gold(tmp_path):
    path = tmp_path / "g.m2"
    path.write_text(GOLD)
    return path


def test_model_sees_detokenised_text(gold):
    recs = read_m2(gold).records
    assert [r.source for r in recs] == NATURAL
    assert recs[0].target == "I don't know why he goes there."
    assert recs[0].meta["m2"].startswith("S I do n't know why he go there .")  # the gold stays tokenised


def test_contractions_and_punctuation_round_trip(gold):
    blocks = parse_m2(gold)
    # the three well-tokenised sentences round-trip through the tokenizer alone
    for b, text in list(zip(blocks, NATURAL))[:3]:
        assert detokenize(b.tokens) == text
        assert tokenize(text, "nltk") == b.tokens
    # the fourth is tokenised in a way no tokenizer reproduces ('vertically' as one token) ...
    assert tokenize(NATURAL[3], "nltk") != blocks[3].tokens
    # ... so words the suggestion leaves unchanged keep the gold's own tokens
    assert retokenize(NATURAL[3], "nltk", blocks[3].tokens) == blocks[3].tokens


def test_unchanged_detokenised_source_scores_zero_proposed_edits(gold):
    recs = read_m2(gold).records
    hyps = [m2_hypothesis(r.meta, r.source) for r in recs]
    res = m2.score(GOLD, hyps)
    assert res["proposed"] == 0 and res["correct"] == 0 and res["gold"] == 3
    # without retokenisation the same unchanged text is charged with edits it never made
    assert m2.score(GOLD, [r.source for r in recs])["proposed"] > 0


def test_a_real_correction_in_natural_text_is_matched(gold):
    recs = read_m2(gold).records
    fixed = ["I don't know why he goes there.", NATURAL[1], "We can't come (maybe); we're sorry, aren't we?",
             "The notion of authority also extends 'vertically'."]
    res = m2.score(GOLD, [m2_hypothesis(r.meta, h) for r, h in zip(recs, fixed)])
    assert (res["correct"], res["proposed"], res["gold"]) == (3, 3, 3)


def test_spacy_retokenizer_and_options(gold):
    blocks = parse_m2(gold)
    assert retokenize(NATURAL[0], "spacy") == blocks[0].tokens
    plain = read_m2(gold, detokenize="none", retokenize="none").records
    assert plain[0].source == "I do n't know why he go there ." and m2_hypothesis(plain[0].meta, "x y") == "x y"
    with pytest.raises(ValueError, match="retokenize='ptb'"):
        read_m2(gold, retokenize="ptb")


def test_evaluate_scores_and_reports_the_tokenisation(gold):
    from rationalign.report import analyses_markdown
    from rationalign.runner import compose
    from rationalign.stages.evaluate import m2_tokenization, score_column

    recs = read_m2(gold).records
    assert score_column(["m2"], recs, [r.source for r in recs])["score"] == 0.0
    fixed = ["I don't know why he goes there.", NATURAL[1], "We can't come (maybe); we're sorry, aren't we?",
             "The notion of authority also extends 'vertically'."]
    assert score_column(["m2"], recs, fixed)["score"] == 100.0
    cfg = compose(["task=gec"])
    tk = m2_tokenization(cfg, recs)
    assert tk == {"CoN": {"detokenize": "moses", "retokenize": "nltk", "keep_source_tokens": True}}
    md = analyses_markdown({"m2_tokenization": tk})
    assert "CoN (M2 scoring): the model read detokenised (moses) text; its suggestions were retokenised (nltk" in md


def test_sentence_score_retokenises_too(gold):
    from rationalign.scoring import sentence_score

    r = read_m2(gold).records[0]
    spec = {"metric": "m2"}
    assert sentence_score(spec, r, "I don't know why he goes there.") == 100.0
    assert sentence_score(spec, r, r.source) == 0.0


def test_conll2014_unchanged_sources_propose_nothing():
    data = shared_dir("data")
    path = data / "gec" / "conll14" / "official-2014.combined.m2" if data else None
    if not path or not path.exists():
        pytest.skip("../shared/data/gec/conll14 not present")
    recs = read_m2(path).records
    res = m2.score(path, [m2_hypothesis(r.meta, r.source) for r in recs])
    assert len(recs) == 1312 and res["proposed"] == 0
    # the tokenizer alone reproduces the gold tokens for all but a few oddly tokenised sentences
    blocks = parse_m2(path)
    assert sum(tokenize(detokenize(b.tokens)) != b.tokens for b in blocks) <= 25
