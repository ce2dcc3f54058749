"""The NLP prompt family on CLIP's text tower, as named presets: prompt tuning (soft tokens at the input only),
P-tuning (input tokens produced by an LSTM + MLP prompt encoder), prefix tuning (per-layer prefixes through an MLP)
and P-tuning v2 (per-layer prefixes, no MLP).

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
LIU_V1 = "Liu et al., GPT Understands, Too, arXiv:2103.10385, 2021 (P-Tuning)"
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


# ------------------------------------------------------------------------------------------------ P-tuning
class PromptEncoder(nn.Module):
    """P-tuning's prompt encoder (Liu et al. 2021): an embedding of the `count` prompt positions read by a
    two-layer bidirectional LSTM (hidden w/2 per direction, so its output is w wide) and an MLP w -> w -> w with
    ReLU, as the official `PromptEncoder` (`lstm_head` + `mlp_head`). Output: prompt embeddings `(count, w)`."""

    def __init__(self, count: int, width: int, lstm_dropout: float = 0.0) -> None:
        super().__init__()
        if width % 2:
            raise ValueError(f"p_tuning: the bidirectional LSTM needs an even token width, got {width}")
        self.embedding = nn.Embedding(count, width)
        self.lstm = nn.LSTM(width, width // 2, num_layers=2, dropout=lstm_dropout, bidirectional=True,
                            batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self) -> torch.Tensor:
        return self.mlp(self.lstm(self.embedding.weight.unsqueeze(0))[0]).squeeze(0)


@dataclass(frozen=True)
class PTuningConfig(StrategyConfig):
    prompt_tokens: tuple = hp((3, 3), "(before, after): prompt tokens before and after the class name, as the "
                                      "official LAMA template (3, 3, 3) has 3 per gap; the text reads "
                                      "'[P x a] {class} [P x b].'")
    lstm_dropout: float = hp(0.0, "dropout between the two LSTM layers (official default 0.0)")
    optimizer: str = hp("adam", "sgd | adam | adamw (the official code: Adam)")
    lr: float = hp(0.001, "peak learning rate (the official LAMA script's 1e-5 is for thousands of steps)")
    epochs: int = hp(10, "passes over each task's training data")


@register_strategy("p_tuning", config=PTuningConfig)
class PTuning(_TextPromptStrategy):
    """P-tuning (Liu et al., 2021, "GPT Understands, Too") on CLIP's text tower: continuous prompt embeddings,
    produced by a prompt encoder (bidirectional LSTM + MLP over a trainable embedding, `PromptEncoder`), take
    the places of pseudo tokens among the input tokens: "[SOS] [P_1..P_a] {class} [P_a+1..P_a+b] . [EOS]", the
    class name being the anchor the prompts surround (the paper's template puts prompts around the subject and the
    [MASK]). Only the input layer is prompted; the prompts are the same for every class. Differences from the
    official code: a CLIP text encoder read at EOS instead of a masked or causal LM predicting a word; the class
    name replaces the subject/[MASK] pair, so there are two prompt gaps instead of three; Adam at lr 1e-3 (the
    LAMA script's 1e-5 with weight decay 5e-4 is sized for its longer training); the encoder is run for every text
    encoding (the official code likewise reruns it every step). Trains: the prompt encoder (embedding, LSTM,
    MLP). Freezes: both CLIP encoders."""

    paper = LIU_V1

    def __init__(self, cfg: PTuningConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        before, after = (int(n) for n in cfg.prompt_tokens)
        if before < 0 or after < 0 or before + after == 0:
            raise ValueError(f"p_tuning: prompt_tokens {cfg.prompt_tokens} must be two counts >= 0, not both 0")
        text = backbone.text
        self.encoder = PromptEncoder(before + after, text.width, cfg.lstm_dropout)
        ids, slots = pseudo_token_ids(text, [prompt_name(n) for n in info.class_names], before, after)
        with torch.no_grad():
            self.register_buffer("embeds", text.embed_ids(ids).clone(), persistent=False)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("slots", slots, persistent=False)

    def encode_text_features(self) -> torch.Tensor:
        prompts = self.encoder().to(self.embeds.dtype)  # (a + b, w), the same for every class
        n = self.embeds.shape[0]
        # Each class's pseudo-token slots, in order, take the prompts in order.
        embeds = self.embeds.masked_scatter(self.slots.unsqueeze(-1).expand_as(self.embeds),
                                            prompts.unsqueeze(0).expand(n, -1, -1))
        return F.normalize(self.backbone.text.encode_embeddings(embeds, self.ids), dim=-1)


def pseudo_token_ids(text, names: list[str], before: int, after: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids `(C, L)` of "[SOS] [P x before] {name} [P x after] . [EOS]" for each name and the mask `(C, L)`
    of the pseudo-token slots P (their ids are padding 0, never read: the prompt encoder fills those places);
    trailing padding is cut after the longest prompt's EOS (the causal mask makes it irrelevant)."""
    empty = text.tokenize([""])[0]
    sot, eot = int(empty[0]), int(empty[1])
    period = [int(i) for i in text.tokenize(["."])[0][1:] if int(i) not in (eot, 0)]
    rows, masks = [], []
    for name in names:
        named = text.tokenize([name])[0].tolist()
        words = named[1:named.index(eot)]
        row = [sot] + [0] * before + words + [0] * after + period + [eot]
        mask = [False] + [True] * before + [False] * len(words) + [True] * after + [False] * (len(period) + 1)
        rows.append(row)
        masks.append(mask)
    longest = max(len(r) for r in rows)
    if longest > text.context_length:
        raise ValueError(f"p_tuning: prompts need {longest} positions but the text encoder holds "
                         f"{text.context_length}")
    ids = torch.tensor([r + [0] * (longest - len(r)) for r in rows], device=empty.device)
    slots = torch.tensor([m + [False] * (longest - len(m)) for m in masks], device=empty.device)
    return ids, slots


# --------------------------------------------------------------------------- prefix tuning and P-tuning v2
@dataclass(frozen=True)
class PrefixTuningConfig(StrategyConfig):
    length: int = hp(10, "prefix length per layer (the paper's table-to-text value)")
    template: str = hp(TEMPLATE, "the hand-written prompt the text encoder reads")
    reparam: bool = hp(True, "the MLP reparameterisation (embedding -> Linear -> tanh -> Linear)")
    reparam_hidden: int = hp(512, "hidden width of the MLP (the paper's 512)")
    init_std: float = hp(1.0, "std of the prefix embedding")
    prefix_dropout: float = hp(0.0, "dropout on the prefix keys and values while training (the paper's code: "
                                    "prefix_dropout 0.0)")
    optimizer: str = hp("adamw", "sgd | adam | adamw (the paper's AdamW)")
    lr: float = hp(5e-5, "peak learning rate (the paper's table-to-text value)")
    epochs: int = hp(10, "passes over each task's training data (the paper's table-to-text value)")


@dataclass(frozen=True)
class PTuningV2Config(PrefixTuningConfig):
    length: int = hp(20, "prompt length per layer (the paper's value for simple classification tasks)")
    reparam: bool = hp(False, "no reparameterisation (the paper finds it unnecessary for most tasks)")
    reparam_hidden: int = hp(0, "unused without reparameterisation")
    prefix_dropout: float = hp(0.1, "dropout on the prefix keys and values while training (official code: "
                                    "Dropout(hidden_dropout_prob = 0.1) on past_key_values)")
    lr: float = hp(0.01, "peak learning rate (the paper's range 5e-3 to 1e-2)")


@register_strategy("prefix_tuning", config=PrefixTuningConfig)
class PrefixTuning(_TextPromptStrategy):
    """Prefix tuning (Li & Liang, ACL 2021) on CLIP's text tower: learned keys and values prepended in the
    self-attention of every text layer (visible to every token under the causal mask), produced by an MLP from a
    `length x w` embedding, as the paper's reparameterisation; the encoder reads "a photo of a {class}.". After
    each task the MLP is folded: its output is stored as plain per-layer prefixes (`folded`) and evaluation reads
    those alone, as the paper drops the MLP after training (the MLP is kept only to go on training at the next task
    of a stream; the paper has one). Differences from the paper: a CLIP text encoder instead of GPT-2/BART; the
    MLP's activation is tanh as in the paper's code, its hidden width 512. Trains: the prefix embedding and MLP.
    Freezes: both CLIP encoders."""

    paper = LI_LIANG
    activation = "tanh"

    def __init__(self, cfg: PrefixTuningConfig, backbone: ClipBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        text = backbone.text
        blocks = text.transformer.resblocks
        self.layers = attach_prefix_attention(blocks, range(len(blocks)))
        self.prefix = PrefixGenerator(cfg.length, len(blocks), text.width, cfg.reparam, cfg.reparam_hidden,
                                      self.activation, cfg.init_std)
        if not 0.0 <= cfg.prefix_dropout < 1.0:
            raise ValueError(f"{self.name}: prefix_dropout must be in [0, 1), got {cfg.prefix_dropout}")
        ids = text.tokenize([f"{name}." for name in templated_names(info.class_names, cfg.template)])
        self.register_buffer("ids", ids[:, :int(ids.argmax(dim=-1).max()) + 1], persistent=False)
        # The prefixes of the last finished task, the MLP folded away; empty until a task has been trained.
        self.register_buffer("folded", torch.zeros(0), persistent=False)

    def prefixes(self) -> torch.Tensor:
        """Per-layer prefixes `(layers, length, 2w)`: while training from the generator (MLP included) with prefix
        dropout; in evaluation the folded prefixes once a task has been trained."""
        if not self.training and self.folded.numel():
            return self.folded
        return F.dropout(self.prefix(), self.cfg.prefix_dropout, training=self.training)

    @torch.no_grad()
    def fold(self) -> None:
        """Store the generator's output as plain prefixes: the MLP's work done once, for evaluation."""
        self.folded = self.prefix().detach().clone()

    def after_task(self, ctx) -> None:
        super().after_task(ctx)
        self.fold()

    def encode_text_features(self) -> torch.Tensor:
        text = self.backbone.text
        set_prefixes(self.layers, self.prefixes())
        try:
            return F.normalize(text.encode_embeddings(text.embed_ids(self.ids), self.ids), dim=-1)
        finally:  # never leave graph-holding tensors inside the encoder
            set_prefixes(self.layers, None)


@register_strategy("p_tuning_v2", config=PTuningV2Config)
class PTuningV2(PrefixTuning):
    """P-tuning v2 (Liu et al., ACL 2022) on CLIP's text tower: prompts as keys and values in every layer, learned
    directly (no reparameterisation), reading "a photo of a {class}."; dropout 0.1 on the prefix keys and values
    while training, as the official code's `Dropout(hidden_dropout_prob)` on past_key_values. Differences from the
    paper: a CLIP text encoder instead of BERT/RoBERTa/GLM, and classes are scored by CLIP's text features instead of a linear head
    on [CLS]. Trains: the per-layer prefixes (layers x length x 2w). Freezes: both CLIP encoders."""

    paper = LIU
