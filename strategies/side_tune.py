"""Side-tuning: a small trainable side network beside the frozen backbone, blended by a learned gate."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class SideTuneConfig(StrategyConfig):
    width: int = hp(16, "channels of the side network's first conv (doubled by each of its next two)")
    lr: float = hp(0.05, "peak learning rate")


def side_network(width: int, out_features: int) -> nn.Sequential:
    """Three stride-2 3x3 convs, global average pooling, a linear map to the backbone's feature width."""
    chans = [3, width, 2 * width, 4 * width]
    layers: list[nn.Module] = []
    for c_in, c_out in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chans[-1], out_features))


@register_strategy("side_tune", config=SideTuneConfig)
class SideTune(Strategy):
    """Side-tuning (Zhang et al., ECCV 2020; the "Sidetune" baseline of VPT): features are
    sigma(alpha) * backbone(x) + (1 - sigma(alpha)) * side(x), alpha initialised to 0, then a linear head.
    Trains: the side network, alpha, the head. Freezes: the backbone (its features are cached once per image)."""

    family = "baseline"
    paper = "Zhang et al., Side-Tuning, ECCV 2020; baseline in Jia et al., VPT, ECCV 2022"
    backbone_families = ("vit", "clip")  # clip: the image tower
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()
    needs_pixels = True  # the side network reads pixels; only the backbone's features come from the cache

    def __init__(self, cfg: SideTuneConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.side = side_network(cfg.width, backbone.num_features)
        self.alpha = nn.Parameter(torch.zeros(()))  # sigma(0) = 0.5: both branches start equal
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        base = cached if cached is not None else self.backbone(x)
        side = self.side(self.backbone.preprocess(x))  # same resizing and normalisation as the backbone sees
        gate = torch.sigmoid(self.alpha)
        return self.head(gate * base + (1 - gate) * side)

    def params_per_new_task(self, new_classes: int) -> int:
        return (self.head.in_features + 1) * new_classes
