"""Full fine-tuning: every backbone weight and a new head train."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class FullFinetuneConfig(StrategyConfig):
    lr: float = hp(0.01, "peak learning rate")


@register_strategy("full_finetune", config=FullFinetuneConfig)
class FullFinetune(Strategy):
    """Full fine-tuning (the "Full" baseline of the VPT paper). Trains: the whole backbone and a linear head.
    Freezes: nothing."""

    family = "baseline"
    paper = "Jia et al., Visual Prompt Tuning, ECCV 2022 (baseline)"
    backbone_families = ("vit", "clip")
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()

    def __init__(self, cfg: FullFinetuneConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def trainable_parameters(self):
        return self.named_parameters()

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        # One shared model is updated in place; a new task only widens the head.
        return (self.head.in_features + 1) * new_classes
