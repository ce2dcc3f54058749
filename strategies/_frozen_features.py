"""Shared plumbing of the strategies that fit a classifier on frozen features after each task (SimpleCIL, RanPAC,
APER): read a step's features from the harness's cache, or compute them when the cache is off.

Not a strategy itself (the leading underscore keeps `strategies.load_all` from importing it as one).
"""
from __future__ import annotations

from typing import Callable

import torch

from bench.core.data import TensorData
from bench.core.device import inference_batch_size


@torch.no_grad()
def step_features(data: TensorData, features_of: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                  batch_size: int | None = None, use_cache: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Features `(N, d)` (float32, on `device`) and labels `(N,)` of a training step.

    Uses `data.cached` when the harness filled it (no augmentation: the cached frozen inputs are the features of
    the plain images) unless `use_cache` is off (the cache holds another model's features); otherwise runs
    `features_of` on the plain, unaugmented pixels, as the papers' prototype extraction does (their loaders use the
    test transform for it)."""
    labels = data.labels.to(device)
    if use_cache and data.cached is not None:
        features = data.cached.to(device).float()
    else:
        features = _compute(data, features_of, device, batch_size or inference_batch_size(device))
    keep = labels >= 0  # unlabelled images (label -1) never enter a class statistic
    return features[keep], labels[keep]


def _compute(data: TensorData, features_of: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
             batch_size: int) -> torch.Tensor:
    parts = [features_of(data.images[i:i + batch_size].to(device).float().div_(255.0)).float()
             for i in range(0, len(data), batch_size)]
    width = parts[0].shape[1] if parts else 0
    return torch.cat(parts) if parts else torch.zeros(0, width, device=device)


def device_of(module: torch.nn.Module) -> torch.device:
    """The device a module's weights or buffers live on (CPU for an empty module)."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        return tensor.device
    return torch.device("cpu")


CLIP_FEATURES = ("pre_projection", "projected")


def has_projection(backbone: torch.nn.Module) -> bool:
    """Whether the image tower ends in a projection (CLIP's `proj`), i.e. has a distinct pre-projection feature."""
    return getattr(backbone, "flavour", None) == "open_clip" and getattr(backbone.encoder, "proj", None) is not None


def check_clip_feature(name: str, kind: str) -> None:
    if kind not in CLIP_FEATURES:
        raise ValueError(f"{name}: clip_feature {kind!r}; valid: {', '.join(CLIP_FEATURES)}")


def feature_width(backbone: torch.nn.Module, kind: str) -> int:
    """Width of the feature `pooled_features(backbone, x, kind)` returns."""
    return backbone.embed_dim if kind == "pre_projection" and has_projection(backbone) else backbone.num_features


def pooled_features(backbone: torch.nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """The tower's pooled output; on a CLIP tower with kind "pre_projection", the class token after `ln_post` and
    before `proj` (768-d on ViT-B/16: the feature RanPAC's and PILOT's code read from a ViT), else the projected
    embedding. On a ViT without projection both kinds are the same feature."""
    if kind == "projected" or not has_projection(backbone):
        return backbone(x)
    pooled, _ = backbone.encoder._pool(backbone.run_blocks(backbone.embed(x)))
    return pooled


def frozen_feature_key(backbone: torch.nn.Module, kind: str) -> str:
    """The shared frozen-cache entry of `pooled_features(..., kind)`: the projected feature keeps the name every
    other strategy reading the pooled output shares."""
    return "vision.pre_projection" if kind == "pre_projection" and has_projection(backbone) else "vision.pooled"

