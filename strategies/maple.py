"""MaPLe: coupled vision-language prompts; vision prompts are linear maps of the language prompts, layer by layer."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy
from bench.models.backbones import ClipBackbone
from strategies._clip_deep import (TextContextLayout, encode_image_deep, encode_text_deep, normalized,
                                   scaled_depth)
from strategies.coop import TextFixedDuringEval

PAPER = "Khattak et al., MaPLe: Multi-modal Prompt Learning, CVPR 2023"


@dataclass(frozen=True)
class MaPLeConfig(StrategyConfig):
    n_ctx: int = hp(2, "prompt tokens per layer in each tower (official: 2)")
    ctx_init: str = hp("a photo of a", "phrase whose first n_ctx token embeddings start the text context")
    prompt_depth: int = hp(9, "J: prompted layers, given for ViT-B/16's 12 (scaled to the shallower tower)")
    optimizer: str = hp("sgd", "sgd | adam | adamw")
    lr: float = hp(0.0035, "peak learning rate (official: SGD 0.0035, cosine)")
    batch_size: int = hp(4, "training batch size (official)")
    epochs: int = hp(5, "passes over the training data (official base-to-new: 5 at 16 shots)")
    warmup_epochs: int = hp(1, "warm-up epochs (official: 1 at a constant 1e-5; linear here)")


@register_strategy("maple", config=MaPLeConfig)
class MaPLe(TextFixedDuringEval, Strategy):
    """MaPLe (Khattak et al., CVPR 2023; official code muzairkhattak/multimodal-prompt-learning). Text: the
    first n_ctx tokens after SOS of "{ctx_init} {class}." are learned, and before each text block i in 1..J-1 they
    are replaced by that layer's learned prompts. Vision: before block 0, n_ctx prompts = F_0(text context) are
    appended after the patch tokens; before block i in 1..J-1 they are replaced by F_i(text prompts of layer i);
    each F_i is a linear map from the text width to the vision width (the coupling function). Logits: CLIP's
    scaled cosine between prompted image and text features; CE over the classes trained on.
    Differences from the official code: J is given for ViT-B/16 and scaled to smaller CLIPs (`J * depth / 12`
    rounded, the shallower tower's depth); the warm-up ramps linearly (official: constant 1e-5); fp32 (official fp16).
    Trains: text context, deep text prompts ((J-1) x n_ctx x w_text), J coupling maps (w_text -> w_vision).
    Freezes: both CLIP encoders."""

    family = "vision-language"
    paper = PAPER
    backbone_families = ("clip",)
    needs_text = True
    needs_pixels = True  # the image features depend on the learned vision prompts
    supported_scenarios = ("base_to_new", "class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags(class_names=True)

    def __init__(self, cfg: MaPLeConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.depth = scaled_depth(cfg.prompt_depth, backbone)
        self.layout = TextContextLayout(backbone, info.class_names, cfg.n_ctx, cfg.ctx_init)
        width, vision = backbone.text.width, backbone.visual.embed_dim
        self.ctx = nn.Parameter(self.layout.initial.clone())
        self.deep_text = nn.Parameter(torch.randn(self.depth - 1, cfg.n_ctx, width) * 0.02)
        first = nn.Linear(width, vision)
        clone = nn.Linear(width, vision)  # the official deeper maps are copies of one initialised layer
        self.couplings = nn.ModuleList([first] + [copy.deepcopy(clone) for _ in range(self.depth - 1)])

    def text_prompts(self) -> list[torch.Tensor]:
        """Per text layer 0..J-1, its `(n_ctx, w_text)` prompts."""
        return [self.ctx] + list(self.deep_text.unbind(0))

    def vision_prompts(self) -> list[torch.Tensor]:
        return [f(p) for f, p in zip(self.couplings, self.text_prompts())]

    def encode_text_features(self) -> torch.Tensor:
        text = self.backbone.text
        embeds = self.layout.splice(self.ctx)
        return normalized(encode_text_deep(text, embeds, self.layout.ids, list(self.deep_text.unbind(0))))

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        image = normalized(encode_image_deep(self.backbone.visual, x, self.vision_prompts()))
        return self.backbone.logit_scale * image @ self.text_features().t().to(image.dtype)
