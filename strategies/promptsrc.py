"""PromptSRC: independent deep prompts in both CLIP towers, regulated toward the frozen model (features and
zero-shot logits) and averaged over epochs with Gaussian weights."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, mask_logits, register_strategy
from bench.models.backbones import ClipBackbone
from bench.models.text import prompt_name
from strategies._clip_deep import TextContextLayout, encode_image_deep, encode_text_deep, scaled_depth
from strategies.coop import TextFixedDuringEval

PAPER = ("Khattak et al., Self-regulating Prompts: Foundational Model Adaptation without Forgetting (PromptSRC), "
         "ICCV 2023")
# CoOp's seven selected ImageNet templates (the official code averages the full ImageNet template list).
TEMPLATES = ("itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
             "a {} in a video game.", "art of the {}.", "a photo of the small {}.")


@dataclass(frozen=True)
class PromptSRCConfig(StrategyConfig):
    n_ctx_text: int = hp(4, "text prompt tokens per layer (official: 4)")
    n_ctx_vision: int = hp(4, "vision prompt tokens per layer (official: 4)")
    ctx_init: str = hp("a photo of a", "phrase whose first n_ctx_text token embeddings start the text context")
    prompt_depth: int = hp(9, "prompted layers in each tower, given for ViT-B/16's 12 (scaled to the depth)")
    text_weight: float = hp(25.0, "weight of the L1 between prompted and frozen (template-averaged) text features")
    image_weight: float = hp(10.0, "weight of the L1 between prompted and frozen image features")
    logits_weight: float = hp(1.0, "weight of KL(zero-shot logits || prompted logits)")
    gpa_mean: float = hp(15.0, "mean epoch of the Gaussian prompt aggregation, given for 20 epochs (scaled)")
    gpa_std: float = hp(1.0, "std (epochs) of the Gaussian prompt aggregation")
    optimizer: str = hp("sgd", "sgd | adam | adamw")
    lr: float = hp(0.0025, "peak learning rate (official: SGD 0.0025, cosine)")
    batch_size: int = hp(4, "training batch size (official)")
    epochs: int = hp(20, "passes over each task's training data (official base-to-new: 20)")
    warmup_epochs: int = hp(1, "warm-up epochs (official: 1 at a constant 1e-5; linear here)")


def gaussian_epoch_weights(epochs: int, mean: float, std: float, reference: int = 20) -> list[float]:
    """Normalised weights of epochs 1..E, a Gaussian with `mean` (given for `reference` epochs, scaled) and `std`."""
    mu = mean * epochs / reference
    raw = [math.exp(-0.5 * ((e - mu) / std) ** 2) for e in range(1, epochs + 1)]
    total = sum(raw)
    return [w / total for w in raw] if total > 0 else [1.0 / epochs] * epochs


@register_strategy("promptsrc", config=PromptSRCConfig)
class PromptSRC(TextFixedDuringEval, Strategy):
    """PromptSRC (Khattak et al., ICCV 2023; official code muzairkhattak/PromptSRC), on independent vision-language
    prompts: text prompts after SOS of "{ctx_init} {class}." replaced at each of the first J text layers; vision
    prompts appended after the patch tokens and replaced at each of the first J vision layers. Loss: CE + 25 *
    L1(prompted text features, frozen text features averaged over several templates) + 10 * L1(prompted image
    features, frozen image features) + KL(zero-shot logits || prompted logits) (sum / numel, as the official
    code), all on normalised features and over the classes trained so far. Gaussian prompt aggregation: at the end
    of each epoch the prompts are added to a running sum with that epoch's Gaussian weight; after the task the
    prompts are replaced by the sum. The frozen image features come from `frozen_inputs` (cached once per image).
    Differences from the official code: J is given for ViT-B/16 and scaled to smaller CLIPs; the GPA mean is given
    for 20 epochs and scaled to the epochs run; 7 templates (CoOp's selection) instead of the full ImageNet list;
    aggregation restarts in each training step of a stream (the official code trains once); linear warm-up; fp32.
    Trains: text context, deep text prompts, vision prompts of the first J layers. Freezes: both CLIP encoders."""

    family = "vision-language"
    paper = PAPER
    backbone_families = ("clip",)
    needs_text = True
    needs_pixels = True  # the prompted image features need pixels; the frozen ones come from the cache
    supported_scenarios = ("base_to_new", "class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags(class_names=True, extra_forward_passes=1)  # the frozen image pass (cached: once per image)

    def __init__(self, cfg: PromptSRCConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.depth = scaled_depth(cfg.prompt_depth, backbone)
        self.layout = TextContextLayout(backbone, info.class_names, cfg.n_ctx_text, cfg.ctx_init)
        width, vision = backbone.text.width, backbone.visual.embed_dim
        self.ctx = nn.Parameter(self.layout.initial.clone())
        self.deep_text = nn.Parameter(torch.randn(self.depth - 1, cfg.n_ctx_text, width) * 0.02)
        self.vision_prompts = nn.Parameter(torch.randn(self.depth, cfg.n_ctx_vision, vision) * 0.02)
        with torch.no_grad():  # frozen text features, averaged over the templates, then normalised at use
            per_template = [backbone.encode_text([t.format(prompt_name(n)) for n in info.class_names])
                            for t in TEMPLATES]
        self.register_buffer("frozen_text", F.normalize(torch.stack(per_template).mean(0), dim=-1),
                             persistent=False)
        self._gpa: dict[str, torch.Tensor] = {}
        self._weights: list[float] = []
        self._steps_per_epoch = 1
        self._step = self._epochs_done = 0
        self._pending = False

    # -- features ------------------------------------------------------------------------------------------
    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone.encode_image(x), dim=-1)

    def encode_text_features(self) -> torch.Tensor:
        embeds = self.layout.splice(self.ctx)
        deep = list(self.deep_text.unbind(0))
        return F.normalize(encode_text_deep(self.backbone.text, embeds, self.layout.ids, deep), dim=-1)

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        prompts = list(self.vision_prompts.unbind(0))
        return F.normalize(encode_image_deep(self.backbone.visual, x, prompts), dim=-1)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        image = self.image_features(x)
        return self.backbone.logit_scale * image @ self.text_features().t().to(image.dtype)

    # -- training ------------------------------------------------------------------------------------------
    def regularised_loss(self, image: torch.Tensor, frozen_image: torch.Tensor, text: torch.Tensor,
                         y: torch.Tensor, classes: list[int]) -> torch.Tensor:
        """CE + the three self-regulating terms, on normalised features, over `classes`."""
        cfg, scale = self.cfg, self.backbone.logit_scale
        index = torch.as_tensor(classes, device=text.device)
        logits = scale * image @ text.t()
        ce = F.cross_entropy(mask_logits(logits, classes), y)
        frozen_text = self.frozen_text[index].to(text.dtype)
        zero_shot = (scale * frozen_image @ frozen_text.t()).detach()
        seen_logits = logits[:, index]
        kl = F.kl_div(F.log_softmax(seen_logits, dim=1), F.log_softmax(zero_shot, dim=1), reduction="sum",
                      log_target=True) / seen_logits.numel()
        return (ce + cfg.text_weight * F.l1_loss(text[index], frozen_text)
                + cfg.image_weight * F.l1_loss(image, frozen_image.to(image.dtype)) + cfg.logits_weight * kl)

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        # The harness steps the optimizer after this call: the prompts an epoch ended with are read at the first
        # call of the next epoch (or in after_task, for the last epoch).
        if self._pending:
            self._accumulate()
        frozen = batch.cached if batch.cached is not None else self.frozen_inputs(batch.x).detach()
        loss = self.regularised_loss(self.image_features(batch.x), frozen, self.encode_text_features(), batch.y,
                                     ctx.seen_classes)
        self._step += 1
        self._pending = self._step % self._steps_per_epoch == 0  # this batch ends an epoch
        return loss

    @torch.no_grad()
    def _accumulate(self) -> None:
        """Add the current prompts, weighted by the Gaussian weight of the epoch that just ended, to the sum."""
        weight = self._weights[min(self._epochs_done, len(self._weights) - 1)]
        for name, param in self.named_parameters():
            if param.requires_grad:
                self._gpa[name] = self._gpa.get(name, 0) + weight * param.detach().clone()
        self._epochs_done += 1
        self._pending = False

    def before_task(self, ctx: TaskContext) -> None:
        self._steps_per_epoch = max(1, math.ceil(len(ctx.train_data) / self.cfg.batch_size))
        self._weights = gaussian_epoch_weights(max(1, self.cfg.epochs), self.cfg.gpa_mean, self.cfg.gpa_std)
        self._gpa, self._step, self._epochs_done, self._pending = {}, 0, 0, False

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        if self._pending:
            self._accumulate()
        if self._epochs_done == 0:
            return  # nothing trained in this step
        params = dict(self.named_parameters())
        for name, total in self._gpa.items():
            params[name].copy_(total)
        self._gpa = {}
