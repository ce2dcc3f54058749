"""SimpleCIL: class-mean prototypes of frozen features and a cosine classifier; nothing trains."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy
from strategies._frozen_features import (check_clip_feature, device_of, feature_width, frozen_feature_key,
                                        pooled_features, step_features)
from strategies._vit_prompting import FrozenEncoderMixin

PAPER = ("Zhou et al., Revisiting Class-Incremental Learning with Pre-Trained Models: Generalizability and "
         "Adaptivity are All You Need, IJCV 2024")


@dataclass(frozen=True)
class SimpleCILConfig(StrategyConfig):
    epochs: int = hp(0, "nothing trains (the harness has no parameter to step), so epochs change nothing")
    scale: float = hp(1.0, "logit scale of the cosine classifier (PILOT's CosineLinear sigma, 1 before any "
                           "training); argmax predictions do not depend on it")
    clip_feature: str = hp("pre_projection", "on a CLIP image tower: pre_projection (class token after ln_post, "
                                             "before proj, as RanPAC's official code reads a ViT) | projected")


@register_strategy("simplecil", config=SimpleCILConfig)
class SimpleCIL(FrozenEncoderMixin, Strategy):
    """SimpleCIL (Zhou et al., IJCV 2024; PILOT's `simplecil`). After each task, every class's prototype is the mean
    frozen feature (the backbone's pooled output; on CLIP the pre-projection class token, `clip_feature`) of all its training images seen so far; an image is scored by
    cosine similarity to each prototype. Differences from the official code: the prototype of a class seen again in
    a later step (domain-incremental streams) is the running mean over every step, where PILOT's class-incremental
    loop only ever sees a class once; the logit scale stays 1 (no training ever changes PILOT's sigma).
    Trains: nothing. Freezes: the whole backbone (prototypes are buffers, set by class means)."""

    family = "continual"
    paper = PAPER
    needs_pixels = False  # prototypes and predictions read only the cached frozen features
    backbone_families = ("vit", "clip")  # clip: the image tower
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()
    training_free = True

    def __init__(self, cfg: SimpleCILConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        check_clip_feature("simplecil", cfg.clip_feature)
        self.feature_dim = feature_width(backbone, cfg.clip_feature)
        self.register_buffer("sums", torch.zeros(info.num_classes, self.feature_dim, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(info.num_classes, dtype=torch.float64))

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.backbone, x, self.cfg.clip_feature)

    def frozen_key(self) -> str | None:
        return frozen_feature_key(self.backbone, self.cfg.clip_feature)

    @property
    def prototypes(self) -> torch.Tensor:
        """Class means `(C, d)`; zero rows for classes not seen yet."""
        return (self.sums / self.counts.clamp(min=1).unsqueeze(1)).float()

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        features = cached if cached is not None else self.frozen_inputs(x)
        protos = F.normalize(self.prototypes.to(features.device), dim=-1)
        return self.cfg.scale * F.normalize(features.float(), dim=-1) @ protos.t()

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        features, labels = step_features(ctx.train_data, self.frozen_inputs, device_of(self))
        self.sums.index_add_(0, labels, features.double())
        self.counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))

    def params_per_new_task(self, new_classes: int) -> int:
        return self.feature_dim * new_classes  # one stored prototype per class
