"""ERRANT edit extraction and the teacher-prompt edit list."""

import pytest

from rationalign.edits import Edit, extract_edits, format_edits


@pytest.fixture(scope="module")
def gec_edits():
    pairs = [
        ("He go to school every days .", "He goes to school every day ."),
        ("I have car .", "I have a car ."),
        ("I like the apples .", "I like apples ."),
        ("I recieved your letter .", "I received your letter ."),
        ("She is happy .", "She is happy ."),
    ]
    return extract_edits([s for s, _ in pairs], [t for _, t in pairs])


def test_sva_and_noun_number(gec_edits):
    assert gec_edits[0] == [Edit(1, 2, "go", "goes", "R:VERB:SVA"), Edit(5, 6, "days", "day", "R:NOUN:NUM")]


def test_insertion_deletion_spelling(gec_edits):
    assert gec_edits[1] == [Edit(2, 2, "", "a", "M:DET")]
    assert gec_edits[2] == [Edit(2, 3, "the", "", "U:DET")]
    assert gec_edits[3] == [Edit(1, 2, "recieved", "received", "R:SPELL")]


def test_identical_pair_has_no_edits(gec_edits):
    assert gec_edits[4] == []
    assert extract_edits(["Same text."], ["Same text."]) == [[]]  # no parsing needed


def test_edit_op_and_category():
    e = Edit(1, 2, "go", "goes", "R:VERB:SVA")
    assert (e.op, e.category) == ("R", "VERB:SVA")
    assert (Edit(0, 1, "x", "y", "UNK").op, Edit(0, 1, "x", "y", "UNK").category) == ("UNK", "UNK")


def test_raw_text_is_tokenised_and_pretokenised_kept():
    raw = extract_edits(["He go to school."], ["He goes to school."])
    pre = extract_edits(["He go to school ."], ["He goes to school ."], tokenise=False)
    assert raw == pre == [[Edit(1, 2, "go", "goes", "R:VERB:SVA")]]


def test_length_mismatch_and_bad_types():
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        extract_edits(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="pair 0"):
        extract_edits(["a"], [None])


def test_format_edits_fig3_style():
    edits = [Edit(1, 2, "go", "goes", "R:VERB:SVA"), Edit(2, 3, "the", "", "U:DET"),
             Edit(4, 4, "", "a", "M:DET")]
    assert format_edits(edits) == '1. "go" -> "goes"\n2. "the" -> "" (deletion)\n3. "" -> "a" (insertion)'
    assert format_edits(edits[:1], with_types=True) == '1. "go" -> "goes" [R:VERB:SVA]'
    assert "no edits" in format_edits([])
