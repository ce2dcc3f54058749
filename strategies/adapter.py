"""Bottleneck adapters (Houlsby / Pfeiffer placement) in every block of a frozen ViT."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy

PLACEMENTS = {"houlsby": ("attn", "mlp"), "pfeiffer": ("mlp",)}  # sublayers whose output gets an adapter


@dataclass(frozen=True)
class AdapterConfig(StrategyConfig):
    reduction: int = hp(8, "bottleneck width = embed_dim // reduction (8-16 in the papers)")
    placement: str = hp("houlsby", "houlsby: after attention and after the MLP | pfeiffer: after the MLP only")
    lr: float = hp(0.05, "peak learning rate")


class Bottleneck(nn.Module):
    """h + up(GELU(down(h))), with `up` zero-initialised so that the adapter starts as the identity."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


def bottleneck_adapters(owner: str, placement: str, reduction: int, backbone: nn.Module) -> nn.ModuleList:
    """One bottleneck per block and placement site (`PLACEMENTS[placement]`), width embed_dim // reduction; the
    caller registers the hooks that apply them. `owner` names the strategy in the error messages."""
    if placement not in PLACEMENTS:
        raise ValueError(f"{owner}: unknown placement {placement!r}; valid: {', '.join(PLACEMENTS)}")
    if reduction < 1:
        raise ValueError(f"{owner}: reduction={reduction} must be at least 1")
    dim = backbone.embed_dim
    hidden = max(1, dim // reduction)
    return nn.ModuleList(nn.ModuleDict({site: Bottleneck(dim, hidden) for site in PLACEMENTS[placement]})
                         for _ in backbone.blocks)


def _apply_to_output(adapter: Bottleneck):
    """A forward hook running `adapter` on a sublayer's output; nn.MultiheadAttention returns (out, weights)."""

    def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (adapter(output[0]),) + tuple(output[1:])
        return adapter(output)

    return hook


@register_strategy("adapter", config=AdapterConfig)
class Adapter(Strategy):
    """Adapters (Houlsby et al., ICML 2019; Pfeiffer et al., EACL 2021; the "Adapter" baseline of VPT): a
    bottleneck on the output of each block's attention and MLP (Houlsby) or MLP only (Pfeiffer), before the
    residual sum. Trains: the adapters, a linear head. Freezes: the whole backbone.

    Adapters are attached with forward hooks on `block.attn` / `block.mlp` (the same names in timm blocks and
    open_clip resblocks), so their weights belong to this strategy and the backbone's own parameter list, and
    hence its parameter count, stays that of the pretrained model. The backbone is built fresh per cell."""

    family = "baseline"
    paper = "Houlsby et al., Parameter-Efficient Transfer Learning for NLP, ICML 2019; baseline in VPT"
    backbone_families = ("vit", "clip")  # clip: the image tower
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()

    def __init__(self, cfg: AdapterConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.adapters = bottleneck_adapters("adapter", cfg.placement, cfg.reduction, backbone)
        for block, per_block in zip(backbone.blocks, self.adapters):
            for site, adapter in per_block.items():
                getattr(block, site).register_forward_hook(_apply_to_output(adapter))
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(x))

    def params_per_new_task(self, new_classes: int) -> int:
        # Adapters are shared across tasks and updated in place; a new task only widens the head.
        return (self.head.in_features + 1) * new_classes
