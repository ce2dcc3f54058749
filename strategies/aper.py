"""APER: adapt the backbone with a PEFT module on the first task only, then classify every task by cosine
prototypes of the adapted and the frozen features, concatenated."""
from __future__ import annotations

import math
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


ADAPTERS = ("adaptformer", "bottleneck")
HEADS = ("cosine", "linear")


@dataclass(frozen=True)
class AperConfig(StrategyConfig):
    adapter: str = hp("adaptformer", "adaptformer (official: AdaptFormer's adapter parallel to each MLP, ReLU "
                                     "bottleneck, output x scale, dropout 0.1) | bottleneck (this suite's sequential "
                                     "adapter at `placement`: aper_bottleneck)")
    adapter_scale: float = hp(0.1, "AdaptFormer's output scale (official ffn_adapter_scalar 0.1)")
    adapter_dropout: float = hp(0.1, "dropout inside AdaptFormer's bottleneck while training (official 0.1)")
    head: str = hp("cosine", "first-task head: cosine (PILOT's CosineLinear, sigma x cos, learnable sigma) | linear")
    reduction: int = hp(12, "adapter bottleneck = embed_dim // reduction (PILOT's ffn_num 64 on ViT-B's 768)")
    placement: str = hp("pfeiffer", "with adapter=bottleneck: houlsby | pfeiffer (after the MLP only)")
    epochs: int = hp(20, "passes over the FIRST task's data (PILOT's tuned_epoch); later tasks train nothing")
    batch_size: int = hp(48, "training batch size (PILOT's CIFAR config)")
    lr: float = hp(0.01, "peak learning rate (PILOT's init_lr, SGD, cosine)")
    weight_decay: float = hp(0.0005, "weight decay (PILOT's)")


@dataclass(frozen=True)
class AperBottleneckConfig(AperConfig):
    adapter: str = hp("bottleneck", "this suite's sequential bottleneck adapter (the earlier `aper`)")
    head: str = hp("linear", "linear first-task head (the earlier `aper`)")


class AdaptFormerAdapter(nn.Module):
    """AdaptFormer's adapter as APER's official code configures it (`ffn_option="parallel"`, no layer norm,
    "lora" init): scale x up(dropout(ReLU(down(x)))), added beside the MLP branch of a block, reading the
    block's input to that branch (before its norm). down: Kaiming-uniform(a=sqrt 5), up and both biases zero, so
    the adapted model starts as the pretrained one."""

    def __init__(self, dim: int, hidden: int, scale: float, dropout: float) -> None:
        super().__init__()
        self.down, self.up = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.scale, self.dropout = scale, dropout
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.dropout(F.relu(self.down(x)), self.dropout, training=self.training)
        return self.up(hidden) * self.scale


class CosineHead(nn.Module):
    """PILOT's `CosineLinear`: sigma x cos(x, w_c), weights ~ U(-1/sqrt(d), 1/sqrt(d)), sigma learnable from 1."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(dim)
        self.weight = nn.Parameter(torch.empty(classes, dim).uniform_(-bound, bound))
        self.sigma = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigma * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).t()


def mlp_sites(block: nn.Module) -> tuple[nn.Module, nn.Module]:
    """A block's pre-MLP norm and its MLP (timm: norm2, mlp; open_clip: ln_2, mlp)."""
    norm = getattr(block, "norm2", None) or getattr(block, "ln_2", None)
    if norm is None or not hasattr(block, "mlp"):
        raise ValueError("aper: adaptformer needs blocks with a pre-MLP norm (norm2 / ln_2) and an mlp")
    return norm, block.mlp


@register_strategy("aper", config=AperConfig)
class Aper(FrozenEncoderMixin, Strategy):
    """APER with adapters (Zhou et al., IJCV 2024; PILOT's `aper_adapter`). On the first task only, AdaptFormer
    adapters (one per block, parallel to its MLP, scale 0.1, as the official code) and a cosine head with a
    learnable sigma (PILOT's CosineLinear) train with CE over the task's classes; then nothing trains
    (`trains_on` is false from the second task). After every task, each class's prototype is the mean of
    [frozen feature, adapted feature] over its training images, and images are scored by cosine similarity to the
    prototypes (the head is discarded, as in the paper).
    `aper_bottleneck` is the earlier variant: this suite's sequential bottleneck (`strategies.adapter`, after the
    MLP) and a linear head. Differences from the official code: on a CLIP tower the adapters sit in open_clip's
    blocks the same way (the official code has timm ViTs only); the official code offers VPT and SSF variants too,
    not built here; prototypes of a class seen again later (domain-incremental) are running means over steps.
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
        if cfg.adapter not in ADAPTERS:
            raise ValueError(f"{self.name}: adapter {cfg.adapter!r}; valid: {', '.join(ADAPTERS)}")
        if cfg.head not in HEADS:
            raise ValueError(f"{self.name}: head {cfg.head!r}; valid: {', '.join(HEADS)}")
        self.adapting = False  # the hooks apply the adapters only inside `adapted()`: one backbone, two models
        if cfg.adapter == "adaptformer":
            if cfg.reduction < 1:
                raise ValueError(f"{self.name}: reduction={cfg.reduction} must be at least 1")
            hidden = max(1, backbone.embed_dim // cfg.reduction)
            self.adapters = nn.ModuleList(AdaptFormerAdapter(backbone.embed_dim, hidden, cfg.adapter_scale,
                                                             cfg.adapter_dropout) for _ in backbone.blocks)
            for block, adapter in zip(backbone.blocks, self.adapters):
                self._attach_parallel(block, adapter)
        else:
            self.adapters = bottleneck_adapters(self.name, cfg.placement, cfg.reduction, backbone)
            for block, per_block in zip(backbone.blocks, self.adapters):
                for site, adapter in per_block.items():
                    getattr(block, site).register_forward_hook(self._hook(adapter))
        self.head = (CosineHead(backbone.num_features, info.num_classes) if cfg.head == "cosine"
                     else nn.Linear(backbone.num_features, info.num_classes))
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

    def _attach_parallel(self, block: nn.Module, adapter: AdaptFormerAdapter) -> None:
        """MLP branch -> MLP branch + adapter(the branch's input before its norm): the official block's
        `x = residual + mlp(norm2(x)) + adaptmlp(x)`. A pre-hook on the norm keeps that input for the MLP's hook."""
        norm, mlp = mlp_sites(block)
        seen: dict[str, torch.Tensor] = {}

        def keep_input(_module: nn.Module, args: Any) -> None:
            if self.adapting:
                seen["x"] = args[0]

        def add_adapter(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
            if not self.adapting:
                return output
            return output + adapter(seen.pop("x"))

        norm.register_forward_pre_hook(keep_input)
        mlp.register_forward_hook(add_adapter)

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


@register_strategy("aper_bottleneck", config=AperBottleneckConfig)
class AperBottleneck(Aper):
    """APER with this suite's sequential bottleneck adapter (after the MLP, `placement`) and a linear first-task
    head: the earlier `aper`, kept as a named variant beside the official AdaptFormer + cosine-head default.
    Trains: adapters and a linear head, on the first task only. Freezes: the backbone; everything after task 1."""
