"""Training augmentation for the benchmark's 32 px images: seeded, batched, per image, never used at evaluation.

`shift_scale` is a random zoom and a small random shift per image, for the glyphs. No flips there: glyphs are
chiral, and a mirrored 'b' is a 'd' (a mirrored 'p' a 'q'), so a flip would silently relabel images.
`rrc_flip` is the official prompt-pool codes' training transform for natural images (L2P, DualPrompt and
CODA-Prompt: RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) + RandomHorizontalFlip), for their official presets on
real data sets; never for glyphs. No
rotation either: the glyph renderer already rotates every glyph by up to 15 degrees. Pixels that come in from
outside the image repeat its border rather than a constant fill: backgrounds are grey, light or dark, coloured
or textured depending on the style, and a constant frame would be a cue that no test image has.

torchvision's v2 random transforms are not used: they draw from torch's global RNG (seeding them would mean
reseeding it) and draw one set of parameters per call, which on a batch tensor means one for the whole batch.
Here the parameters come from the caller's generator, one set per image, and one `grid_sample` applies them all.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTATIONS: tuple[str, ...] = ("none", "shift_scale", "rrc_flip")
RRC_SCALE = (0.08, 1.0)  # torchvision RandomResizedCrop's defaults, which the official codes use
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)
RRC_TRIES = 10
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


def draw_rrc_flip(n: int, height: int, width: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image crop boxes `(n, 4)` (top, left, h, w, in pixels) drawn as torchvision's
    `RandomResizedCrop.get_params` draws them (area share in RRC_SCALE, log-uniform aspect ratio in RRC_RATIO, up to
    RRC_TRIES tries, else the central crop of the clamped ratio), and flips `(n,)` (True with probability 0.5)."""
    area = float(height * width)
    log_ratio = (math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]))
    boxes = []
    for _ in range(n):
        box = None
        for _ in range(RRC_TRIES):
            target = area * float(torch.empty(1).uniform_(*RRC_SCALE, generator=generator))
            ratio = math.exp(float(torch.empty(1).uniform_(*log_ratio, generator=generator)))
            w, h = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                box = (top, left, h, w)
                break
        if box is None:  # torchvision's fallback: the whole image at the nearest allowed ratio, centred
            ratio = width / height
            w, h = ((width, int(round(width / RRC_RATIO[0]))) if ratio < RRC_RATIO[0] else
                    (int(round(height * RRC_RATIO[1])), height) if ratio > RRC_RATIO[1] else (width, height))
            box = ((height - h) // 2, (width - w) // 2, h, w)
        boxes.append(box)
    flips = torch.rand(n, generator=generator) < 0.5
    return torch.tensor(boxes, dtype=torch.float32).reshape(n, 4), flips


def apply_rrc_flip(pixels: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Each image's box `(top, left, h, w)` resized to the full image (bilinear, one `grid_sample` for the batch;
    torchvision also antialiases a downscale), mirrored left-right where `flips`."""
    n, _, height, width = pixels.shape
    top, left, h, w = boxes.unbind(1)
    # Output x in [-1, 1] samples input x at centre + x * half-width of the box (normalised coordinates).
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = (w / width) * torch.where(flips, -1.0, 1.0)
    theta[:, 1, 1] = h / height
    theta[:, 0, 2] = (2 * left + w) / width - 1.0
    theta[:, 1, 2] = (2 * top + h) / height - 1.0
    theta = theta.to(device=pixels.device, dtype=pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


def rrc_flip(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random-resized crop + horizontal flip per image, parameters from `generator` (see `draw_rrc_flip`)."""
    boxes, flips = draw_rrc_flip(pixels.shape[0], pixels.shape[-2], pixels.shape[-1], generator)
    return apply_rrc_flip(pixels, boxes, flips)


def augment(kind: str, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`pixels` augmented by the named augmentation ("none" returns them unchanged and draws nothing)."""
    check_augment(kind)
    if kind == "none":
        return pixels
    if kind == "rrc_flip":
        return rrc_flip(pixels, generator)
    return shift_scale(pixels, generator)
