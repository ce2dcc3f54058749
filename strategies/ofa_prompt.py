"""OFA-style deep prompts (prefix tuning): learned keys and values prepended in the self-attention of chosen layers."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy
from bench.models.backbones import VisionBackbone
from strategies._vit_prompting import FrozenEncoderMixin, PrefixGenerator, attach_prefix_attention, set_prefixes


@dataclass(frozen=True)
class OFAPromptConfig(StrategyConfig):
    length: int = hp(10, "prefix keys/values per chosen layer")
    depth: int = hp(0, "prefixes in the first `depth` blocks (0: every block)")
    layers: tuple[int, ...] = hp((), "explicit block indices getting prefixes (overrides depth when non-empty)")
    reparam: bool = hp(False, "reparameterise: embedding -> Linear -> act -> Linear (off: the embedding directly)")
    reparam_hidden: int = hp(0, "hidden width of the reparameterisation MLP (0: the embedding width d)")
    reparam_act: str = hp("relu", "relu | tanh: the reparameterisation's nonlinearity")
    init_std: float = hp(1.0, "std of the prefix embedding (1.0: nn.Embedding's default, as OFA and peft use)")
    lr: float = hp(0.05, "peak learning rate")
    warmup_epochs: int = hp(1, "linear warm-up epochs")


@register_strategy("ofa_prompt", config=OFAPromptConfig)
class OFAPrompt(FrozenEncoderMixin, Strategy):
    """OFA-style deep prompt tuning (Yang et al., Prompt Tuning for Unified Multimodal Pretrained Models, ACL
    Findings 2023; the mechanism of prefix tuning / P-Tuning v2): an embedding `(length, depth * 2 * d)`, optionally
    reparameterised by an MLP, gives per-layer prefix keys and values prepended to K and V of the first `depth`
    blocks' (or the listed `layers'`) self-attention of an image encoder (`ofa_prompt_coca` puts them in a CoCa
    encoder and decoder, as the paper does). Trains: the prefix embedding (and MLP), a linear head on the class token.
    Freezes: the whole ViT (kept in eval mode)."""

    family = "prompt"
    paper = "Yang et al., Prompt Tuning for Unified Multimodal Pretrained Models, ACL Findings 2023"
    flags = Flags()
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    backbone_families = ("vit", "clip")  # clip: the image tower (timm Attention and nn.MultiheadAttention)

    def __init__(self, cfg: OFAPromptConfig, backbone: VisionBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        n = backbone.num_blocks
        chosen = sorted(set(cfg.layers)) if cfg.layers else list(range(cfg.depth or n))
        if not chosen or chosen[0] < 0 or chosen[-1] >= n or (not cfg.layers and cfg.depth > n):
            raise ValueError(f"depth {cfg.depth} / layers {cfg.layers} outside the {n} blocks "
                             f"(depth 0 means every block)")
        self.chosen = chosen
        # The backbone instance is this strategy's own, so its chosen attention modules can be wrapped in place.
        self.layers = attach_prefix_attention(backbone.blocks, chosen)
        self.prefix = PrefixGenerator(cfg.length, len(chosen), backbone.embed_dim, cfg.reparam, cfg.reparam_hidden,
                                      cfg.reparam_act, cfg.init_std)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def prefixes(self) -> torch.Tensor:
        """Per-layer prefixes `(depth, length, 2 * d)`: key half first, value half second."""
        return self.prefix()

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        set_prefixes(self.layers, self.prefixes())
        try:
            return self.head(self.backbone(x))
        finally:  # never leave graph-holding tensors inside the backbone
            set_prefixes(self.layers, None)

    def params_per_new_task(self, new_classes: int) -> int:
        return (self.head.in_features + 1) * new_classes
