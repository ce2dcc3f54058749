"""DualPrompt: a general prompt shared by every task and one expert prompt per task, chosen by key matching,
both inserted as prefixes in the keys and values of the frozen ViT's attention."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import StrategyConfig, hp, mask_logits, register_strategy
from bench.models.backbones import VisionBackbone
from strategies._vit_prompting import TaskPoolPrompting, attach_prefix_attention, run_with_prefixes, scale_layers

PAPER = "Wang et al., DualPrompt: Complementary Prompting for Rehearsal-free Continual Learning, ECCV 2022"


@dataclass(frozen=True)
class DualPromptConfig(StrategyConfig):
    g_layers: tuple = hp((0, 1), "G-prompt layers, in ViT-B's 12-block numbering (scaled to the backbone's depth)")
    e_layers: tuple = hp((2, 3, 4), "E-prompt layers, in ViT-B's 12-block numbering (scaled likewise)")
    g_length: int = hp(5, "G-prompt length Lg (key and value prefixes of this length each)")
    e_length: int = hp(20, "E-prompt length Le (key and value prefixes of this length each)")
    pool_size: int = hp(10, "E-prompts (one per task; at least the number of training steps)")
    pull_weight: float = hp(1.0, "weight of the key-matching term 1 - cos(query, key of the task)")
    init_range: float = hp(1.0, "prompts and keys ~ U(-r, r), the PyTorch port's 'uniform' init")
    optimizer: str = hp("adam", "sgd | adam | adamw")
    lr: float = hp(0.005, "peak learning rate (the paper's Adam, lr 0.005)")
    epochs: int = hp(5, "passes over each task's training data (the paper's Split CIFAR-100 value)")
    batch_size: int = hp(24, "training batch size (the PyTorch port's)")


@register_strategy("dualprompt", config=DualPromptConfig)
class DualPrompt(TaskPoolPrompting):
    """DualPrompt (Wang et al., ECCV 2022). The query is the frozen ViT's pooled feature, computed once per image
    through `frozen_inputs`. A G-prompt shared by all tasks is a prefix (keys and values, each `Lg x d`) at the
    G layers; task t's E-prompt, a prefix of `Le x d` keys and values, at the E layers. Training uses task t's own
    E-prompt (the task is known while training) and loss CE(logits of the task's classes) + lambda * (1 - cos(query,
    key_t)); at test each image takes the E-prompt whose key is nearest to its query (top-1 by cosine) among the
    tasks trained so far. The head reads the class token after the final norm.
    Differences from the official code: layer indices are given for ViT-B and scaled to smaller ViTs (`l * depth //
    12`; where a G and an E layer coincide both prefixes are concatenated); prefixes have separate key and value
    halves of the full length each, as in the PyTorch port; test-time matching ignores keys of tasks not trained
    yet (the port matches the whole pool, whose keys are all trained by the end); the learning rate follows the
    harness's schedule (the paper's is constant).
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
        self.head = nn.Linear(d, info.num_classes)

    def select(self, query: torch.Tensor) -> torch.Tensor:
        """Query `(B, d)` -> the E-prompt index per image: the current task's while training, else top-1 key."""
        if self.training:
            return self.task.expand(query.shape[0])
        seen = int(self.task) + 1
        cos = F.normalize(query, dim=-1) @ F.normalize(self.keys[:seen], dim=-1).t()
        return cos.argmax(dim=-1)

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

    def params_per_new_task(self, new_classes: int) -> int:
        expert = self.e_prompts[0].numel() + self.keys.shape[1]
        return expert + (self.head.in_features + 1) * new_classes
