"""APER: adapt the backbone with a PEFT module on the first task only, then classify every task by cosine
prototypes of the adapted and the frozen features, concatenated."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, mask_logits, register_strategy
from strategies._frozen_features import device_of, step_features
from strategies._vit_prompting import FrozenEncoderMixin
from strategies.adapter import Bottleneck, bottleneck_adapters

PAPER = ("Zhou et al., Revisiting Class-Incremental Learning with Pre-Trained Models: Generalizability and "
         "Adaptivity are All You Need, IJCV 2024 (APER; ADAM in the arXiv version)")


@dataclass(frozen=True)
class AperConfig(StrategyConfig):
    reduction: int = hp(12, "adapter bottleneck = embed_dim // reduction (PILOT's ffn_num 64 on ViT-B's 768)")
    placement: str = hp("pfeiffer", "houlsby | pfeiffer (after the MLP only: the closest to AdaptFormer's MLP "
                                     "adapter of the official code)")
    epochs: int = hp(20, "passes over the FIRST task's data (PILOT's tuned_epoch); later tasks train nothing")
    batch_size: int = hp(48, "training batch size (PILOT's CIFAR config)")
    lr: float = hp(0.01, "peak learning rate (PILOT's init_lr, SGD, cosine)")
    weight_decay: float = hp(0.0005, "weight decay (PILOT's)")


@register_strategy("aper", config=AperConfig)
class Aper(FrozenEncoderMixin, Strategy):
    """APER with adapters (Zhou et al., IJCV 2024; PILOT's `aper_adapter`). On the first task only, bottleneck
    adapters in every block and a linear head train with CE over the task's classes; then nothing trains
    (`trains_on` is false from the second task). After every task, each class's prototype is the mean of
    [frozen feature, adapted feature] over its training images, and images are scored by cosine similarity to the
    prototypes (the head is discarded, as in the paper).
    Differences from the official code: the adapter is this suite's bottleneck (`strategies.adapter`: after the
    MLP, `pfeiffer` placement, zero-initialised up-projection) where the official one is AdaptFormer's adapter in
    parallel with the MLP (scale 0.1); the first-task head is linear, not PILOT's cosine head; the official code
    offers VPT and SSF variants too, not built here.
    Trains: adapters and a linear head, on the first task only. Freezes: the backbone; everything after task 1
    (prototypes are buffers)."""

    family = "continual"
    paper = PAPER
    backbone_families = ("vit", "clip")
    supported_scenarios = ("class_incremental", "domain_incremental")
    flags = Flags(extra_forward_passes=1)  # the frozen pass of the concatenation (cached: once per image)
    needs_pixels = True  # the adapted pass needs pixels; the frozen half comes from the cache

    def __init__(self, cfg: AperConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.adapters = bottleneck_adapters("aper", cfg.placement, cfg.reduction, backbone)
        self.adapting = False  # the hooks apply the adapters only inside `adapted()`: one backbone, two models
        for block, per_block in zip(backbone.blocks, self.adapters):
            for site, adapter in per_block.items():
                getattr(block, site).register_forward_hook(self._hook(adapter))
        self.head = nn.Linear(backbone.num_features, info.num_classes)
        width = 2 * backbone.num_features
        self.register_buffer("sums", torch.zeros(info.num_classes, width, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(info.num_classes, dtype=torch.float64))

    def _hook(self, adapter: Bottleneck):
        def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
            if not self.adapting:
                return output
            if isinstance(output, tuple):  # nn.MultiheadAttention returns (out, weights)
                return (adapter(output[0]),) + tuple(output[1:])
            return adapter(output)
        return hook

    def adapted(self, x: torch.Tensor) -> torch.Tensor:
        """The adapted model's pooled feature."""
        self.adapting = True
        try:
            return self.backbone(x)
        finally:
            self.adapting = False

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # adapters off: the pretrained model's feature

    def features(self, x: torch.Tensor, cached: torch.Tensor | None) -> torch.Tensor:
        """[frozen, adapted] features `(B, 2 d)`."""
        frozen = cached if cached is not None else self.frozen_inputs(x)
        return torch.cat([frozen.float(), self.adapted(x).float()], dim=-1)

    @property
    def prototypes(self) -> torch.Tensor:
        return (self.sums / self.counts.clamp(min=1).unsqueeze(1)).float()

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        protos = F.normalize(self.prototypes.to(x.device), dim=-1)
        return F.normalize(self.features(x, cached), dim=-1) @ protos.t()

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        logits = self.head(self.adapted(batch.x))
        return F.cross_entropy(mask_logits(logits, ctx.train_classes), batch.y)

    def trains_on(self, ctx: TaskContext) -> bool:
        return ctx.index == 0

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        was_training = self.training
        self.eval()
        frozen, labels = step_features(ctx.train_data, self.frozen_inputs, device_of(self))
        adapted, _ = step_features(ctx.train_data, self.adapted, device_of(self), use_cache=False)
        self.train(was_training)
        self.sums.index_add_(0, labels, torch.cat([frozen, adapted], dim=-1).double())
        self.counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float64))

    def params_per_new_task(self, new_classes: int) -> int:
        return self.sums.shape[1] * new_classes  # one stored prototype per class
