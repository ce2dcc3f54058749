"""OFA-style deep prompts on a CoCa encoder-decoder: prefixes in the encoder and the decoder, classes read as text."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy
from bench.models.backbones import CocaBackbone
from bench.models.text import prompt_name
from strategies._vit_prompting import FrozenEncoderMixin, PrefixGenerator, attach_prefix_attention, set_prefixes

STACKS = ("encoder", "decoder", "both")


@dataclass(frozen=True)
class OFAPromptCocaConfig(StrategyConfig):
    length: int = hp(10, "prefix keys/values per chosen layer")
    where: str = hp("both", "encoder | decoder | both: which stacks get prefixes")
    depth: int = hp(0, "prefixes in the first `depth` layers of each chosen stack (0: every layer)")
    reparam: bool = hp(False, "reparameterise: embedding -> Linear -> act -> Linear (off: the embedding directly)")
    reparam_hidden: int = hp(0, "hidden width of the reparameterisation MLP (0: the stack's width)")
    reparam_act: str = hp("relu", "relu | tanh: the reparameterisation's nonlinearity")
    init_std: float = hp(0.02, "std of the prefix embedding")
    template: str = hp("{}.", "the answer the decoder writes for a class ({} = class name); keep it short: "
                              "prediction scores every caption token of every class")
    length_norm: bool = hp(False, "rank classes by mean token log-likelihood instead of the sum")
    optimizer: str = hp("adamw", "sgd | adam | adamw")
    lr: float = hp(0.01, "peak learning rate")
    warmup_epochs: int = hp(1, "linear warm-up epochs")


@register_strategy("ofa_prompt_coca", config=OFAPromptCocaConfig)
class OFAPromptCoca(FrozenEncoderMixin, Strategy):
    """OFA-style prompt tuning as Yang et al. (ACL Findings 2023) apply it to an encoder-decoder: learned prefix keys
    and values in the self-attention of the image encoder's layers and of the text decoder's layers (CoCa's
    unimodal then multimodal layers), everything else frozen. Tasks are solved by generation: training is the
    decoder's teacher-forced cross-entropy on the caption `template.format(class name)`; prediction ranks every
    class's caption by its likelihood under the prompted decoder, i.e. exact constrained decoding over the class
    names. Trains: the prefix embeddings (and MLPs), one generator per stack (their widths differ). Freezes: the whole
    CoCa model (image encoder, text decoder, embeddings). No head: a new task adds no parameters, and classes never
    trained on can still be named.

    Known behaviour: decoder prefixes meet answers of only 3-5 tokens, so at step 0 they take much of the attention
    of every decoder layer (measured on coca_glyph_tiny: 8 untrained slots per layer cut base accuracy from 98% to
    36%; starting them as copies of the start token's keys and values was worse). Training must win that back
    first: compare with the `length: 0` row (the frozen model) of the ofa_ablation suite."""

    family = "prompt"
    paper = "Yang et al., Prompt Tuning for Unified Multimodal Pretrained Models, ACL Findings 2023"
    flags = Flags(class_names=True)
    supported_scenarios = ("class_incremental", "domain_incremental", "base_to_new", "domain_adaptation")
    backbone_families = ("coca",)
    needs_text = True

    def __init__(self, cfg: OFAPromptCocaConfig, backbone: CocaBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if cfg.where not in STACKS:
            raise ValueError(f"where {cfg.where!r}; valid: {', '.join(STACKS)}")
        if "{}" not in cfg.template:
            raise ValueError(f"template {cfg.template!r} has no {{}} for the class name")
        stacks = {"encoder": (list(backbone.visual.blocks), backbone.visual.embed_dim),
                  "decoder": (list(backbone.decoder_blocks), backbone.decoder_width)}
        self.stacks = [s for s in ("encoder", "decoder") if cfg.where in (s, "both")]
        self.wrappers, generators = {}, {}
        for stack in self.stacks:
            blocks, width = stacks[stack]
            if cfg.depth < 0 or cfg.depth > len(blocks):
                raise ValueError(f"depth {cfg.depth} outside the {len(blocks)} {stack} layers (0 means every layer)")
            chosen = list(range(cfg.depth or len(blocks)))
            self.wrappers[stack] = attach_prefix_attention(blocks, chosen)
            generators[stack] = PrefixGenerator(cfg.length, len(chosen), width, cfg.reparam, cfg.reparam_hidden,
                                                cfg.reparam_act, cfg.init_std)
        self.generators = torch.nn.ModuleDict(generators)
        captions = [cfg.template.format(prompt_name(name)) for name in info.class_names]
        self.register_buffer("class_ids", backbone.tokenize(captions).cpu(), persistent=False)
        # With a frozen encoder the image tokens depend only on the image: the harness caches them once per image.
        self.needs_pixels = "encoder" in self.stacks

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.needs_pixels else self.backbone.image_tokens(x)

    def _image_and_text(self, x: torch.Tensor | None, cached: torch.Tensor | None) -> tuple[torch.Tensor,
                                                                                            torch.Tensor]:
        image_tokens = cached if (cached is not None and not self.needs_pixels) else self.backbone.image_tokens(x)
        # The text side depends on the class captions and the decoder prefixes only: one pass for all classes.
        return image_tokens, self.backbone.text_tokens(self.class_ids)

    @contextmanager
    def _prompted(self) -> Iterator[None]:
        """Every stack's prefixes for the duration of a pass, always cleared afterwards, so that no graph-holding
        tensor outlives the pass inside the frozen backbone."""
        for stack in self.stacks:
            set_prefixes(self.wrappers[stack], self.generators[stack]())
        try:
            yield
        finally:
            for stack in self.stacks:
                set_prefixes(self.wrappers[stack], None)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        """Scores `(B, num_classes)`: log-likelihood of each class's caption given the image."""
        with self._prompted():
            image_tokens, text_tokens = self._image_and_text(x, cached)
            return self.backbone.caption_scores(image_tokens, self.class_ids, text_tokens, mean=self.cfg.length_norm)

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        """Teacher-forced cross-entropy of the true class's caption (padding ignored), OFA's generative loss."""
        with self._prompted():
            image_tokens, text_tokens = self._image_and_text(batch.x, batch.cached)
            ids = self.class_ids[batch.y]
            logits = self.backbone.caption_logits(image_tokens, ids, text_tokens[batch.y])
        return F.cross_entropy(logits.transpose(1, 2).float(), ids[:, 1:], ignore_index=self.backbone.pad_id)

    def generate(self, x: torch.Tensor) -> list[str]:
        """Free greedy generation under the learned prompts (not constrained to the class names)."""
        with torch.no_grad(), self._prompted():
            return self.backbone.generate(x, max_length=self.class_ids.shape[1] + 2)

