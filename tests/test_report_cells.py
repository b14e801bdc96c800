"""Report cells and ALL from fixed predictions, against values worked out by hand (issue 13: a
report of zeros and ALL = 42 used to pass the end-to-end test)."""

from __future__ import annotations

import pytest

from rationalign.data.records import Record
from rationalign.report import COLUMNS, all_average, build_table, to_csv, to_markdown
from rationalign.runner import compose
from rationalign.stages.evaluate import score_system


def test_all_averages_the_present_columns_with_bleu_for_gyafc():
    cells = {"CoN": {"score": 60.0}, "WNC": {"score": 30.0}, "GYAFC-EM": {"score": 90.0, "formality": 10.0}}
    assert all_average(cells) == pytest.approx(60.0)  # (60 + 30 + 90) / 3, formality ignored
    assert all_average({}) is None
    assert all_average({"not-a-column": {"score": 5.0}, "STS": {"score": 7.0}}) == pytest.approx(7.0)


def test_table_rows_keep_cells_and_count_columns():
    results = {"a": {"CoN": {"score": 10.0}, "ITR-F": {"score": 20.0}},
               "b": {c: {"score": float(i)} for i, c in enumerate(COLUMNS)}}
    rows = build_table(results)
    assert [r["system"] for r in rows] == ["a", "b"]
    assert rows[0]["CoN"] == {"score": 10.0} and rows[0]["STS"] is None
    assert rows[0]["ALL"] == pytest.approx(15.0) and rows[0]["ALL_columns"] == 2
    assert rows[1]["ALL"] == pytest.approx(sum(range(len(COLUMNS))) / len(COLUMNS))
    assert rows[1]["ALL_columns"] == len(COLUMNS)
    md = to_markdown(rows)
    assert "| a | 10.0 | 20.0 | N.A. |" in md and "| 15.0 (2/9) |" in md
    assert "| b | 0.0 | 1.0 |" in md and md.rstrip().splitlines()[-3].endswith("| 4.0 |")
    assert to_csv(rows).splitlines()[1] == "a,10.0000,20.0000," + ",".join(["N.A."] * 7) + ",15.0000"


def test_gyafc_cell_shows_bleu_and_formality():
    rows = build_table({"s": {"GYAFC-EM": {"score": 55.55, "formality": 80.0}}})
    assert "| 55.5 / 80.0 |" in to_markdown(rows) or "| 55.6 / 80.0 |" in to_markdown(rows)
    assert rows[0]["ALL"] == pytest.approx(55.55)


def test_cells_and_all_from_fixed_predictions():
    """CoN: two sentences, one gold edit each; the system fixes one and leaves the other: correct 1,
    proposed 1, gold 2 -> P = 1, R = 0.5, F0.5 = 1.25 * 0.5 / (0.25 + 0.5) = 83.33.
    GYAFC-EM: the prediction is the gold sentence -> BLEU 100. ALL = (83.33 + 100) / 2."""
    cfg = compose(["task=all"])
    recs = [Record(id="g1", task="gec", instruction="Fix:", source="He go to school every day .",
                   target="He goes to school every day ."),
            Record(id="g2", task="gec", instruction="Fix:", source="She like the red apples very much .",
                   target="She likes the red apples very much ."),
            Record(id="f1", task="formality", instruction="Formal:", source="gonna see u there",
                   target="I will see you there at the meeting tomorrow .", meta={"column": "GYAFC-EM"})]
    preds = {"gec": [{"id": "g1", "suggestion": "He goes to school every day .", "ok": True},
                     {"id": "g2", "suggestion": "She like the red apples very much .", "ok": False}],
             "formality": [{"id": "f1", "suggestion": "I will see you there at the meeting tomorrow .", "ok": True}]}
    cells = score_system(cfg, recs, preds)
    assert set(cells) == {"CoN", "GYAFC-EM"}
    con, em = cells["CoN"], cells["GYAFC-EM"]
    assert con["score"] == pytest.approx(100 * 1.25 * 0.5 / 0.75, abs=1e-6) and con["n"] == 2
    assert con["malformed"] == 1 and em["malformed"] == 0
    assert em["score"] == pytest.approx(100.0) and em["n"] == 1 and 0.0 <= em["formality"] <= 100.0
    row = build_table({"sys": cells})[0]
    assert row["ALL"] == pytest.approx((100 * 1.25 * 0.5 / 0.75 + 100.0) / 2, abs=1e-6)
    assert row["ALL_columns"] == 2 and row["WNC"] is None


def test_a_system_that_changes_nothing_scores_zero_on_m2_and_the_perfect_one_100():
    cfg = compose(["task=gec"])
    recs = [Record(id="g1", task="gec", instruction="Fix:", source="He go to school .", target="He goes to school .")]
    nothing = score_system(cfg, recs, {"gec": [{"id": "g1", "suggestion": "He go to school .", "ok": True}]})
    perfect = score_system(cfg, recs, {"gec": [{"id": "g1", "suggestion": "He goes to school .", "ok": True}]})
    assert nothing["CoN"]["score"] == 0.0 and perfect["CoN"]["score"] == pytest.approx(100.0)


def test_markdown_and_csv_are_exactly_the_table_1_layout():
    rows = build_table({"sft": {"CoN": {"score": 50.0}, "GYAFC-EM": {"score": 40.0, "formality": 90.0}},
                        "none": {}})
    assert to_markdown(rows, title="T") == (
        "### T\n\n"
        "| System | CoN | ITR-F | ITR-L | ITR-O | STS | WNC | AST | GYAFC-EM | GYAFC-FR | ALL |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| sft | 50.0 | N.A. | N.A. | N.A. | N.A. | N.A. | N.A. | 40.0 / 90.0 | N.A. | 45.0 (2/9) |\n"
        "| none | N.A. | N.A. | N.A. | N.A. | N.A. | N.A. | N.A. | N.A. | N.A. | N.A. |\n"
        "\n"
        "GYAFC cells are BLEU / formality accuracy; ALL uses BLEU for GYAFC and averages the columns present "
        "(count in brackets when some are N.A.).\n")
    assert to_markdown(rows).startswith("### Results (paper Table 1 layout)\n")
    assert to_csv(rows).splitlines() == [
        "system,CoN,ITR-F,ITR-L,ITR-O,STS,WNC,AST,GYAFC-EM,GYAFC-FR,ALL",
        "sft,50.0000,N.A.,N.A.,N.A.,N.A.,N.A.,N.A.,40.0000/90.0000,N.A.,45.0000",
        "none,N.A.,N.A.,N.A.,N.A.,N.A.,N.A.,N.A.,N.A.,N.A.,N.A.",
    ]
