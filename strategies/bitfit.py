"""BitFit: only the bias terms of the backbone, and a linear head, train."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy

# Attribute names under which torch and timm modules keep their additive bias: `bias` (Linear, Conv, LayerNorm)
# and `in_proj_bias` (nn.MultiheadAttention, used by open_clip). Looked up per module, not by full-name matching.
BIAS_ATTRIBUTES = ("bias", "in_proj_bias")


def bias_parameters(module: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Every bias parameter directly owned by a submodule of `module`."""
    for prefix, sub in module.named_modules():
        for attr in BIAS_ATTRIBUTES:
            param = sub._parameters.get(attr)
            if param is not None:
                yield f"{prefix}.{attr}" if prefix else attr, param


@dataclass(frozen=True)
class BitFitConfig(StrategyConfig):
    lr: float = hp(0.05, "peak learning rate")


@register_strategy("bitfit", config=BitFitConfig)
class BitFit(Strategy):
    """BitFit (Ben Zaken et al., ACL 2022; the "Bias" baseline of VPT). Trains: every bias of the backbone
    (attention, MLP and norm layers), a linear head. Freezes: every weight matrix, the embeddings, norm scales."""

    family = "baseline"
    paper = "Ben Zaken et al., BitFit, ACL 2022; baseline in Jia et al., VPT, ECCV 2022"
    backbone_families = ("vit", "clip")  # clip: the image tower
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()

    def __init__(self, cfg: BitFitConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        yield from (("backbone." + n, p) for n, p in bias_parameters(self.backbone))
        yield from (("head." + n, p) for n, p in self.head.named_parameters())

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        # The biases are shared and updated in place; a new task only widens the head.
        return (self.head.in_features + 1) * new_classes
