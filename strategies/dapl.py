"""DAPL: domain-agnostic plus domain-specific learned context, one prompt per (domain, class)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, mask_logits, register_strategy
from bench.models.backbones import ClipBackbone
from bench.models.text import prompt_name
from strategies.coop import PromptLayout, TextFixedDuringEval, init_context
from strategies.zeroshot_clip import TEMPLATE, template_text_features


def pseudo_labels(probs: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-shot class probabilities `(B, C)` -> (argmax labels, mask of samples whose max probability >= tau)."""
    confidence, labels = probs.max(dim=-1)
    return labels, confidence >= tau


def block_cross_entropy(logits: torch.Tensor, block: int, labels: torch.Tensor, joint: bool,
                        blocks: list[int] | None = None) -> torch.Tensor:
    """Per-sample CE of `labels` read in domain `block` of logits `(B, D, C)`.

    joint=False (official code): softmax over the C classes of that domain's prompts only.
    joint=True (paper's equations): softmax over every (domain, class) pair of the domains in `blocks`."""
    if not joint:
        return F.cross_entropy(logits[:, block], labels, reduction="none")
    blocks = blocks if blocks is not None else list(range(logits.shape[1]))
    flat = logits[:, blocks].flatten(1)
    return F.cross_entropy(flat, blocks.index(block) * logits.shape[-1] + labels, reduction="none")


@dataclass(frozen=True)
class DAPLConfig(StrategyConfig):
    n_ctx: int = hp(16, "domain-agnostic context tokens M (shared by all domains)")
    n_dmx: int = hp(16, "domain-specific context tokens per domain")
    class_specific: bool = hp(False, "class-specific domain-agnostic context (the official CSC option)")
    domain_names_in_prompt: bool = hp(False, "append ', a {domain} image.' after the class, as the official code "
                                             "does (the paper's prompt has only the learned domain context)")
    joint_softmax: bool = hp(False, "CE over all (domain, class) pairs as in the paper's equations; False: "
                                    "within the domain's prompts, as in the official code")
    temperature: float = hp(1.0, "T: pseudo-label softmax temperature on zero-shot CLIP logits")
    tau: float = hp(0.5, "confidence threshold: target samples whose max pseudo-label probability >= tau count")
    target_weight: float = hp(1.0, "U: weight of the target pseudo-label loss")
    optimizer: str = hp("sgd", "the paper's optimizer")
    lr: float = hp(0.03, "peak learning rate (paper: 3e-3 at batch 32 on CLIP; 10x for the tiny CLIP)")
    batch_size: int = hp(32, "source (and target) batch size")
    epochs: int = hp(10, "passes over the source data (paper: 25)")


@register_strategy("dapl", config=DAPLConfig)
class DAPL(TextFixedDuringEval, Strategy):
    """DAPL (Ge et al., "Domain Adaptation via Prompt Learning", 2022; official code LeapLabTHU/DAPrompt).
    Trains: domain-agnostic context (M x w) and domain-specific context (domains x M x w). Freezes: both CLIP
    encoders.

    Prompts `[SOS][agnostic ctx][domain ctx][class][.][EOS]` for every (domain, class); logits over domains x
    classes. Loss = CE on labelled source images with the source prompts + U * CE on unlabelled target images with
    the target prompts, against zero-shot CLIP ("a photo of a {class}.") pseudo-labels at temperature T, counting
    only samples with max probability >= tau (mean over those; 0 when none pass, where the official code divides
    by zero). Evaluation (source and target test sets alike) uses the target prompts.
    Domain-incremental streams (our extension): each step trains its own domain's context (no unlabelled term),
    and a prediction marginalises over the domains seen so far (logsumexp of their blocks), since the test domain
    is not given.
    Defaults differ from the official code in: no domain words in the text (`domain_names_in_prompt: true`, as the
    paper suite sets, gives the official "{class} , a {domain} image."), weight decay 0 and a linear warm-up
    (Dassl: 5e-4 and one epoch at constant 1e-5: `weight_decay`, `warmup_lr`), one cosine over all epochs (the
    official schedule restarts every epoch), no training augmentation (Dassl: random-resized crop and flip), a
    fallback to the source loss when no target sample passes tau (official: NaN)."""

    family = "vision-language"
    paper = "Ge et al., arXiv 2202.06687, 2022"
    backbone_families = ("clip",)
    needs_text = True
    needs_pixels = False
    supported_scenarios = ("domain_adaptation", "domain_incremental")
    flags = Flags(class_names=True, unlabelled_target=True)

    def __init__(self, cfg: DAPLConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if not info.domains:
            raise ValueError("DAPL needs the scenario's domains")
        self.domains = list(info.domains)
        names = [prompt_name(n) for n in info.class_names]
        # Official text after the learned context: "{class} , a {domain} image." (PromptLayout adds the final '.').
        self.prompt_texts = [f"{n} , a {d} image." if cfg.domain_names_in_prompt else n
                             for d in self.domains for n in names]
        self.layout = PromptLayout(backbone, self.prompt_texts, cfg.n_ctx + cfg.n_dmx, "end")
        n_sets = info.num_classes if cfg.class_specific else 1
        self.ctx = nn.Parameter(init_context(backbone, cfg.n_ctx, "", n_sets))
        self.domain_ctx = nn.Parameter(init_context(backbone, cfg.n_dmx, "", len(self.domains)))
        self.seen_domains: list[int] = []
        self._zero_shot: torch.Tensor | None = None

    # -- text side -----------------------------------------------------------------------------------------
    def encode_text_features(self) -> torch.Tensor:
        """Normalised text features `(D, C, d)` of every (domain, class) prompt."""
        n_dom, n_cls = len(self.domains), self.info.num_classes
        agnostic = self.ctx.expand(n_dom, n_cls, *self.ctx.shape[-2:])
        specific = self.domain_ctx.unsqueeze(1).expand(n_dom, n_cls, *self.domain_ctx.shape[-2:])
        ctx = torch.cat([agnostic, specific], dim=-2).flatten(0, 1)  # row d*C + c: domain d, class c
        return self.layout.encode(self.backbone.text, self.layout.splice(ctx)).view(n_dom, n_cls, -1)

    def zero_shot_text(self) -> torch.Tensor:
        """Frozen zero-shot text features `(C, d)` for pseudo-labels, encoded once."""
        if self._zero_shot is None:
            self._zero_shot = template_text_features(self.backbone, self.info.class_names, TEMPLATE)
        return self._zero_shot.to(self.ctx.device)

    def zero_shot_probs(self, image: torch.Tensor) -> torch.Tensor:
        """Zero-shot CLIP class probabilities at temperature T (on logits scaled by CLIP's logit scale)."""
        logits = self.backbone.logit_scale * image @ self.zero_shot_text().t().to(image.dtype)
        return F.softmax(logits.float() / self.cfg.temperature, dim=-1)

    # -- prediction ----------------------------------------------------------------------------------------
    def domain_logits(self, image: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """Logits `(B, D, C)` over every (domain, class) pair."""
        text = self.text_features() if text is None else text
        return self.backbone.logit_scale * torch.einsum("bd,kcd->bkc", image, text.to(image.dtype))

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone.encode_image(x), dim=-1)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.domain_logits(cached if cached is not None else self.frozen_inputs(x))
        if self.info.kind == "domain_adaptation":
            return logits[:, self.domains.index(self.info.target_domain)]
        seen = self.seen_domains or list(range(len(self.domains)))
        return torch.logsumexp(logits[:, seen], dim=1)

    # -- training ------------------------------------------------------------------------------------------
    def active_domains(self, current: int) -> list[int]:
        if self.info.kind == "domain_adaptation":
            return [self.domains.index(self.info.source_domain), self.domains.index(self.info.target_domain)]
        return sorted(set(self.seen_domains) | {current})

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        cfg = self.cfg
        domain = self.domains.index(ctx.domain if ctx.domain is not None else self.info.source_domain)
        blocks = self.active_domains(domain)
        text = self.text_features()  # once per optimisation step, shared by source and target images
        image = batch.cached if batch.cached is not None else self.frozen_inputs(batch.x)
        logits = mask_logits(self.domain_logits(image, text), ctx.seen_classes)
        loss = block_cross_entropy(logits, domain, batch.y, cfg.joint_softmax, blocks).mean()
        if batch.target_cached is None or cfg.target_weight == 0:
            return loss
        labels, keep = pseudo_labels(self.zero_shot_probs(batch.target_cached), cfg.tau)
        target = self.domains.index(self.info.target_domain)
        per_sample = block_cross_entropy(self.domain_logits(batch.target_cached, text), target, labels,
                                         cfg.joint_softmax, blocks)
        target_loss = (per_sample * keep).sum() / keep.sum().clamp(min=1)
        return loss + cfg.target_weight * target_loss

    def before_task(self, ctx: TaskContext) -> None:
        # A new domain's context starts from its random init (official init); a copy of the previous domain's was
        # tried: on the tiny CLIP its confident, half-trained block then dominated the marginal and hurt old domains.
        if ctx.domain is not None and ctx.domain in self.domains:
            self.seen_domains = sorted(set(self.seen_domains) | {self.domains.index(ctx.domain)})

    def params_per_new_task(self, new_classes: int) -> int:
        return self.domain_ctx[0].numel() if self.info.kind == "domain_incremental" else 0
