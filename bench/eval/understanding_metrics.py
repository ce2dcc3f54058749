"""Visual entailment accuracy and referring-expression accuracy (IoU >= 0.5), as SNLI-VE and RefCOCO report them.

Boxes are (x1, y1, x2, y2) in pixels, x2 > x1 and y2 > y1 (COCO's [x, y, w, h] converts with `xywh_to_xyxy`).
IoU follows OFA's refcoco evaluation: intersection over union of the continuous boxes (no +1 pixel convention);
a prediction counts as correct at IoU >= 0.5 (RefCOCO's "Acc@0.5").
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ENTAILMENT_LABELS", "box_iou", "entailment_accuracy", "grounding_accuracy", "xywh_to_xyxy"]

ENTAILMENT_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")


def entailment_accuracy(labels: Sequence[str], predictions: Sequence[str]) -> float:
    """Fraction of predictions equal to the gold label; both must use `ENTAILMENT_LABELS`."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no entailment pairs to score")
    for name, values in (("label", labels), ("prediction", predictions)):
        bad = sorted({v for v in values if v not in ENTAILMENT_LABELS})
        if bad:
            raise ValueError(f"unknown entailment {name}(s) {bad}; valid: {', '.join(ENTAILMENT_LABELS)}")
    return float(np.mean([p == g for g, p in zip(labels, predictions)]))


def _boxes(boxes: Sequence[Sequence[float]], what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4 or not np.isfinite(arr).all():
        raise ValueError(f"{what} must be finite (N, 4) boxes (x1, y1, x2, y2), got shape {arr.shape}")
    if (arr[:, 2] <= arr[:, 0]).any() or (arr[:, 3] <= arr[:, 1]).any():
        raise ValueError(f"{what}: every box needs x2 > x1 and y2 > y1")
    return arr


def box_iou(predicted: Sequence[Sequence[float]], target: Sequence[Sequence[float]]) -> np.ndarray:
    """IoU of each predicted box with the target box of the same row, shape (N,)."""
    p, t = _boxes(predicted, "predicted boxes"), _boxes(target, "target boxes")
    if p.shape != t.shape:
        raise ValueError(f"{len(p)} predicted boxes for {len(t)} targets")
    w = np.clip(np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0]), 0, None)
    h = np.clip(np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1]), 0, None)
    inter = w * h
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return inter / (area(p) + area(t) - inter)


def grounding_accuracy(predicted: Sequence[Sequence[float]], target: Sequence[Sequence[float]],
                       threshold: float = 0.5) -> float:
    """Fraction of predicted boxes whose IoU with their target is >= `threshold`."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"IoU threshold must be in (0, 1], got {threshold}")
    if len(target) == 0:
        raise ValueError("no referring expressions to score")
    return float(np.mean(box_iou(predicted, target) >= threshold))


def xywh_to_xyxy(box: Sequence[float]) -> tuple[float, float, float, float]:
    """COCO's [x, y, width, height] as (x1, y1, x2, y2)."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)
