"""Entailment accuracy and referring-expression accuracy at IoU >= 0.5, on hand-computed boxes."""
from __future__ import annotations

import pytest

from bench.eval.understanding_metrics import box_iou, entailment_accuracy, grounding_accuracy, xywh_to_xyxy


def test_iou_hand_computed():
    target = [[0, 0, 10, 10]] * 4
    predicted = [[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 5], [20, 20, 30, 30]]
    # identical; overlap 50 / union 150; contained half (50 / 100); disjoint
    assert box_iou(predicted, target) == pytest.approx([1.0, 1 / 3, 0.5, 0.0])
    assert grounding_accuracy(predicted, target) == 0.5  # IoU >= 0.5 counts: the identical and the 0.5 box
    assert grounding_accuracy(predicted, target, threshold=0.3) == 0.75


def test_xywh_conversion_and_bad_boxes():
    assert xywh_to_xyxy([3, 4, 10, 20]) == (3.0, 4.0, 13.0, 24.0)
    with pytest.raises(ValueError, match="x2 > x1"):
        box_iou([[5, 0, 5, 10]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="1 predicted boxes for 2"):
        box_iou([[0, 0, 1, 1]], [[0, 0, 1, 1]] * 2)


def test_entailment_accuracy():
    gold = ["entailment", "neutral", "contradiction", "entailment"]
    assert entailment_accuracy(gold, ["entailment", "contradiction", "contradiction", "neutral"]) == 0.5
    with pytest.raises(ValueError, match="unknown entailment prediction"):
        entailment_accuracy(gold, ["yes", "no", "maybe", "yes"])
    with pytest.raises(ValueError, match="4 labels"):
        entailment_accuracy(gold, ["entailment"])
