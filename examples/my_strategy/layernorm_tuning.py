"""An example PromptShift plugin: LayerNorm tuning. Check it with

    python run_bench.py check-plugin examples/my_strategy/layernorm_tuning.py

and run it with `python run_bench.py --plugin examples/my_strategy/layernorm_tuning.py --strategies ln_tune`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class LayerNormTuningConfig(StrategyConfig):
    optimizer: str = hp("adam", "optimizer (sgd | adam | adamw)")
    lr: float = hp(0.01, "peak learning rate")
    epochs: int = hp(3, "passes over each task's training data")


@register_strategy("ln_tune", config=LayerNormTuningConfig)
class LayerNormTuning(Strategy):
    """LN-Tune (Basu et al., "Strong Baselines for Parameter-Efficient Few-Shot Fine-Tuning", AAAI 2024).
    Trains: the scale and shift of every LayerNorm in the backbone, and a linear head. Freezes: everything else."""

    family = "baseline"
    paper = "Basu et al., AAAI 2024"
    flags = Flags()  # nothing that changes comparability: one pass per image, no replay, no task identity
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    backbone_families = ("vit", "clip")  # on CLIP it gets the image tower only

    def __init__(self, cfg: LayerNormTuningConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        # Found by module type, not by parameter name: timm and open_clip name their norms differently.
        for module_name, module in self.backbone.named_modules():
            if isinstance(module, nn.LayerNorm):
                for name, param in module.named_parameters(recurse=False):
                    yield f"backbone.{module_name}.{name}", param
        yield from self.head.named_parameters(prefix="head")

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        return (self.head.in_features + 1) * new_classes
