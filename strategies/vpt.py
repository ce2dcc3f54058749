"""VPT: learned prompt tokens inserted into a frozen ViT, at the input (shallow) or before every block (deep)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy
from bench.models.backbones import VisionBackbone
from strategies._vit_prompting import (FrozenEncoderMixin, init_head, insert_prompts, patch_size_of,
                                       replace_prompts, xavier_prompt_bound)

PAPER = "Jia et al., Visual Prompt Tuning, ECCV 2022"


@dataclass(frozen=True)
class VPTShallowConfig(StrategyConfig):
    length: int = hp(10, "prompt tokens inserted after the class token")
    prompt_dropout: float = hp(0.0, "dropout on the prompt tokens (a mask per image, as the official code)")
    head_init: str = hp("kaiming_fan_out", "linear head init: kaiming_fan_out (official VPT) | torch | zeros | "
                                           "trunc_normal")
    lr: float = hp(0.25, "peak learning rate (SGD, cosine; VPT sweeps large rates)")
    warmup_epochs: int = hp(1, "linear warm-up epochs")


@dataclass(frozen=True)
class VPTDeepConfig(VPTShallowConfig):
    prompt_dropout: float = hp(0.1, "dropout on the prompt tokens (0.1 in the official deep configs)")


class _VPT(FrozenEncoderMixin, Strategy):
    """Shared VPT body; `deep` picks where prompts enter. As the official code: xavier-uniform prompts, per-image
    prompt dropout, kaiming-normal (fan_out) head with zero bias, frozen encoder in eval mode. Remaining differences:
    the official VTAB recipe's weight decay (1e-4, swept with the rate) and its lr/length grid search per task are
    set by the suite, not here; the official MLP head option (`mlp_num` > 0) is not offered."""

    family = "prompt"
    paper = PAPER
    flags = Flags()
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    backbone_families = ("vit", "clip")  # clip: the image tower
    deep = False

    def __init__(self, cfg: VPTShallowConfig, backbone: VisionBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        depth = backbone.num_blocks if self.deep else 1
        bound = xavier_prompt_bound(patch_size_of(backbone), backbone.embed_dim)
        # Row i: the prompts entering block i (only row 0 when shallow).
        self.prompts = nn.Parameter(torch.empty(depth, cfg.length, backbone.embed_dim).uniform_(-bound, bound))
        self.prompt_dropout = nn.Dropout(cfg.prompt_dropout)
        self.head = init_head(nn.Linear(backbone.num_features, info.num_classes), cfg.head_init)

    def batch_prompts(self, row: int, batch: int) -> torch.Tensor:
        """Prompts of row `row` expanded to `(batch, length, d)` before dropout, so that every image draws its own
        dropout mask (the official code expands first; one mask for the whole batch would drop the same tokens
        for every image)."""
        return self.prompt_dropout(self.prompts[row].unsqueeze(0).expand(batch, -1, -1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels -> tokens after the last block, prompt slots included."""
        bb, prefix = self.backbone, self.backbone.num_prefix_tokens
        tokens = bb.embed(x)
        tokens = insert_prompts(tokens, self.batch_prompts(0, tokens.shape[0]), prefix)
        for i, block in enumerate(bb.blocks):
            if i > 0 and self.deep:
                tokens = replace_prompts(tokens, self.batch_prompts(i, tokens.shape[0]), prefix)
            tokens = block(tokens)
        return tokens

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone.finalize(self.encode(x)))

    def params_per_new_task(self, new_classes: int) -> int:
        return (self.head.in_features + 1) * new_classes


@register_strategy("vpt_shallow", config=VPTShallowConfig)
class VPTShallow(_VPT):
    """VPT-Shallow (Jia et al., ECCV 2022): prompt tokens after the class token at the input only, no positional
    embedding, xavier-uniform init. Trains: prompts (length x d), linear head on the class token.
    Freezes: the whole ViT (kept in eval mode)."""

    deep = False


@register_strategy("vpt_deep", config=VPTDeepConfig)
class VPTDeep(_VPT):
    """VPT-Deep (Jia et al., ECCV 2022): fresh prompt tokens before every block replace the previous block's prompt
    outputs. Trains: prompts (blocks x length x d), linear head on the class token. Freezes: the whole ViT (kept in
    eval mode)."""

    deep = True
