"""M2 (MaxMatch) against m2scorer HEAD vectors, the M2 parser, and hand cases."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rationalign.m2_format import M2Error, parse_m2, read_m2
from rationalign.m2_format import corrected_text as apply_edits
from rationalign.metrics import get_metric, m2

REPO = Path(__file__).resolve().parent.parent


def _shared(kind: str, env: str) -> Path:
    return Path(os.environ.get(env) or REPO.parent / "shared" / kind)


VEC_FILE = _shared("vectors", "RATIONALIGN_VECTORS") / "m2_vectors.json"
VEC = json.loads(VEC_FILE.read_text(encoding="utf-8")) if VEC_FILE.exists() else None
NO_VEC = "shared/vectors/m2_vectors.json not found (set RATIONALIGN_VECTORS); reference vectors skipped"
CONLL = _shared("data", "RATIONALIGN_DATA") / "gec" / "conll14" / "official-2014.combined.m2"
SETTINGS = {"default": {}, "max_unchanged_words_0": {"max_unchanged_words": 0},
            "beta_1.0": {"beta": 1.0}, "ignore_whitespace_casing": {"ignore_whitespace_casing": True}}


def _rounded(res: m2.M2Result) -> dict:
    return {"correct": res.correct, "proposed": res.proposed, "gold": res.gold,
            "precision": round(res.precision, 4), "recall": round(res.recall, 4), "f": round(res.f, 4),
            "chosen_annotators": res.chosen_annotators}


@pytest.mark.skipif(VEC is None, reason=NO_VEC)
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("case", VEC["cases"] if VEC else [], ids=lambda c: c["id"])
def test_m2_vector(case, setting):
    res = m2.evaluate(case["gold_m2"], [case["hypothesis"]], **SETTINGS[setting])
    assert _rounded(res) == case["expected"][setting]


@pytest.mark.skipif(VEC is None, reason=NO_VEC)
def test_m2_vectors_differ_from_release_32_where_listed():
    # guards against silently scoring like release 3.2 (sentence-start insertion offsets)
    listed = [c for c in VEC["cases"] if c["expected_release_3.2_if_different"]]
    assert listed, "vectors list no 3.2 difference"
    for c in listed:
        for setting, old in c["expected_release_3.2_if_different"].items():
            res = _rounded(m2.evaluate(c["gold_m2"], [c["hypothesis"]], **SETTINGS[setting]))
            assert res == c["expected"][setting] and res != old


# ---- hand cases

GOLD = ("S The cat sat at mat .\n"
        "A 3 4|||Prep|||on|||REQUIRED|||-NONE-|||0\n"
        "A 4 4|||ArtOrDet|||the||a|||REQUIRED|||-NONE-|||0\n")


def test_basic_counts_and_path_or_text(tmp_path):
    res = m2.score(GOLD, ["A cat sat on the mat ."])
    assert (res["correct"], res["proposed"], res["gold"]) == (2, 3, 2)
    assert res["precision"] == pytest.approx(2 / 3) and res["recall"] == 1.0
    assert res["f"] == pytest.approx(1.25 * (2 / 3) / (0.25 * (2 / 3) + 1))
    f = tmp_path / "gold.m2"
    f.write_text(GOLD, encoding="utf-8")
    assert m2.score(f, ["A cat sat on the mat ."]) == res
    assert m2.score(str(f), ["A cat sat on the mat ."]) == res


def test_alternative_correction_and_no_edit():
    assert m2.score(GOLD, ["The cat sat on a mat ."])["correct"] == 2      # 'the||a'
    res = m2.score(GOLD, ["The cat sat at mat ."])
    assert (res["correct"], res["proposed"], res["gold"], res["precision"]) == (0, 0, 2, 1.0)


def test_unchanged_words_merge_edits():
    gold = "S I know not what to do .\nA 1 3|||WO|||do not know|||REQUIRED|||-NONE-|||0\n"
    hyp = ["I do not know what to do ."]
    assert m2.score(gold, hyp)["correct"] == 1                        # needs one unchanged token
    assert m2.score(gold, hyp, max_unchanged_words=0)["correct"] == 0


def test_ignore_whitespace_casing_drops_case_only_edits():
    gold = "S i live here .\nA 0 1|||Mec|||I|||REQUIRED|||-NONE-|||0\n"
    assert m2.score(gold, ["I live here ."])["correct"] == 1
    res = m2.score(gold, ["I live here ."], ignore_whitespace_casing=True)
    assert (res["correct"], res["proposed"], res["gold"]) == (0, 0, 1)


def test_corpus_annotator_choice_is_cumulative():
    s1 = ("S a b c\nA 0 1|||X|||A|||REQUIRED|||-NONE-|||0\n"
          "A 2 3|||X|||C|||REQUIRED|||-NONE-|||0\n")
    words = [f"w{i}" for i in range(11)]
    s2 = "S " + " ".join(words) + "\n" + "".join(
        f"A {i} {i + 1}|||X|||W{i}|||REQUIRED|||-NONE-|||0\n" for i in range(10)) + \
        "A -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||1\n"
    h1, h2 = "A b C", " ".join(["W0"] + words[1:])
    alone = m2.evaluate(s2, [h2])
    assert alone.chosen_annotators == [0]                 # 1/1/10 beats 0/1/0 on its own
    res = m2.evaluate(s1 + "\n" + s2, [h1, h2])
    # after 2/2/2, annotator 1 (totals 2/3/2, F=.714) beats annotator 0 (3/3/12, F=.625)
    assert res.chosen_annotators == [0, 1]
    assert (res.correct, res.proposed, res.gold) == (2, 3, 2)
    rev = m2.evaluate(s2 + "\n" + s1, [h2, h1])
    assert rev.chosen_annotators == [0, 0] and (rev.correct, rev.proposed, rev.gold) == (3, 3, 12)


def test_gold_order_matters_like_the_reference():
    # gold edits listed right-to-left: matched left to right, only one is credited (m2scorer quirk)
    gold = ("S The informations was useful .\nA 1 2|||N|||information|||REQUIRED|||-NONE-|||0\n"
            "A 0 1|||D|||This|||REQUIRED|||-NONE-|||0\n")
    res = m2.score(gold, ["This information was useful ."])
    assert (res["correct"], res["proposed"], res["gold"]) == (1, 2, 2)


def test_long_rewrite_is_fast():
    import random

    rng = random.Random(0)
    src = [f"w{rng.randrange(20)}" for _ in range(300)]
    hyp = src[:]
    rng.shuffle(hyp)
    t = time.perf_counter()
    res = m2.score("S " + " ".join(src) + "\n", [" ".join(hyp)])
    assert time.perf_counter() - t < 5 and res["proposed"] > 0 and res["gold"] == 0


def test_parser_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.m2"
    bad.write_text("S a b\nA 0 1|||X|||c|||REQUIRED|||-NONE-|||0\n\nS c d\nA 5 6|||X|||e|||R|||-|||0\n")
    with pytest.raises(M2Error, match=r"bad\.m2:5: .*outside"):
        read_m2(bad)
    with pytest.raises(M2Error, match=r"<m2 text>:3: field 'A' appears before any 'S'"):
        parse_m2("S a\n\nA 0 1|||X|||b|||R|||-|||0\n")
    with pytest.raises(M2Error, match=r":2: field 'A' span 'x 1' is not two integers"):
        parse_m2("S a\nA x 1|||X|||b|||R|||-|||0\n")
    with pytest.raises(M2Error, match=r":1: line starts with 'he', expected 'S ' or 'A '"):
        parse_m2("hello\n")
    with pytest.raises(M2Error, match=r":2: field 'annotator' 'zero' is not an integer"):
        parse_m2("S a\nA 0 1|||X|||b|||R|||-|||zero\n")


def test_parser_structure():
    sents = parse_m2(GOLD + "\nS Fine .\n\nS x y\nA -1 -1|||noop|||-NONE-|||REQUIRED|||-NONE-|||3\n")
    assert [s.tokens for s in sents] == [GOLD.split("\n")[0][2:].split(), ["Fine", "."], ["x", "y"]]
    assert sents[0].edits(0)[1].corrections == ("the", "a")
    assert sents[1].edits_by_annotator() == {0: []}
    assert sents[2].edits_by_annotator() == {3: []}
    assert apply_edits(sents[0]) == "The cat sat on the mat ."
    assert apply_edits(sents[0], choice=1) == "The cat sat on a mat ."


def test_errors_and_registry():
    with pytest.raises(ValueError, match="1 gold sentences but 2 predictions"):
        m2.score(GOLD, ["a", "b"])
    res = get_metric("m2")(None, ["A cat sat on the mat ."], GOLD)
    assert res["score"] == pytest.approx(100 * res["f"]) and res["correct"] == 2


@pytest.mark.skipif(not CONLL.exists(), reason=f"{CONLL} not found (set RATIONALIGN_DATA)")
def test_conll14_in_seconds():
    sents = read_m2(CONLL)
    assert len(sents) == 1312
    t = time.perf_counter()
    src = m2.score(sents, [s.source for s in sents])
    fixed = m2.score(sents, [apply_edits(s, 1) if i % 2 else s.source for i, s in enumerate(sents)])
    elapsed = time.perf_counter() - t
    assert (src["correct"], src["proposed"], src["precision"], src["f"]) == (0, 0, 1.0, 0.0)
    assert fixed["precision"] > 0.95 and 0.4 < fixed["recall"] < 0.8
    assert elapsed < 20, elapsed
