"""CoCoOp: CoOp whose context is shifted per image by a small meta-network of the image feature."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy, scatter_logits
from bench.models.backbones import ClipBackbone
from strategies.coop import PromptLayout, init_context


@dataclass(frozen=True)
class CoCoOpConfig(StrategyConfig):
    n_ctx: int = hp(4, "number of learned context tokens M")
    ctx_init: str = hp("a photo of a", "initialise the context from this phrase; '' = N(0, 0.02)")
    reduction: int = hp(16, "meta-net bottleneck: hidden width = image feature width // reduction")
    max_prompts: int = hp(1024, "most prompts per text-encoder call (images x classes): bounds memory; 1024 "
                                "keeps the call in a CPU core's caches (1.5 ms per image against 2.1 at 4096)")
    optimizer: str = hp("sgd", "the paper's optimizer")
    lr: float = hp(0.02, "peak learning rate (paper: 0.002 at batch 1 on CLIP ViT-B/16; 10x for the tiny CLIP)")
    batch_size: int = hp(32, "training batch size (paper: 1; larger here, since the text encoder batches images)")
    epochs: int = hp(5, "passes over each task's training data (paper: 10)")


@register_strategy("cocoop", config=CoCoOpConfig)
class CoCoOp(Strategy):
    """CoCoOp (Zhou et al., "Conditional Prompt Learning for Vision-Language Models", CVPR 2022).
    Trains: the context vectors (M x w) and the meta-net Linear(d -> d/16) - ReLU - Linear(d/16 -> w).
    Freezes: both CLIP encoders.

    As in the official code, the meta-net reads the L2-normalised image feature (d: image embedding width) and
    outputs one bias (w: text token width) added to every context token, so every image gets its own prompts
    and text features. The text encoder therefore runs for every (image, class) pair: all pairs of a batch go
    through it as one `(B*C, L, w)` batch. Training encodes only the classes of the current label space (the
    others would be masked anyway); image features are cached once per image.
    Defaults differ from the official (Dassl) recipe in: batch 32 (official: 1), weight decay 0 and no warm-up
    (Dassl: 5e-4 and one epoch at a constant 1e-5; the paper suite sets both), no training augmentation."""

    family = "vision-language"
    paper = "Zhou et al., CVPR 2022"
    backbone_families = ("clip",)
    needs_text = True
    needs_pixels = False
    supported_scenarios = ("class_incremental", "domain_incremental", "base_to_new", "domain_adaptation")
    flags = Flags(class_names=True)

    def __init__(self, cfg: CoCoOpConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.layout = PromptLayout(backbone, info.class_names, cfg.n_ctx, "end")
        self.ctx = nn.Parameter(init_context(backbone, cfg.n_ctx, cfg.ctx_init, 1)[0])
        image_dim, width = backbone.embed_dim, backbone.text.width
        hidden = max(1, image_dim // cfg.reduction)
        self.meta_net = nn.Sequential(nn.Linear(image_dim, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def context(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised image features `(B, d)` -> each image's context `(B, M, w)`: one bias shared by all M tokens."""
        return self.ctx + self.meta_net(image).unsqueeze(1)

    def prompts(self, image: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised image features `(B, d)` -> per-image prompt embeddings `(B, C, L, w)`."""
        return self.layout.splice(self.context(image).unsqueeze(1), classes)

    def class_logits(self, image: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Logits `(B, C)` over `classes` (all when None), encoding the images' prompts in bounded chunks."""
        n_cls = self.layout.num_prompts if classes is None else len(classes)
        chunk = max(1, self.cfg.max_prompts // n_cls)
        parts = []
        for part in image.split(chunk):
            text = self.layout.encode_per_image(self.backbone.text, self.context(part), classes)  # (b, C, d)
            parts.append(torch.einsum("bd,bcd->bc", part, text.to(part.dtype)))
        return self.backbone.logit_scale * torch.cat(parts)

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone.encode_image(x), dim=-1)

    def frozen_key(self) -> str | None:
        return "clip.normalized_image_features"

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        image = cached if cached is not None else self.frozen_inputs(x)
        if self.scoring_classes is None:
            return self.class_logits(image)
        # Evaluation: only the label space's prompts go through the text encoder, per image (the others are masked).
        classes = torch.tensor(self.scoring_classes, device=image.device)
        return scatter_logits(self.class_logits(image, classes), classes, self.info.num_classes)

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        space = torch.tensor(ctx.seen_classes, device=batch.y.device)
        logits = self.class_logits(batch.cached if batch.cached is not None else self.frozen_inputs(batch.x), space)
        # Labels re-indexed into the label space: the same loss as masking the other classes' logits.
        target = torch.searchsorted(space, batch.y)
        return F.cross_entropy(logits, target)
