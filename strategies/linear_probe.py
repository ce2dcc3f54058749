"""Linear probe: a linear classifier on frozen backbone features."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class LinearProbeConfig(StrategyConfig):
    epochs: int = hp(10, "passes over each task's training data (cheap: features are cached)")
    lr: float = hp(0.1, "peak learning rate")


@register_strategy("linear_probe", config=LinearProbeConfig)
class LinearProbe(Strategy):
    """Linear probe (the "Linear" baseline of the VPT paper). Trains: a linear head. Freezes: the backbone."""

    family = "baseline"
    paper = "Jia et al., Visual Prompt Tuning, ECCV 2022 (baseline)"
    needs_pixels = False  # the head reads only the cached features
    backbone_families = ("vit", "clip")
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()

    def __init__(self, cfg: LinearProbeConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def frozen_key(self) -> str | None:
        return "vision.pooled"  # the backbone's pooled output, shared with every strategy that caches it

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(cached if cached is not None else self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        return (self.head.in_features + 1) * new_classes
