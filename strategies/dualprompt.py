"""DualPrompt: a general prompt shared by every task and one expert prompt per task, chosen by key matching,
both inserted as prefixes in the keys and values of the frozen ViT's attention."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import Flags, StrategyConfig, hp, mask_logits, register_strategy
from bench.models.backbones import VisionBackbone
from strategies._vit_prompting import (TaskPoolPrompting, attach_prefix_attention, init_head, run_with_prefixes,
                                       scale_layers, set_input_normalization)
from strategies.l2p import batch_vote

PAPER = "Wang et al., DualPrompt: Complementary Prompting for Rehearsal-free Continual Learning, ECCV 2022"


PORT_BATCH = 24  # the official configs' batch size; the port scales lr by batch / 256 (its unscale_lr=False)


@dataclass(frozen=True)
class DualPromptConfig(StrategyConfig):
    g_layers: tuple = hp((0, 1), "G-prompt layers, in ViT-B's 12-block numbering (scaled to the backbone's depth)")
    e_layers: tuple = hp((2, 3, 4), "E-prompt layers, in ViT-B's 12-block numbering (scaled likewise)")
    g_length: int = hp(5, "G-prompt length Lg (key and value prefixes of this length each)")
    e_length: int = hp(5, "E-prompt length Le (official CIFAR-100: 5; ImageNet-R: 20)")
    pool_size: int = hp(10, "E-prompts (one per task; at least the number of training steps)")
    pull_weight: float = hp(1.0, "weight of the key-matching term 1 - cos(query, key of the task)")
    init_range: float = hp(1.0, "prompts and keys ~ U(-r, r), the PyTorch port's 'uniform' init")
    shared_prompt_pool: bool = hp(True, "task t's E-prompt starts as a copy of task t-1's trained one (official "
                                        "shared_prompt_pool=True; keys are not copied: shared_prompt_key=False)")
    head_init: str = hp("trunc_normal", "linear head init: trunc_normal (the port's timm head, std 0.02) | torch | "
                                        "zeros (JAX)")
    normalize: str = hp("backbone", "pixel normalisation: backbone (the checkpoint's mean/std) | unit (raw [0, 1] "
                                    "pixels, as the official code: the *_cifar / *_imr presets)")
    batchwise_voting: bool = hp(False, "test time: the whole batch uses its most voted E-prompt (only with "
                                       "dualprompt_batchvote, whose flags say so)")
    optimizer: str = hp("adam", "sgd | adam | adamw")
    lr: float = hp(0.03 * PORT_BATCH / 256, "learning rate: official 0.03 x batch / 256 (CIFAR-100)")
    schedule: str = hp("constant", "official: constant")
    grad_clip: float = hp(1.0, "gradient norm clipping (official 1.0)")
    epochs: int = hp(5, "passes over each task's training data (official CIFAR-100: 5)")
    batch_size: int = hp(PORT_BATCH, "training batch size (official: 24)")


@dataclass(frozen=True)
class DualPromptCifarConfig(DualPromptConfig):
    normalize: str = hp("unit", "raw [0, 1] pixels, as the official code")
    augment: str = hp("rrc_flip", "random-resized crop + horizontal flip, the official training transform")


@dataclass(frozen=True)
class DualPromptImageNetRConfig(DualPromptCifarConfig):
    e_length: int = hp(20, "E-prompt length (official ImageNet-R: 20)")
    lr: float = hp(0.005 * PORT_BATCH / 256, "learning rate: official 0.005 x batch / 256 (ImageNet-R)")
    epochs: int = hp(50, "passes over each task's training data (official ImageNet-R: 50)")


@dataclass(frozen=True)
class DualPromptBatchVoteConfig(DualPromptCifarConfig):
    batchwise_voting: bool = hp(True, "test time: the whole batch uses its most voted E-prompt (the official CIFAR "
                                      "config's batchwise_prompt=True)")


@register_strategy("dualprompt", config=DualPromptConfig)
class DualPrompt(TaskPoolPrompting):
    """DualPrompt (Wang et al., ECCV 2022). The query is the frozen ViT's pooled feature, computed once per image
    through `frozen_inputs`. A G-prompt shared by all tasks is a prefix (keys and values, each `Lg x d`) at the
    G layers; task t's E-prompt, a prefix of `Le x d` keys and values, at the E layers. Training uses task t's own
    E-prompt (the task is known while training) and loss CE(logits of the task's classes) + lambda * (1 - cos(query,
    key_t)); at test each image takes the E-prompt whose key is nearest to its query (top-1 by cosine) among the
    tasks trained so far. The head reads the class token after the final norm. As the official CIFAR-100 config
    (google-research/l2p `cifar100_dualprompt.py`, its PyTorch port JH-LEE-KR/dualprompt-pytorch): Le = 5, Adam at
    a constant 0.03 x 24 / 256, batch 24, 5 epochs, gradient clipping 1.0, task t's E-prompt copied from task
    t-1's before training (`shared_prompt_pool`), truncated-normal head (the port). Presets: `dualprompt_cifar` and
    `dualprompt_imr` (Le = 20, lr 0.005 x 24 / 256, 50 epochs) add the official input pipeline (raw [0, 1] pixels,
    random-resized crop + flip); `dualprompt_batchvote` adds the CIFAR config's test-time batch-wise voting
    (flagged). The plain `dualprompt` keeps the backbone's normalisation and no augmentation (glyphs are chiral).
    Differences from the official code: layer indices are given for ViT-B and scaled to smaller ViTs (`l * depth //
    12`; where a G and an E layer coincide both prefixes are concatenated); prefixes have separate key and value
    halves of the full length each, as in the PyTorch port; test-time matching ignores keys of tasks not trained
    yet (the port matches the whole pool, whose keys are all trained by the end); prompts and keys ~ U(-1, 1) as
    the port (JAX: U[0, 0.01)); the query is computed once per image when no augmentation runs (with augmentation,
    from each augmented view, as the official code); random-resized crops are drawn as torchvision's but resampled
    bilinearly without antialiasing.
    Trains: G-prompt, E-prompts (only the current task's receives gradient), keys, linear head. Freezes: the ViT
    (kept in eval mode)."""

    paper = PAPER
    frozen_slices = "E-prompts of past tasks"

    def __init__(self, cfg: DualPromptConfig, backbone: VisionBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.g_layers = scale_layers(cfg.g_layers, backbone.num_blocks)
        self.e_layers = scale_layers(cfg.e_layers, backbone.num_blocks)
        attach_prefix_attention(backbone.blocks, sorted(set(self.g_layers) | set(self.e_layers)))
        r, d = cfg.init_range, backbone.embed_dim
        self.g_prompt = nn.Parameter(torch.empty(len(self.g_layers), 2, cfg.g_length, d).uniform_(-r, r))
        self.e_prompts = nn.Parameter(torch.empty(cfg.pool_size, len(self.e_layers), 2, cfg.e_length, d)
                                      .uniform_(-r, r))
        self.keys = nn.Parameter(torch.empty(cfg.pool_size, backbone.num_features).uniform_(-r, r))
        self.head = init_head(nn.Linear(d, info.num_classes), cfg.head_init)
        set_input_normalization(backbone, cfg.normalize, self.name)
        if cfg.batchwise_voting != self.flags.batchwise_inference:
            raise ValueError(f"{self.name}: batchwise_voting={cfg.batchwise_voting} contradicts this strategy's "
                             f"flags; use dualprompt_batchvote for test-time batch-wise voting")

    def select(self, query: torch.Tensor) -> torch.Tensor:
        """Query `(B, d)` -> the E-prompt index per image: the current task's while training, else top-1 key."""
        if self.training:
            return self.task.expand(query.shape[0])
        seen = int(self.task) + 1
        cos = F.normalize(query, dim=-1) @ F.normalize(self.keys[:seen], dim=-1).t()
        chosen = cos.argmax(dim=-1)
        if self.cfg.batchwise_voting:  # the batch's most voted E-prompt for every image
            return batch_vote(chosen.unsqueeze(1), seen, 1)[:, 0]
        return chosen

    def prefixes(self, chosen: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, keys and values `(B, length, d)`: the G-prompt and/or the chosen E-prompts."""
        b = chosen.shape[0]
        out: dict[int, list[torch.Tensor]] = {}
        for i, layer in enumerate(self.g_layers):
            out.setdefault(layer, []).append(self.g_prompt[i].unsqueeze(1).expand(-1, b, -1, -1))
        expert = self.e_prompts[chosen]  # (B, layers, 2, Le, d)
        for i, layer in enumerate(self.e_layers):
            out.setdefault(layer, []).append(expert[:, i].transpose(0, 1))
        merged = {layer: torch.cat(parts, dim=2) for layer, parts in out.items()}  # (2, B, length, d)
        return {layer: (kv[0], kv[1]) for layer, kv in merged.items()}

    def logits_and_query(self, x: torch.Tensor, cached: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        bb = self.backbone
        if cached is None:
            with torch.no_grad():
                cached = bb(x)
        query = cached.to(self.keys.dtype)
        tokens = run_with_prefixes(bb, bb.embed(x), self.prefixes(self.select(query)))
        return self.head(bb.final_norm()(tokens)[:, 0]), query

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_and_query(x, cached)[0]

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        logits, query = self.logits_and_query(batch.x, batch.cached)
        ce = F.cross_entropy(mask_logits(logits, ctx.train_classes), batch.y)
        match = F.cosine_similarity(query, self.keys[int(self.task)].unsqueeze(0), dim=-1).mean()
        return ce + self.cfg.pull_weight * (1.0 - match)

    def before_task(self, ctx: TaskContext) -> None:
        self.start_task(ctx, self.cfg.pool_size, "pool_size",
                        f"needs an E-prompt, but pool_size is {self.cfg.pool_size}")
        if self.cfg.shared_prompt_pool and ctx.index > 0:
            with torch.no_grad():  # the official shared_prompt_pool: start from the previous task's E-prompt
                self.e_prompts[ctx.index].copy_(self.e_prompts[ctx.index - 1])

    def params_per_new_task(self, new_classes: int) -> int:
        expert = self.e_prompts[0].numel() + self.keys.shape[1]
        return expert + (self.head.in_features + 1) * new_classes


@register_strategy("dualprompt_cifar", config=DualPromptCifarConfig)
class DualPromptCifar(DualPrompt):
    """DualPrompt with the official Split CIFAR-100 config (google-research/l2p `cifar100_dualprompt.py`; the
    PyTorch port's): `dualprompt`'s values plus raw [0, 1] pixels and random-resized crop + flip in training.
    Remaining differences: test-time selection is per image (the config also votes per batch at test, which
    assumes one task per test batch: `dualprompt_batchvote`, flagged); see `dualprompt` for the rest.
    Trains: G-prompt, E-prompts, keys, linear head. Freezes: the ViT."""


@register_strategy("dualprompt_imr", config=DualPromptImageNetRConfig)
class DualPromptImageNetR(DualPrompt):
    """DualPrompt with the official Split ImageNet-R config (`imr_dualprompt.py`): Le = 20, Adam at a constant
    0.005 x 24 / 256, 50 epochs, per-image selection at test (batchwise_prompt=False there), raw [0, 1] pixels,
    random-resized crop + flip. See `dualprompt` for what differs. Trains: G-prompt, E-prompts, keys, linear head.
    Freezes: the ViT."""


@register_strategy("dualprompt_batchvote", config=DualPromptBatchVoteConfig)
class DualPromptBatchVote(DualPrompt):
    """`dualprompt_cifar` with the official CIFAR config's test-time batch-wise prompt voting (batchwise_prompt=
    True): every test image uses the E-prompt most selected in its batch, which assumes a batch comes from one task
    and inflates accuracy; flagged on the leaderboard. Trains: G-prompt, E-prompts, keys, linear head. Freezes:
    the ViT."""

    flags = Flags(extra_forward_passes=1, batchwise_inference=True)
