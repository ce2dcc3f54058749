"""LwF: full fine-tuning plus distillation towards the model as it was before the current task."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import hp, mask_logits, register_strategy
from strategies.naive import Naive, NaiveConfig


@dataclass(frozen=True)
class LwFConfig(NaiveConfig):
    alpha: float = hp(1.0, "weight of the distillation loss")
    temperature: float = hp(2.0, "softmax temperature of the distillation")


@register_strategy("lwf", config=LwFConfig)
class LwF(Naive):
    """Learning without Forgetting (Li & Hoiem, TPAMI 2017) through avalanche-lib's
    `LearningWithoutForgetting`: cross-entropy on the new task plus alpha * KL between the current and the
    previous model's softened outputs on the classes learned before. Trains: the whole backbone and a linear head.
    Freezes: nothing (the previous model is a frozen copy, kept outside the trained parameters)."""

    paper = "Li & Hoiem, Learning without Forgetting, TPAMI 2017"

    def __init__(self, cfg: LwFConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        from avalanche.training.regularization import LearningWithoutForgetting

        super().__init__(cfg, backbone, info)
        self.lwf = LearningWithoutForgetting(alpha=cfg.alpha, temperature=cfg.temperature)

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        logits = self(batch.x, batch.cached)
        loss = F.cross_entropy(mask_logits(logits, ctx.seen_classes), batch.y)
        return loss + self.lwf(batch.x, logits, self)

    def after_task(self, ctx: TaskContext) -> None:
        # avalanche's `post_adapt` does these three updates but reads them from a task-labelled avalanche
        # experience; the harness holds tensors, so the same updates are made here from the task context.
        lwf = self.lwf
        lwf.prev_model = None  # so the snapshot below does not nest the previous teacher inside the new one
        teacher = copy.deepcopy(self).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        lwf.prev_model = teacher
        lwf.expcount += 1
        lwf.prev_classes_by_task[0] |= set(ctx.train_classes)
