"""Partial-k: the last k transformer blocks, the final norm and a linear head train on a frozen ViT stem."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy


@dataclass(frozen=True)
class PartialKConfig(StrategyConfig):
    k: int = hp(1, "last transformer blocks that train (1 = the VPT paper's Partial-1)")
    lr: float = hp(0.01, "peak learning rate")


@register_strategy("partial_k", config=PartialKConfig)
class PartialK(Strategy):
    """Partial-k fine-tuning (the "Partial-1" baseline of Jia et al., VPT, ECCV 2022; Yosinski et al. 2014).
    Trains: the last k blocks, the final norm, a linear head. Freezes: the embeddings and the first (n - k) blocks,
    whose output tokens are cached once per image."""

    family = "baseline"
    paper = "Jia et al., Visual Prompt Tuning, ECCV 2022 (baseline)"
    backbone_families = ("vit", "clip")  # clip: the image tower
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()
    needs_pixels = False  # the trainable part starts from the cached tokens after block n - k

    def __init__(self, cfg: PartialKConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if not 1 <= cfg.k <= backbone.num_blocks:
            raise ValueError(f"partial_k: k={cfg.k} must lie in 1..{backbone.num_blocks} (the backbone's depth)")
        self.start = backbone.num_blocks - cfg.k
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        parts = {f"block{i}": b for i, b in enumerate(self.backbone.blocks) if i >= self.start}
        parts.update(final_norm=self.backbone.final_norm(), head=self.head)
        for prefix, module in parts.items():
            for name, param in module.named_parameters():
                yield f"{prefix}.{name}", param

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens after the frozen blocks `(B, tokens, d)`; with k = depth, the embeddings themselves."""
        return self.backbone.run_blocks(self.backbone.embed(x), 0, self.start)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        tokens = cached if cached is not None else self.frozen_inputs(x)
        return self.head(self.backbone.finalize(self.backbone.run_blocks(tokens, self.start)))

    def params_per_new_task(self, new_classes: int) -> int:
        # The tuned blocks are shared and updated in place; a new task only widens the head.
        return (self.head.in_features + 1) * new_classes
