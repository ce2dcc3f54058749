"""Scenes of several glyphs on one canvas: the images of the embedded multimodal tasks.

A scene is a `SCENE_SIZE` square cut into a 2 x 2 grid of glyph-sized cells; 2 to 4 cells hold one glyph each,
every glyph a different class drawn in a different named ink colour, all in one style domain of
`scenarios.glyphs` (clean, outline, texture, noisy; the background and finish follow that domain, while the ink
keeps its named colour so that "what colour" questions have one answer). Each object's box is the tight box of its
ink (coverage >= `INK_THRESHOLD`) in canvas pixels, (x1, y1, x2, y2) with exclusive x2/y2.

A scene is a pure function of (seed, split, index, domain): its composition (classes, colours, fonts, cells) and
glyph geometry come from generators seeded with (seed, split, index, ...) only, so one scene drawn in two domains
shows the same glyphs in the same places; styling adds the domain to the seed. Splits use disjoint seed streams.

Glyph shapes, placement and the domain finishes reuse `scenarios.glyphs`' private helpers on purpose: the scenes
must look like the glyph benchmark's images, and copying the code would let the two drift apart.
"""
from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenarios import glyphs
from scenarios.glyphs import _blur_matrix, _downsample, _glyph_mask, _pattern, _place, _rank  # noqa: PLC2701

__all__ = ["CELL", "COLOURS", "FONT_POOLS", "GRID", "INK_THRESHOLD", "SCENE_CLASSES", "SCENE_SIZE", "SPLITS",
           "Scene", "SceneObject", "char_answer", "object_name", "render_scene"]

CELL: int = glyphs.IMAGE_SIZE
GRID: int = 2
SCENE_SIZE: int = CELL * GRID
INK_THRESHOLD: float = 0.3
# A split's index seeds its scenes: append, never reorder. "pretrain" holds the scene CoCa's pretraining scenes
# (bench.multimodal.pretrain); no benchmark split, stream or task draws from it.
SPLITS: tuple[str, ...] = ("train", "val", "test", "pretrain")
MIN_OBJECTS, MAX_OBJECTS = 2, GRID * GRID

# Named inks, all far from the light backgrounds and from one another (in RGB, [0, 1]).
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.08, 0.08),
    "green": (0.05, 0.58, 0.12),
    "blue": (0.10, 0.22, 0.90),
    "orange": (0.98, 0.55, 0.02),
    "purple": (0.55, 0.12, 0.68),
    "black": (0.04, 0.04, 0.04),
}

# Digits and Latin capitals: names every reader (and a small decoder) can write, and one character per answer.
SCENE_CLASSES: tuple[int, ...] = tuple(i for i, c in enumerate(glyphs.GLYPH_CLASSES)
                                       if c.char.isdigit() or (c.char.isascii() and c.char.isupper()))
FONT_POOLS: dict[str, tuple[str, ...]] = {"bench": glyphs.BENCH_FONTS, "pretrain": glyphs.PRETRAIN_FONTS}


@dataclass(frozen=True)
class SceneObject:
    """One glyph of a scene: its glyph class, ink colour, grid cell (row, col) and ink box (x1, y1, x2, y2)."""

    cls: int
    colour: str
    cell: tuple[int, int]
    box: tuple[int, int, int, int]

    @property
    def name(self) -> str:
        return object_name(self.cls)

    @property
    def char(self) -> str:
        return char_answer(self.cls)


@dataclass(frozen=True)
class Scene:
    """A rendered scene: `image` uint8 (SCENE_SIZE, SCENE_SIZE, 3), objects in reading order (row, then column)."""

    scene_id: str
    split: str
    domain: str
    image: np.ndarray
    objects: tuple[SceneObject, ...]

    def at(self, row: int, col: int) -> SceneObject | None:
        return next((o for o in self.objects if o.cell == (row, col)), None)


def object_name(cls: int) -> str:
    """How captions and questions name a glyph class: "digit 7", "letter A"."""
    char = glyphs.GLYPH_CLASSES[cls].char
    return f"digit {char}" if char.isdigit() else f"letter {char}"


def char_answer(cls: int) -> str:
    """The short answer naming a glyph class: its character, lower-case as VQA answers are ("7", "a")."""
    return glyphs.GLYPH_CLASSES[cls].char.lower()


def _check(split: str, index: int, domain: str, seed: int, fonts: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if domain not in glyphs.DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; valid: {', '.join(glyphs.DOMAINS)}")
    if fonts not in FONT_POOLS:
        raise ValueError(f"unknown font pool {fonts!r}; valid: {', '.join(FONT_POOLS)}")
    if operator.index(index) < 0 or operator.index(seed) < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index!r} seed={seed!r}")


def _background(domain: str, rng: np.random.Generator) -> np.ndarray:
    """A light, colourless (SCENE_SIZE, SCENE_SIZE, 3) background: inks stay the colour they are named."""
    if domain == "texture":
        tiles = [_pattern(rng) for _ in range(GRID * GRID)]
        grid = np.block([[tiles[r * GRID + c] for c in range(GRID)] for r in range(GRID)])
        lo = rng.uniform(0.72, 0.8)
        grey = lo + (rng.uniform(0.9, 0.98) - lo) * grid
        return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    level = rng.uniform(0.86, 1.0) if domain in ("clean", "outline") else rng.uniform(0.72, 0.85)
    return np.full((SCENE_SIZE, SCENE_SIZE, 3), level, dtype=np.float32)


def _coverage(domain: str, placed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage in [0, 1] of one cell, finished as `domain` finishes a glyph image."""
    if domain == "outline":
        outer = _rank(placed, int(rng.integers(1, 3)), np.maximum)
        inner = _rank(placed, 3, np.minimum)
        return _downsample(outer - np.minimum(inner, outer))
    coverage = _downsample(placed)
    if domain == "noisy":
        blur = _blur_matrix(float(rng.uniform(0.5, 0.9)))
        coverage = blur @ coverage @ blur.T
        coverage = coverage / max(float(coverage.max()), 1e-6)
    return coverage


def render_scene(seed: int, split: str, index: int, domain: str = "clean", fonts: str = "bench",
                 classes: Sequence[int] = SCENE_CLASSES) -> Scene:
    """Scene number `index` of `split` for `seed`, drawn in `domain` with glyph faces from the `fonts` pool
    ("bench": the benchmark's faces; "pretrain": the faces reserved for pretraining)."""
    _check(split, index, domain, seed, fonts)
    classes = list(classes)
    if len(set(classes)) < MAX_OBJECTS or any(c not in SCENE_CLASSES for c in classes):
        raise ValueError(f"classes must be >= {MAX_OBJECTS} distinct ids from SCENE_CLASSES")
    code = SPLITS.index(split)
    layout = np.random.default_rng([seed, code, index, 0])
    n = int(layout.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
    cells = sorted(int(c) for c in layout.choice(GRID * GRID, size=n, replace=False))
    picked = layout.choice(len(classes), size=n, replace=False)
    inks = layout.choice(len(COLOURS), size=n, replace=False)
    faces = layout.integers(len(FONT_POOLS[fonts]), size=n)

    dom = glyphs.DOMAINS.index(domain)
    style = np.random.default_rng([seed, code, index, 1, dom])
    canvas = _background(domain, style)
    objects = []
    for slot, cell in enumerate(cells):
        cls, colour = classes[int(picked[slot])], list(COLOURS)[int(inks[slot])]
        font = FONT_POOLS[fonts][int(faces[slot])]
        placed = _place(_glyph_mask(font, cls), np.random.default_rng([seed, code, index, 2, slot]))
        coverage = _coverage(domain, placed, np.random.default_rng([seed, code, index, 3, slot, dom]))
        row, col = divmod(cell, GRID)
        y0, x0 = row * CELL, col * CELL
        region = canvas[y0:y0 + CELL, x0:x0 + CELL]
        ink = np.asarray(COLOURS[colour], dtype=np.float32)
        region[:] = region * (1.0 - coverage[..., None]) + ink * coverage[..., None]
        ys, xs = np.nonzero(coverage >= INK_THRESHOLD)
        box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
        objects.append(SceneObject(cls=cls, colour=colour, cell=(row, col), box=box))
    if domain == "noisy":
        canvas = canvas + style.normal(0.0, style.uniform(0.03, 0.06), size=canvas.shape).astype(np.float32)
    image = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
    return Scene(scene_id=f"{split}-{seed}-{index}", split=split, domain=domain, image=image,
                 objects=tuple(objects))
