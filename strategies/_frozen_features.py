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
