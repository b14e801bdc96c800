"""D_H selection (paper Sec. 3.3) on hand-built candidates: best vs worst reward per input, the top
fraction by winner reward (ties broken by id), min_reward_gap, and every dropped input counted."""

from __future__ import annotations

import pytest

from rationalign.stages.pairs import select_pairs


def cand(suggestion, reward, ok=True):
    return {"text": f"{suggestion}\nExplanation: because.", "suggestion": suggestion, "reward": reward, "ok": ok}


def row(rid, *cands):
    return {"id": rid, "task": "gec", "instruction": "Fix:", "source": f"src {rid}", "candidates": list(cands)}


def test_best_and_worst_candidate_form_the_pair():
    rows = [row("x", cand("mid", 0.5), cand("best", 2.0), cand("worst", -1.0), cand("low", 0.0))]
    kept, counts = select_pairs(rows, keep_fraction=1.0)
    assert kept == [{"id": "x", "task": "gec", "instruction": "Fix:", "source": "src x",
                     "chosen": "best\nExplanation: because.", "rejected": "worst\nExplanation: because.",
                     "chosen_reward": 2.0, "rejected_reward": -1.0,
                     "chosen_suggestion": "best", "rejected_suggestion": "worst"}]
    assert counts == {"scored_inputs": 1, "fewer_than_two_well_formed": 0, "identical_suggestions": 0,
                      "reward_gap_too_small": 0, "below_keep_fraction": 0}


def test_malformed_and_unscored_candidates_never_win_or_lose():
    rows = [row("x", cand("bad-high", 9.0, ok=False), cand("a", 1.0), cand("none", None), cand("b", 0.0),
                cand("bad-low", -9.0, ok=False))]
    kept, _ = select_pairs(rows, keep_fraction=1.0)
    assert (kept[0]["chosen_suggestion"], kept[0]["rejected_suggestion"]) == ("a", "b")


def test_top_fraction_by_winner_reward_is_kept():
    # winner rewards 5, 4, 3, 2, 1, 0 (ids in scrambled order); 50% keeps the three best, sorted by id.
    rewards = {"f": 5.0, "a": 4.0, "d": 3.0, "b": 2.0, "e": 1.0, "c": 0.0}
    rows = [row(i, cand(f"{i}-w", w), cand(f"{i}-l", w - 10.0)) for i, w in rewards.items()]
    kept, counts = select_pairs(rows, keep_fraction=0.5)
    assert [k["id"] for k in kept] == ["a", "d", "f"]
    assert counts["scored_inputs"] == 6 and counts["below_keep_fraction"] == 3
    # the winner reward decides, not the loser's or the gap: a huge gap with a low winner is dropped
    rows.append(row("g", cand("g-w", 0.5), cand("g-l", -100.0)))
    kept, counts = select_pairs(rows, keep_fraction=3 / 7)
    assert [k["id"] for k in kept] == ["a", "d", "f"] and counts["below_keep_fraction"] == 4


@pytest.mark.parametrize("fraction, n", [(0.2, 1), (0.25, 1), (0.3, 2), (0.5, 3), (0.0, 0), (1.0, 5)])
def test_kept_count_rounds_half_up(fraction, n):
    rows = [row(f"r{i}", cand("w", float(i)), cand("l", -1.0)) for i in range(5)]
    kept, counts = select_pairs(rows, keep_fraction=fraction)
    assert len(kept) == n and counts["below_keep_fraction"] == 5 - n
    assert [k["chosen_reward"] for k in kept] == sorted(float(i) for i in range(5))[5 - n:]


def test_ties_on_winner_reward_are_broken_by_id():
    rows = [row(i, cand("w", 1.0), cand("l", 0.0)) for i in ("c", "a", "b", "d")]
    kept, _ = select_pairs(rows, keep_fraction=0.5)
    assert [k["id"] for k in kept] == ["a", "b"]


def test_ties_within_an_input_take_the_first_candidate():
    rows = [row("x", cand("first-top", 1.0), cand("first-bottom", 0.0), cand("second-top", 1.0),
                cand("second-bottom", 0.0))]
    kept, _ = select_pairs(rows, keep_fraction=1.0)
    assert (kept[0]["chosen_suggestion"], kept[0]["rejected_suggestion"]) == ("first-top", "first-bottom")


def test_min_reward_gap_and_other_drops_are_counted():
    rows = [
        row("one", cand("only", 1.0), cand("bad", 0.0, ok=False)),           # fewer than two well-formed
        row("same", cand("s", 1.0), cand("s", 0.0)),                          # identical suggestions
        row("gap-small", cand("a", 1.0), cand("b", 0.75)),                    # gap 0.25 <= 0.25
        row("gap-equal-rewards", cand("a", 1.0), cand("b", 1.0)),             # gap 0
        row("gap-ok", cand("a", 1.0), cand("b", 0.7)),                        # gap 0.3 > 0.25
        row("gap-ok2", cand("a", 3.0), cand("b", 2.0)),
    ]
    kept, counts = select_pairs(rows, keep_fraction=0.5, min_gap=0.25)
    assert [k["id"] for k in kept] == ["gap-ok2"]
    assert counts == {"scored_inputs": 2, "fewer_than_two_well_formed": 1, "identical_suggestions": 1,
                      "reward_gap_too_small": 2, "below_keep_fraction": 1}
    # min_gap 0: only an exact reward tie is too small
    kept, counts = select_pairs(rows, keep_fraction=1.0)
    assert [k["id"] for k in kept] == ["gap-ok", "gap-ok2", "gap-small"] and counts["reward_gap_too_small"] == 1


def test_best_and_worst_with_the_same_suggestion_are_dropped():
    # two distinct suggestions exist, but the extremes share one text (a tie of a suggestion with itself)
    rows = [row("x", cand("same", 2.0), cand("other", 1.0), cand("same", -1.0))]
    kept, counts = select_pairs(rows, keep_fraction=1.0)
    assert kept == [] and counts["reward_gap_too_small"] == 1
