"""LoRA on the ViT's attention (and optionally MLP) projections, injected by huggingface peft."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy

# peft target-module names in timm ViT blocks.
TARGETS = {"qkv": ("qkv",), "mlp": ("fc1", "fc2")}


@dataclass(frozen=True)
class LoRAConfig(StrategyConfig):
    rank: int = hp(8, "rank r of each low-rank update")
    alpha: float = hp(16.0, "LoRA alpha: updates are scaled by alpha / rank")
    dropout: float = hp(0.0, "dropout on the LoRA branch's input")
    targets: str = hp("qkv", "qkv: the attention's input projection | qkv+mlp: also both MLP layers")
    lr: float = hp(0.05, "peak learning rate")


@register_strategy("lora", config=LoRAConfig)
class LoRA(Strategy):
    """LoRA (Hu et al., ICLR 2022) through huggingface peft (`LoraConfig` + `inject_adapter_in_model`).
    Trains: the low-rank A and B matrices of every targeted projection, a linear head. Freezes: the backbone's own
    weights (B starts at zero, so the model starts as the pretrained one)."""

    family = "baseline"
    paper = "Hu et al., LoRA: Low-Rank Adaptation of Large Language Models, ICLR 2022"
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()
    # timm only. open_clip's attention is an nn.MultiheadAttention, which peft 0.21 adapts by merging the update
    # into the frozen in_proj/out_proj weights before every forward and subtracting it after: (W + dW) - dW is not
    # W in floating point, so the "frozen" weights drift a little at every step (and are re-registered as new
    # Parameter objects). That breaks the frozen-weights contract, so CLIP towers are not offered.
    backbone_families = ("vit",)

    def __init__(self, cfg: LoRAConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        super().__init__(cfg, backbone, info)
        parts = cfg.targets.split("+")
        if backbone.flavour != "timm":
            raise ValueError("lora runs on timm ViTs only (see LoRA.backbone_families)")
        if not all(p in TARGETS for p in parts):
            raise ValueError(f"lora: unknown targets {cfg.targets!r}; valid: qkv, qkv+mlp")
        modules = [m for part in parts for m in TARGETS[part]]
        config = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=modules)
        # Injected in place into the backbone built for this cell (never shared between cells).
        inject_adapter_in_model(config, backbone.encoder)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def lora_layers(self) -> Iterator[nn.Module]:
        from peft.tuners.lora import LoraLayer

        return (m for m in self.backbone.modules() if isinstance(m, LoraLayer))

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        # Found structurally: peft's LoraLayer names its own adapter containers in `adapter_layer_names`.
        for i, layer in enumerate(self.lora_layers()):
            for container in layer.adapter_layer_names:
                for name, param in getattr(layer, container).named_parameters():
                    yield f"lora{i}.{container}.{name}", param
        yield from (("head." + n, p) for n, p in self.head.named_parameters())

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        # The low-rank updates are shared and updated in place; a new task only widens the head.
        return (self.head.in_features + 1) * new_classes
