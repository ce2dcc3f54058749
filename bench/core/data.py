"""The data types the training loop, the strategies and the scenarios share: defined below all three, so that
neither scenarios nor strategies import the loop for its types."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class TensorData:
    """A materialised data set: pixels in [0, 1] `(N, 3, H, W)` (uint8 storage), labels, optional frozen cache."""

    images: torch.Tensor  # uint8, converted to float per batch to keep memory small
    labels: torch.Tensor  # int64 class indices in the scenario's class space; -1 when unlabelled
    cached: torch.Tensor | None = None  # frozen_inputs() of every image, filled by the harness

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> "TensorData":
        cached = self.cached[index] if self.cached is not None else None
        return TensorData(self.images[index], self.labels[index], cached)

    @staticmethod
    def concat(parts: Sequence["TensorData"]) -> "TensorData":
        caches = [p.cached for p in parts]
        cached = torch.cat(caches) if all(c is not None for c in caches) else None
        return TensorData(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]), cached)


@dataclass
class Batch:
    """One training batch. `target_*` hold an unlabelled target-domain batch for adaptation strategies."""

    x: torch.Tensor | None
    y: torch.Tensor
    cached: torch.Tensor | None = None
    target_x: torch.Tensor | None = None
    target_cached: torch.Tensor | None = None


@dataclass
class ScenarioInfo:
    """What a strategy may know about the scenario when it is built."""

    kind: str
    num_classes: int
    class_names: list[str]
    domains: list[str] = field(default_factory=list)  # style domains in this scenario (for DAPL-like methods)
    source_domain: str | None = None
    target_domain: str | None = None


@dataclass
class TaskContext:
    """What the harness tells a strategy at the start and end of each training step."""

    index: int
    num_steps: int
    train_classes: list[int]  # classes present in this step's training data
    seen_classes: list[int]  # every class trained on so far, this step included: the training label space
    domain: str | None
    train_data: TensorData
    unlabelled: TensorData | None = None  # target-domain images without labels (domain adaptation)


@dataclass
class TrainStep:
    """One training step of a scenario, as the harness consumes it."""

    data: TensorData
    classes: list[int]
    domain: str | None = None
    unlabelled: TensorData | None = None


@dataclass
class EvalSet:
    """One evaluation set. `label_space`: classes to predict among; None means "every class seen so far"."""

    name: str
    data: TensorData
    label_space: list[int] | None = None


def label_space_for(eval_set: EvalSet, seen: Sequence[int]) -> list[int]:
    """The classes an evaluation set is predicted among: its own label space, else every class trained on."""
    return list(eval_set.label_space) if eval_set.label_space is not None else list(seen)
