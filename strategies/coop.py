"""CoOp: learned context vectors in front of (or around) each class name, read by a frozen CLIP text encoder.

Also home of the prompt machinery the other CLIP prompt learners (CoCoOp, DAPL) reuse: `PromptLayout` (where the
learned context goes in the token sequence) and `init_context` (random or phrase initialisation).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy, scatter_logits
from bench.models.backbones import ClipBackbone, TextEncoder
from bench.models.text import prompt_name

POSITIONS = ("end", "middle", "front")


class PromptLayout(nn.Module):
    """Token layout of the prompts `[SOS][context][class tokens][.][EOS]`, with the class at the end, middle or
    front. Holds the frozen embeddings of everything but the context, and splices learned context in.

    As in the official code, the prompts are tokenized once as "X X ... X {name}." so that every frozen token
    (SOS, name, '.', EOS, padding) keeps its embedding; the class position only reorders tokens, so the EOS index
    (the only thing the ids are used for) is the same for every position. With CLIP's causal text mask the
    padding after the longest prompt's EOS cannot change any EOS feature, so sequences stop there (exact, and
    3-4x less text-encoder work, which matters for CoCoOp's per-image prompts)."""

    def __init__(self, clip: ClipBackbone, class_names: list[str], n_ctx: int, position: str) -> None:
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"class_token_position {position!r} is not one of {POSITIONS}")
        text = clip.text
        names = [prompt_name(n) for n in class_names]
        placeholder = " ".join(["X"] * n_ctx)
        prompts = [f"{placeholder} {name}." for name in names] if n_ctx else [f"{n}." for n in names]
        longest = max(len(clip.tokenizer.encode(p)) for p in prompts) + 2  # + SOS and EOS
        if longest > text.context_length:  # the tokenizer would cut the EOS off silently
            raise ValueError(f"prompts with {n_ctx} context tokens need {longest} positions but the text encoder "
                             f"holds {text.context_length}; lower n_ctx by at least {longest - text.context_length}")
        ids = text.tokenize(prompts)
        if text.attn_mask is not None:  # causal: padding after the last EOS never reaches an EOS, so drop it
            ids = ids[:, :int(ids.argmax(dim=-1).max()) + 1]
        with torch.no_grad():
            embeds = text.embed_ids(ids)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("sos", embeds[:, :1].clone(), persistent=False)
        self.register_buffer("rest", embeds[:, 1 + n_ctx:].clone(), persistent=False)  # class, '.', EOS, pad
        self.name_lens = [len(clip.tokenizer.encode(name)) for name in names]
        self.same_start = bool((embeds[:, :1] == embeds[:1, :1]).all())  # every prompt opens with one start token
        self.n_ctx, self.position = n_ctx, position

    @property
    def num_prompts(self) -> int:
        return int(self.ids.shape[0])

    def ids_of(self, classes: torch.Tensor | None) -> torch.Tensor:
        """Token ids of the prompts of `classes` (all when None); they only locate each prompt's EOS."""
        return self.ids if classes is None else self.ids[classes]

    def splice(self, ctx: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """ctx `(C or 1, n_ctx, w)` (or `(B, C or 1, n_ctx, w)` per image) -> prompt embeddings `(..., C, L, w)`.
        `classes` restricts the prompts to those rows (ctx must then have 1 or len(classes) rows)."""
        sos, rest = self.sos, self.rest
        if classes is not None:
            sos, rest = sos[classes], rest[classes]
        lead = ctx.shape[:-3]
        n_cls = sos.shape[0]
        ctx = ctx.expand(*lead, n_cls, *ctx.shape[-2:])
        sos = sos.expand(*lead, *sos.shape)
        rest = rest.expand(*lead, *rest.shape)
        if self.position == "end" or self.n_ctx == 0:
            return torch.cat([sos, ctx, rest], dim=-2)
        lens = self.name_lens if classes is None else [self.name_lens[i] for i in classes.tolist()]
        half = self.n_ctx // 2
        rows = []
        for i, n in enumerate(lens):  # the class name length differs per class, so the layout is per class
            name, tail = rest[..., i:i + 1, :n, :], rest[..., i:i + 1, n:, :]
            c = ctx[..., i:i + 1, :, :]
            if self.position == "middle":
                parts = [sos[..., i:i + 1, :, :], c[..., :half, :], name, c[..., half:, :], tail]
            else:  # front
                parts = [sos[..., i:i + 1, :, :], name, c, tail]
            rows.append(torch.cat(parts, dim=-2))
        return torch.cat(rows, dim=-3)

    def encode(self, text: TextEncoder, prompts: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Prompt embeddings `(..., C, L, w)` -> normalised text features `(..., C, d)`. Leading dimensions (one per
        image for CoCoOp) are flattened into a single text-encoder batch rather than looped over."""
        ids = self.ids_of(classes)
        flat = prompts.reshape(-1, *prompts.shape[-2:])
        features = text.encode_embeddings(flat, ids.repeat(flat.shape[0] // ids.shape[0], 1))
        return F.normalize(features, dim=-1).view(*prompts.shape[:-2], -1)


    def encode_per_image(self, text: TextEncoder, ctx: torch.Tensor, classes: torch.Tensor | None = None
                         ) -> torch.Tensor:
        """Per-image context `(B, n_ctx, w)` -> normalised text features `(B, C, d)` of every image's prompts for
        `classes` (all when None): `encode(text, splice(ctx[:, None], classes), classes)`. With the class at the end
        the prompts of one image share their start (start token, context), which the text encoder then computes
        once per image instead of once per (image, class) (`TextEncoder.encode_shared_prefix`)."""
        if self.position != "end" or self.n_ctx == 0 or not self.same_start:
            return self.encode(text, self.splice(ctx.unsqueeze(1), classes), classes)
        rest = self.rest if classes is None else self.rest[classes]
        prefix = torch.cat([self.sos[:1].expand(ctx.shape[0], 1, -1).to(ctx.dtype), ctx], dim=1)
        features = text.encode_shared_prefix(prefix, rest.to(ctx.dtype), self.ids_of(classes))
        return F.normalize(features, dim=-1)


def init_context(clip: ClipBackbone, n_ctx: int, phrase: str, n_sets: int, std: float = 0.02) -> torch.Tensor:
    """Context vectors `(n_sets, n_ctx, w)`: the word embeddings of `phrase` (whose token count must equal
    n_ctx), or N(0, std) when the phrase is empty, as in the official CoOp code. The official code falls back to
    one unified context when a phrase is given; here a class-specific context starts as copies of the phrase."""
    width = clip.text.width
    if not phrase:
        return torch.randn(n_sets, n_ctx, width) * std
    n_tokens = len(clip.tokenizer.encode(phrase))
    if n_tokens != n_ctx:
        raise ValueError(f"ctx_init {phrase!r} has {n_tokens} tokens but n_ctx is {n_ctx}; make them equal")
    with torch.no_grad():
        vectors = clip.text.embed_ids(clip.text.tokenize([phrase]))[0, 1:1 + n_ctx]
    return vectors.unsqueeze(0).repeat(n_sets, 1, 1).clone()


class TextFixedDuringEval:
    """For CLIP strategies whose text features depend only on their own parameters (never on the image): an
    evaluation pass encodes them once per label space (between `before_eval` and `after_eval`) instead of once per
    test batch. A strategy implements `encode_text_features(classes=None)`; one that accepts `classes` (a tensor
    of class indices) encodes only those prompts."""

    _eval_text: dict[tuple[int, ...] | None, torch.Tensor] | None = None

    def encode_text_features(self, classes: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def text_features(self, classes: torch.Tensor | None = None) -> torch.Tensor:
        def encode() -> torch.Tensor:
            return self.encode_text_features() if classes is None else self.encode_text_features(classes)

        if self._eval_text is None:
            return encode()
        key = None if classes is None else tuple(classes.tolist())
        if key not in self._eval_text:
            with torch.no_grad():  # fixed during evaluation: no graph, even inside an attack's backward
                self._eval_text[key] = encode()
        return self._eval_text[key]

    def before_eval(self) -> None:
        self._eval_text = {}

    def after_eval(self) -> None:
        self._eval_text = None

    def scoring_tensor(self, device: torch.device) -> torch.Tensor | None:
        """The classes being scored (`Strategy.scoring_classes`) as a tensor, None for all."""
        classes = getattr(self, "scoring_classes", None)
        return None if classes is None else torch.tensor(classes, device=device)


@dataclass(frozen=True)
class CoOpConfig(StrategyConfig):
    n_ctx: int = hp(16, "number of learned context tokens M (paper: 16; 4 in base-to-new runs)")
    ctx_init: str = hp("", "initialise the context from this phrase (e.g. 'a photo of a'); '' = N(0, 0.02)")
    class_token_position: str = hp("end", "where the class name sits: end | middle | front")
    class_specific: bool = hp(False, "one context per class (CSC) instead of one shared (unified) context")
    optimizer: str = hp("sgd", "the paper's optimizer")
    lr: float = hp(0.02, "peak learning rate (paper: 0.002 at batch 32 on CLIP ViT-B/16; 10x for the tiny CLIP)")
    epochs: int = hp(10, "passes over each task's training data (paper: 200 at 16 shots)")


@register_strategy("coop", config=CoOpConfig)
class CoOp(TextFixedDuringEval, Strategy):
    """CoOp (Zhou et al., "Learning to Prompt for Vision-Language Models", IJCV 2022).
    Trains: the context vectors (M x w, or C x M x w when class-specific). Freezes: both CLIP encoders.

    Text features of the whole class set are computed once per optimisation step (they depend on the context
    being learned) and once per evaluation (the official loop re-encodes them for every test batch). Image
    features are frozen, L2-normalised and cached once per image.
    Defaults differ from the official (Dassl) recipe in: weight decay 0 and no warm-up (Dassl: 5e-4 and one epoch
    at a constant 1e-5; the paper suite sets `weight_decay: 0.0005, warmup_epochs: 1, warmup_lr: 1.0e-5`), no
    training augmentation (Dassl: random-resized crop and flip), and the tiny CLIP's 10x learning rate."""

    family = "vision-language"
    paper = "Zhou et al., IJCV 2022"
    backbone_families = ("clip",)
    needs_text = True
    needs_pixels = False
    supported_scenarios = ("class_incremental", "domain_incremental", "base_to_new", "domain_adaptation")
    flags = Flags(class_names=True)

    def __init__(self, cfg: CoOpConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.layout = PromptLayout(backbone, info.class_names, cfg.n_ctx, cfg.class_token_position)
        n_sets = info.num_classes if cfg.class_specific else 1
        self.ctx = nn.Parameter(init_context(backbone, cfg.n_ctx, cfg.ctx_init, n_sets))

    def encode_text_features(self, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised text features `(C, d)` of the prompts of `classes` (all when None) under the current context."""
        ctx = self.ctx if (classes is None or not self.cfg.class_specific) else self.ctx[classes]
        return self.layout.encode(self.backbone.text, self.layout.splice(ctx, classes), classes)

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone.encode_image(x), dim=-1)

    def frozen_key(self) -> str | None:
        return "clip.normalized_image_features"

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        image = cached if cached is not None else self.frozen_inputs(x)
        return self.logits(image, self.scoring_tensor(image.device))

    def logits(self, image: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
        """Logits `(B, C)`; with `classes`, only their prompts are encoded and every other class is NEG_INF."""
        scores = self.backbone.logit_scale * image @ self.text_features(classes).t().to(image.dtype)
        return scores if classes is None else scatter_logits(scores, classes, self.info.num_classes)

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        # Only the seen classes' prompts go through the text encoder: the loss masks the others anyway.
        image = batch.cached if batch.cached is not None else self.frozen_inputs(batch.x)
        classes = torch.tensor(ctx.seen_classes, device=image.device)
        return F.cross_entropy(self.logits(image, classes), batch.y)

    def params_per_new_task(self, new_classes: int) -> int:
        return self.ctx[0].numel() * new_classes if self.cfg.class_specific else 0
