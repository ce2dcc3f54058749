"""The NLP prompt family on CLIP's text tower, as named presets: prompt tuning (soft tokens at the input only),
prefix tuning (per-layer prefixes through an MLP) and P-tuning v2 (per-layer prefixes, no MLP).

Each learns prompts for the frozen text encoder reading the hand-written prompt "a photo of a {class}."; images are
classified by CLIP's scaled cosine to the resulting class text features, as zero-shot CLIP and CoOp do.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import ScenarioInfo
from bench.core.strategy import Flags, Strategy, StrategyConfig, hp, register_strategy
from bench.models.backbones import ClipBackbone
from bench.models.text import prompt_name
from strategies._clip_deep import TextContextLayout
from strategies._vit_prompting import PrefixGenerator, attach_prefix_attention, set_prefixes
from strategies.coop import TextFixedDuringEval
from strategies.zeroshot_clip import TEMPLATE

LESTER = "Lester et al., The Power of Scale for Parameter-Efficient Prompt Tuning, EMNLP 2021"
LI_LIANG = "Li & Liang, Prefix-Tuning: Optimizing Continuous Prompts for Generation, ACL 2021"
LIU = ("Liu et al., P-Tuning v2: Prompt Tuning Can Be Comparable to Fine-tuning Universally Across Scales and "
       "Tasks, ACL 2022")


def templated_names(class_names: list[str], template: str) -> list[str]:
    """The hand-written prompt of each class without its final period (the layout adds it)."""
    if "{}" not in template:
        raise ValueError(f"template {template!r} has no '{{}}' for the class name")
    return [template.format(prompt_name(n)).rstrip(".") for n in class_names]


class _TextPromptStrategy(TextFixedDuringEval, Strategy):
    """Shared parts: cached normalised image features, scaled-cosine logits against `encode_text_features()`."""

    family = "prompt"
    backbone_families = ("clip",)
    needs_text = True
    needs_pixels = False  # only the text side is prompted: image features are frozen and cached
    supported_scenarios = ("base_to_new", "class_incremental", "domain_incremental", "domain_adaptation")
    flags = Flags(class_names=True)

    def frozen_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone.encode_image(x), dim=-1)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        image = cached if cached is not None else self.frozen_inputs(x)
        return self.backbone.logit_scale * image @ self.text_features().t().to(image.dtype)


# ------------------------------------------------------------------------------------------- prompt tuning
@dataclass(frozen=True)
class PromptTuningConfig(StrategyConfig):
    length: int = hp(20, "soft prompt tokens (paper: 100 at best, 20 nearly as good at scale; 100 exceeds CLIP's "
                         "77-token context)")
    template: str = hp(TEMPLATE, "the hand-written prompt the soft tokens are prepended to")
    optimizer: str = hp("sgd", "sgd | adam | adamw (the paper's Adafactor is not in the harness)")
    lr: float = hp(0.3, "peak learning rate (the paper's 0.3)")
    epochs: int = hp(10, "passes over each task's training data")


@register_strategy("prompt_tuning", config=PromptTuningConfig)
class PromptTuning(_TextPromptStrategy):
    """Prompt tuning (Lester et al., EMNLP 2021) on CLIP's text tower: `length` soft tokens right after SOS, in
    front of "a photo of a {class}.", at the input only; initialised from the embeddings of tokens sampled from the
    vocabulary (the paper's "sampled vocab" init). Differences from the paper: SGD at the paper's lr 0.3 (no
    Adafactor here); 20 tokens by default, since the paper's 100 do not fit CLIP's context; the paper's model is a
    T5 encoder-decoder, here it is the CLIP text encoder. Trains: the soft prompt (length x w). Freezes: both
    CLIP encoders."""

    paper = LESTER

    def __init__(self, cfg: PromptTuningConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.layout = TextContextLayout(backbone, templated_names(info.class_names, cfg.template), cfg.length, "")
        vocab = backbone.text.token_embedding.num_embeddings
        sampled = torch.randint(2, vocab - 2, (cfg.length,))  # skips pad/unknown and start/end of text
        with torch.no_grad():
            self.soft_prompt = nn.Parameter(backbone.text.token_embedding(sampled).clone())

    def encode_text_features(self) -> torch.Tensor:
        text = self.backbone.text
        return F.normalize(text.encode_embeddings(self.layout.splice(self.soft_prompt), self.layout.ids), dim=-1)


# --------------------------------------------------------------------------- prefix tuning and P-tuning v2
@dataclass(frozen=True)
class PrefixTuningConfig(StrategyConfig):
    length: int = hp(10, "prefix length per layer (the paper's table-to-text value)")
    template: str = hp(TEMPLATE, "the hand-written prompt the text encoder reads")
    reparam: bool = hp(True, "the MLP reparameterisation (embedding -> Linear -> tanh -> Linear)")
    reparam_hidden: int = hp(512, "hidden width of the MLP (the paper's 512)")
    init_std: float = hp(1.0, "std of the prefix embedding")
    optimizer: str = hp("adamw", "sgd | adam | adamw (the paper's AdamW)")
    lr: float = hp(5e-5, "peak learning rate (the paper's table-to-text value)")
    epochs: int = hp(10, "passes over each task's training data (the paper's table-to-text value)")


@dataclass(frozen=True)
class PTuningV2Config(PrefixTuningConfig):
    length: int = hp(20, "prompt length per layer (the paper's value for simple classification tasks)")
    reparam: bool = hp(False, "no reparameterisation (the paper finds it unnecessary for most tasks)")
    reparam_hidden: int = hp(0, "unused without reparameterisation")
    lr: float = hp(0.01, "peak learning rate (the paper's range 5e-3 to 1e-2)")


@register_strategy("prefix_tuning", config=PrefixTuningConfig)
class PrefixTuning(_TextPromptStrategy):
    """Prefix tuning (Li & Liang, ACL 2021) on CLIP's text tower: learned keys and values prepended in the
    self-attention of every text layer (visible to every token under the causal mask), produced by an MLP from a
    `length x w` embedding, as the paper's reparameterisation; the encoder reads "a photo of a {class}.".
    Differences from the paper: a CLIP text encoder instead of GPT-2/BART; the MLP's activation is tanh as in the
    paper's code, its hidden width 512. Trains: the prefix embedding and MLP. Freezes: both CLIP encoders."""

    paper = LI_LIANG
    activation = "tanh"

    def __init__(self, cfg: PrefixTuningConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        text = backbone.text
        blocks = text.transformer.resblocks
        self.layers = attach_prefix_attention(blocks, range(len(blocks)))
        self.prefix = PrefixGenerator(cfg.length, len(blocks), text.width, cfg.reparam, cfg.reparam_hidden,
                                      self.activation, cfg.init_std)
        ids = text.tokenize([f"{name}." for name in templated_names(info.class_names, cfg.template)])
        self.register_buffer("ids", ids[:, :int(ids.argmax(dim=-1).max()) + 1], persistent=False)

    def encode_text_features(self) -> torch.Tensor:
        text = self.backbone.text
        set_prefixes(self.layers, self.prefix())
        try:
            return F.normalize(text.encode_embeddings(text.embed_ids(self.ids), self.ids), dim=-1)
        finally:  # never leave graph-holding tensors inside the encoder
            set_prefixes(self.layers, None)


@register_strategy("p_tuning_v2", config=PTuningV2Config)
class PTuningV2(PrefixTuning):
    """P-tuning v2 (Liu et al., ACL 2022) on CLIP's text tower: prompts as keys and values in every layer, learned
    directly (no reparameterisation), reading "a photo of a {class}.". Differences from the paper: a CLIP text
    encoder instead of BERT/RoBERTa/GLM, and classes are scored by CLIP's text features instead of a linear head
    on [CLS]. Trains: the per-layer prefixes (layers x length x 2w). Freezes: both CLIP encoders."""

    paper = LIU
