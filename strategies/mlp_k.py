"""MLP-k: a k-layer MLP head on frozen backbone features."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class MLPKConfig(StrategyConfig):
    layers: int = hp(3, "linear layers in the head, ReLU between them (1 = a linear probe; VPT reports MLP-3)")
    hidden: int = hp(0, "hidden width (0: the backbone's feature width)")
    epochs: int = hp(10, "passes over each task's training data (cheap: features are cached)")
    lr: float = hp(0.05, "peak learning rate")


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers through `sizes`, ReLU between consecutive layers (none after the last)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


@register_strategy("mlp_k", config=MLPKConfig)
class MLPK(Strategy):
    """MLP-k (the "MLP-k" baseline of Jia et al., VPT, ECCV 2022). Trains: a k-layer MLP head.
    Freezes: the backbone (its features are cached once per image)."""

    family = "baseline"
    paper = "Jia et al., Visual Prompt Tuning, ECCV 2022 (baseline)"
    backbone_families = ("vit", "clip")  # clip: the image tower
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()
    needs_pixels = False

    def __init__(self, cfg: MLPKConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if cfg.layers < 1:
            raise ValueError(f"mlp_k: layers={cfg.layers} must be at least 1")
        hidden = cfg.hidden or backbone.num_features
        self.head = mlp([backbone.num_features] + [hidden] * (cfg.layers - 1) + [info.num_classes])

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(cached if cached is not None else self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        return (self.head[-1].in_features + 1) * new_classes
