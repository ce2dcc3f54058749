"""RanPAC: frozen features -> a fixed random projection with ReLU -> a ridge-regression head in closed form."""
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

PAPER = ("McDonnell et al., RanPAC: Random Projections and Pre-trained Models for Continual Learning, "
         "NeurIPS 2023")
PAPER_RATIO = 10000 / 768  # the paper's M = 10,000 on ViT-B/16's 768-wide features


@dataclass(frozen=True)
class RanPACConfig(StrategyConfig):
    epochs: int = hp(0, "nothing trains by gradient (the head is solved in closed form), so epochs change nothing")
    projection_dim: int = hp(0, "M, the random projection's width; 0: round(10000/768 x feature width), the "
                                "paper's ratio (10,000 on ViT-B/16, 1,250 on the 96-wide glyph ViT)")
    ridge_exponents: tuple = hp((-8, 9), "candidate lambdas 10^k for k in range(a, b): 10^-8..10^8, as the official "
                                         "`optimise_ridge_parameter` (np.arange(-8, 9))")
    clip_feature: str = hp("pre_projection", "on a CLIP image tower: pre_projection (class token after ln_post, "
                                             "768-d on ViT-B/16, the feature the official code reads) | projected "
                                             "(the joint-space embedding); a ViT has one feature")
    val_fraction: float = hp(0.2, "share of each task's training data held out to choose lambda")


@register_strategy("ranpac", config=RanPACConfig)
class RanPAC(FrozenEncoderMixin, Strategy):
    """RanPAC (McDonnell et al., NeurIPS 2023), its continual phase on frozen features: h = ReLU(f W), W ~ N(0, 1)
    of shape (d, M) drawn once and fixed; G = sum h h^T and Q = sum h y^T (one-hot y) accumulate over tasks; after
    each task the head is W_o = (G + lambda I)^-1 Q and logits are h W_o. lambda is chosen per task, as in the
    official `optimise_ridge_parameter`, by the MSE on a held-out share of that task's training data of the head
    solved on the rest (never on test data).
    On a CLIP tower the features are the pre-projection class token (`clip_feature`), as the official code reads
    the ViT's 768-d feature. Differences from the official code: the held-out share is a seeded random 20% (the official code takes the
    last 20% in loader order); the first-session PEFT adaptation (an option in the paper) is not done here, so this
    is RanPAC on the untouched backbone; lambda's candidates are scored from one eigendecomposition of the
    held-in Gram matrix instead of one linear solve each (the same solutions, fewer cubic costs); sums are float64.
    Trains: nothing by gradient (G, Q, W_o are buffers set in closed form). Freezes: the backbone and W."""

    family = "continual"
    paper = PAPER
    needs_pixels = False
    backbone_families = ("vit", "clip")
    supported_scenarios = ("class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags()
    training_free = True

    def __init__(self, cfg: RanPACConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if not 0 < cfg.val_fraction < 1:
            raise ValueError(f"ranpac: val_fraction must be in (0, 1), got {cfg.val_fraction}")
        low, high = cfg.ridge_exponents
        if not low < high:
            raise ValueError(f"ranpac: ridge_exponents {cfg.ridge_exponents} must be (low, high) with low < high")
        check_clip_feature("ranpac", cfg.clip_feature)
        self.feature_dim = feature_width(backbone, cfg.clip_feature)
        width = cfg.projection_dim or round(PAPER_RATIO * self.feature_dim)
        self.register_buffer("projection", torch.randn(self.feature_dim, width))  # fixed: never trained
        self.register_buffer("gram", torch.zeros(width, width, dtype=torch.float64))
        self.register_buffer("class_sums", torch.zeros(width, info.num_classes, dtype=torch.float64))
        self.register_buffer("head", torch.zeros(width, info.num_classes))
        self.register_buffer("ridge", torch.ones(()))  # replaced by the chosen lambda after each task
        # The held-out split's seed, drawn from the cell's seeded RNG at construction (not at after_task, whose
        # global RNG state would depend on whatever ran before).
        self.split_seed = int(torch.randint(2**31 - 1, (1,)))

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return pooled_features(self.backbone, x, self.cfg.clip_feature)

    def frozen_key(self) -> str | None:
        return frozen_feature_key(self.backbone, self.cfg.clip_feature)

    def expand(self, features: torch.Tensor) -> torch.Tensor:
        """Frozen features `(N, d)` -> random features h `(N, M)`."""
        return F.relu(features.float() @ self.projection)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        features = cached if cached is not None else self.frozen_inputs(x)
        return self.expand(features) @ self.head

    # -- closed form ----------------------------------------------------------------------------------------
    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        return F.one_hot(labels, self.info.num_classes).double()

    def choose_ridge(self, h: torch.Tensor, y: torch.Tensor) -> float:
        """lambda minimising the held-out MSE of the ridge head fitted on the rest of this task's data."""
        order = torch.randperm(len(h), generator=torch.Generator().manual_seed(self.split_seed)).to(h.device)
        n_val = max(1, int(round(len(h) * self.cfg.val_fraction)))
        val, fit = order[:n_val], order[n_val:]
        evals, evecs = torch.linalg.eigh(h[fit].t() @ h[fit])
        left = h[val] @ evecs  # (n_val, M)
        right = evecs.t() @ (h[fit].t() @ y[fit])  # (M, C)
        ridges = [10.0 ** k for k in range(*self.cfg.ridge_exponents)]
        losses = [float(((left / (evals.clamp(min=0) + r)) @ right - y[val]).pow(2).mean()) for r in ridges]
        return ridges[min(range(len(ridges)), key=losses.__getitem__)]

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        features, labels = step_features(ctx.train_data, self.frozen_inputs, device_of(self))
        if len(labels) == 0:
            return
        h, y = self.expand(features).double(), self.one_hot(labels)
        self.gram += h.t() @ h
        self.class_sums += h.t() @ y
        if len(labels) >= 2:  # one image leaves nothing to hold out: keep the previous lambda
            self.ridge.fill_(self.choose_ridge(h, y))
        eye = torch.eye(len(self.gram), dtype=self.gram.dtype, device=self.gram.device)
        self.head.copy_(torch.linalg.solve(self.gram + float(self.ridge) * eye, self.class_sums).float())

    def params_per_new_task(self, new_classes: int) -> int:
        return self.head.shape[0] * new_classes  # one more column of W_o (and of Q) per class
