"""Training augmentation for the benchmark's 32 px images: seeded, batched, per image, never used at evaluation.

One augmentation exists, `shift_scale`: a random zoom and a small random shift per image. No flips: glyphs are
chiral, and a mirrored 'b' is a 'd' (a mirrored 'p' a 'q'), so a flip would silently relabel images. No
rotation either: the glyph renderer already rotates every glyph by up to 15 degrees. Pixels that come in from
outside the image repeat its border rather than a constant fill: backgrounds are grey, light or dark, coloured
or textured depending on the style, and a constant frame would be a cue that no test image has.

torchvision's v2 random transforms are not used: they draw from torch's global RNG (seeding them would mean
reseeding it) and draw one set of parameters per call, which on a batch tensor means one for the whole batch.
Here the parameters come from the caller's generator, one set per image, and one `grid_sample` applies them all.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTATIONS: tuple[str, ...] = ("none", "shift_scale")
ZOOM_RANGE = (0.9, 1.1)  # glyphs fill at most 82% of the canvas; 1.1x keeps all but the largest inside
MAX_SHIFT_PX = 3.0  # per axis, in pixels of the image (about 10% of 32 px)
_STREAM = 0xA06  # tells the augmentation stream apart from the other streams derived from a cell seed


def check_augment(kind: str) -> None:
    """Raise for an unknown augmentation name, naming the valid ones."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augment {kind!r}; valid: {', '.join(AUGMENTATIONS)}")


def augment_generator(seed: int) -> torch.Generator:
    """A CPU generator for one cell's augmentations, derived from the cell seed. It is separate from the
    batch-order generator, so switching augmentation on never changes which images form a batch."""
    state = np.random.SeedSequence([int(seed), _STREAM]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def draw_shift_scale(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image parameters, drawn on the CPU (so a seed gives the same views on any device): zoom `(n,)` in
    ZOOM_RANGE and shift `(n, 2)` (x, y) in pixels, each within +-MAX_SHIFT_PX."""
    zoom = torch.empty(n).uniform_(*ZOOM_RANGE, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * MAX_SHIFT_PX
    return zoom, shift


def apply_shift_scale(pixels: torch.Tensor, zoom: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Zoom each image of `(N, C, H, W)` pixels about its centre by `zoom[i]`, then move it by `shift[i]` pixels
    (positive: right and down); bilinear, border pixels repeated outside the image."""
    n, _, height, width = pixels.shape
    # affine_grid maps output coordinates in [-1, 1] to input ones: sampling at x / zoom - shift shows the image
    # zoomed by `zoom` and moved by `shift` (a pixel is 2 / size wide in those coordinates).
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2] = -shift[:, 0] * 2.0 / width
    theta[:, 1, 2] = -shift[:, 1] * 2.0 / height
    theta = theta.to(device=pixels.device, dtype=pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


def shift_scale(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image zoomed and shifted by its own parameters from `generator` (see `draw_shift_scale`)."""
    zoom, shift = draw_shift_scale(pixels.shape[0], generator)
    return apply_shift_scale(pixels, zoom, shift)


def augment(kind: str, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`pixels` augmented by the named augmentation ("none" returns them unchanged and draws nothing)."""
    check_augment(kind)
    if kind == "none":
        return pixels
    return shift_scale(pixels, generator)
