"""CODA-Prompt: the prompt is a weighted sum of learned components, weighted by attention between the query and
each component's key; components grow per task and those of past tasks are frozen."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext
from bench.core.strategy import StrategyConfig, hp, mask_logits, register_strategy
from bench.models.backbones import VisionBackbone
from strategies._vit_prompting import (TaskPoolPrompting, attach_prefix_attention, run_with_prefixes, scale_layers,
                                       set_input_normalization)

PAPER = ("Smith et al., CODA-Prompt: COntinual Decomposed Attention-based Prompting for Rehearsal-Free Continual "
         "Learning, CVPR 2023")


@dataclass(frozen=True)
class CodaPromptConfig(StrategyConfig):
    layers: tuple = hp((0, 1, 2, 3, 4), "prompted layers, in ViT-B's 12-block numbering (scaled to the depth)")
    components_per_task: int = hp(10, "components added per task (official: pool 100 over 10 tasks)")
    max_tasks: int = hp(10, "tasks the component pool is sized for (pool = max_tasks x components_per_task)")
    length: int = hp(8, "prompt length Lp: the first half are prefix keys, the second half prefix values")
    ortho_weight: float = hp(0.0, "weight of the orthogonality penalty (the official configs use 0.0)")
    optimizer: str = hp("adam", "sgd | adam | adamw")
    lr: float = hp(0.001, "peak learning rate (official: Adam, lr 0.001)")
    schedule: str = hp("coda_cosine", "official: per-epoch cosine lr * cos(99 pi e / (200 (E - 1))), ending at "
                                      "1.6% of the rate (`cosine`: the harness's per-step decay to 0)")
    epochs: int = hp(20, "passes over each task's training data (official Split CIFAR-100 config)")
    batch_size: int = hp(128, "training batch size (official)")
    normalize: str = hp("backbone", "pixel normalisation: backbone (the checkpoint's mean/std) | unit (raw [0, 1] "
                                    "pixels, as the official loaders: the coda_prompt_cifar / _imr presets)")


@dataclass(frozen=True)
class CodaPromptCifarConfig(CodaPromptConfig):
    normalize: str = hp("unit", "raw [0, 1] pixels, as the official loaders (Normalize(0, 1))")
    augment: str = hp("rrc_flip", "random-resized crop + horizontal flip, the official training transform")


@dataclass(frozen=True)
class CodaPromptImageNetRConfig(CodaPromptCifarConfig):
    epochs: int = hp(50, "passes over each task's training data (official ImageNet-R config)")


def gram_schmidt_rows(matrix: torch.Tensor, start: int, stop: int,
                      draw: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """Rows `start:stop` of `matrix` (n, D) replaced as the official `gram_schmidt` does for a new task: for each
    new row k a fresh random vector v (`draw(D)`, default N(0, 1)) minus its projection onto EACH earlier row j < k
    separately, `v - sum_j (v.u_j / u_j.u_j) u_j` (classical Gram-Schmidt, every projection of the same v), then
    normalised. Earlier rows were orthonormal at their init but have trained since, so the new rows are orthogonal
    to the new rows before them but only approximately to the trained ones (exactly where those are still
    orthogonal), as in the official code. A zero earlier row is skipped (the official code would redraw forever)."""
    out = matrix.detach().clone()
    draw = draw or (lambda width: torch.randn(width, dtype=out.dtype))
    for k in range(start, stop):
        v = draw(out.shape[1]).to(out)
        earlier = out[:k]
        norms = (earlier * earlier).sum(dim=1)
        keep = norms >= 1e-8
        coefficients = (earlier[keep] @ v) / norms[keep]
        out[k] = v - coefficients @ earlier[keep]
    out[start:stop] = F.normalize(out[start:stop], dim=1)
    return out


def component_weights(query: torch.Tensor, keys: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """alpha_m = cos(q * A_m, K_m): query `(B, D)`, keys and attention `(M, D)` -> weights `(B, M)`."""
    attended = F.normalize(query.unsqueeze(1) * attention.unsqueeze(0), dim=-1)  # (B, M, D)
    return torch.einsum("bmd,md->bm", attended, F.normalize(keys, dim=-1))


def ortho_penalty(t: torch.Tensor) -> torch.Tensor:
    """Mean squared deviation of the rows' Gram matrix from the identity (the official penalty)."""
    t = t.flatten(1)
    return (t @ t.t() - torch.eye(t.shape[0], device=t.device, dtype=t.dtype)).pow(2).mean()


@register_strategy("coda_prompt", config=CodaPromptConfig)
class CodaPrompt(TaskPoolPrompting):
    """CODA-Prompt (Smith et al., CVPR 2023). The query q is the frozen ViT's pooled feature (cached once per
    image). At each prompted layer l, component m has its own key K_lm, attention vector A_lm (both in the query's
    space) and prompt P_lm, as the official `CodaPrompt` (one K, A, P per layer); the layer's prompt is
    sum_m alpha_lm P_lm with alpha_lm = cos(q * A_lm, K_lm); its first half is prefixed to the attention's keys,
    the second to its values. Task t trains components [t*n, (t+1)*n); earlier ones are used but detached
    (frozen), later ones unused. Each task's new components are drawn by the official row-by-row Gram-Schmidt
    (`gram_schmidt_rows`) against all earlier ones, per layer, for K, A and the flattened P alike. Loss: CE over the
    task's classes + ortho_weight x the orthogonality penalty of K, A and P summed over the layers (the official
    configs set the weight to 0). The learning rate steps per epoch on the official cosine (`coda_cosine`). The
    head reads the class token after the final norm. The official presets (`coda_prompt_cifar`) feed raw [0, 1]
    pixels and train on random-resized crops with flips, as the official loaders.
    Differences from the official code: layer indices are given for ViT-B and scaled to smaller ViTs (`l * depth //
    12`); the pool is sized by `max_tasks` (the official code reads the task count from the dataset); the plain
    `coda_prompt` keeps the backbone's normalisation and no augmentation (the glyphs are chiral: no flips); the
    query is computed once per image from the un-augmented pixels when no augmentation runs (the official code
    recomputes it from each augmented view, as this code does with augmentation on); unused rows start at zero
    (official: U[0, 1), overwritten before use either way).
    Trains: keys, attention vectors and prompt components of the current task, linear head. Freezes: the ViT
    (eval mode) and every earlier task's components."""

    paper = PAPER
    frozen_slices = "components of past tasks"

    def __init__(self, cfg: CodaPromptConfig, backbone: VisionBackbone, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        if cfg.length < 2 or cfg.length % 2:
            raise ValueError(f"coda_prompt: length must be even and >= 2 (key half, value half), got {cfg.length}")
        self.layers = scale_layers(cfg.layers, backbone.num_blocks)
        attach_prefix_attention(backbone.blocks, self.layers)
        pool, q, d = cfg.max_tasks * cfg.components_per_task, backbone.num_features, backbone.embed_dim
        self.keys = nn.Parameter(torch.zeros(len(self.layers), pool, q))
        self.attention = nn.Parameter(torch.zeros(len(self.layers), pool, q))
        self.prompts = nn.Parameter(torch.zeros(len(self.layers), pool, cfg.length, d))
        self.head = nn.Linear(d, info.num_classes)
        set_input_normalization(backbone, cfg.normalize, self.name)
        self.init_components(0)

    @torch.no_grad()
    def init_components(self, task: int) -> None:
        """Gram-Schmidt initialisation of task `task`'s components against every earlier component."""
        n = self.cfg.components_per_task
        start, stop = task * n, (task + 1) * n
        for i in range(len(self.layers)):
            self.keys[i].copy_(gram_schmidt_rows(self.keys[i], start, stop))
            self.attention[i].copy_(gram_schmidt_rows(self.attention[i], start, stop))
            flat = self.prompts[i].flatten(1)
            self.prompts[i].copy_(gram_schmidt_rows(flat, start, stop).view_as(self.prompts[i]))

    def active(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys, attention vectors and prompts of every component trained so far, earlier tasks' detached."""
        n = self.cfg.components_per_task
        start, stop = int(self.task) * n, (int(self.task) + 1) * n

        def part(t: torch.Tensor, dim: int) -> torch.Tensor:
            past, current = t.narrow(dim, 0, start).detach(), t.narrow(dim, start, stop - start)
            return torch.cat([past, current], dim=dim)

        return part(self.keys, 1), part(self.attention, 1), part(self.prompts, 1)

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        bb = self.backbone
        if cached is None:
            with torch.no_grad():
                cached = bb(x)
        keys, attention, prompts = self.active()
        query = cached.to(keys.dtype)
        alpha = torch.stack([component_weights(query, k, a) for k, a in zip(keys, attention)])  # (layers, B, M)
        mixed = torch.einsum("lbm,lmpd->lbpd", alpha, prompts)  # (layers, B, Lp, d)
        half = self.cfg.length // 2
        prefixes = {layer: (mixed[i, :, :half], mixed[i, :, half:]) for i, layer in enumerate(self.layers)}
        tokens = run_with_prefixes(bb, bb.embed(x), prefixes)
        return self.head(bb.final_norm()(tokens)[:, 0])

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        loss = F.cross_entropy(mask_logits(self(batch.x, batch.cached), ctx.train_classes), batch.y)
        if self.cfg.ortho_weight > 0:
            keys, attention, prompts = self.active()
            penalty = sum(ortho_penalty(k) + ortho_penalty(a) + ortho_penalty(p)  # per layer, as the official
                          for k, a, p in zip(keys, attention, prompts))
            loss = loss + self.cfg.ortho_weight * penalty
        return loss

    def before_task(self, ctx: TaskContext) -> None:
        self.start_task(ctx, self.cfg.max_tasks, "max_tasks", f"exceeds max_tasks {self.cfg.max_tasks}")
        if ctx.index > 0:  # task 0's components were initialised at construction
            self.init_components(ctx.index)

    def params_per_new_task(self, new_classes: int) -> int:
        n = self.cfg.components_per_task
        per_component = len(self.layers) * (2 * self.keys.shape[-1] + self.cfg.length * self.prompts.shape[-1])
        return n * per_component + (self.head.in_features + 1) * new_classes


@register_strategy("coda_prompt_cifar", config=CodaPromptCifarConfig)
class CodaPromptCifar(CodaPrompt):
    """CODA-Prompt with the official Split CIFAR-100 recipe (GT-RIPL/CODA-Prompt `configs/cifar-100_prompt.yaml`,
    `coda-p 100 8 0.0`): 100 components over 10 tasks, length 8, Adam lr 0.001, batch 128, 20 epochs, per-epoch
    cosine; raw [0, 1] pixels and random-resized crop + flip, as the official loaders. See `coda_prompt` for what
    still differs. Trains: the current task's components, linear head. Freezes: the ViT, past components."""


@register_strategy("coda_prompt_imr", config=CodaPromptImageNetRConfig)
class CodaPromptImageNetR(CodaPrompt):
    """CODA-Prompt with the official ImageNet-R recipe (`configs/imnet-r_prompt.yaml`): as `coda_prompt_cifar` but
    50 epochs. See `coda_prompt` for what still differs. Trains: the current task's components, linear head.
    Freezes: the ViT, past components."""
