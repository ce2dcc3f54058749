"""The embedded sources: rendered glyphs (scenarios/glyphs.py) and scikit-learn's handwritten digits
(scenarios/digits.py). No root needed; each call renders (or reads from the disk cache) exactly the arrays the
glyph scenarios have always used, so their numbers and cell ids are unchanged."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from scenarios import glyphs
from scenarios.sources.base import ArrayRecords, Source


def glyph_records(glyph_ids: Sequence[int], domain: str, per_font: int, seed: int) -> ArrayRecords:
    """Bench-font glyphs of `glyph_ids` in one style, labelled by position in `glyph_ids`."""
    rendered = glyphs.load_glyph_set(list(glyph_ids), glyphs.BENCH_FONTS, domain, per_font, seed)
    remap = np.full(max(glyph_ids) + 1, -1, dtype=np.int64)
    remap[list(glyph_ids)] = np.arange(len(glyph_ids))
    labels = remap[np.asarray(rendered.labels, dtype=np.int64)]
    return ArrayRecords(rendered.images, labels, f"glyphs[{domain}, seed {seed}]", [domain] * len(labels))


def digit_records(split: str, seed: int) -> ArrayRecords:
    """scikit-learn's 8x8 digits redrawn as 32-px glyph-like images, one side of the seeded split."""
    from scenarios.digits import load_handwritten_digits

    rendered = load_handwritten_digits(split, seed)
    return ArrayRecords(rendered.images, rendered.labels, f"sklearn digits ({split}, seed {seed})",
                        ["handwritten"] * len(rendered.labels))


def open_glyphs(glyph_ids: Sequence[int] | None = None, domain: str = "clean", train_per_font: int = 3,
                test_per_font: int = 2, seed: int = 0) -> Source:
    """Glyphs as a source with the same interface as the on-disk ones."""
    from bench.core.seeding import derive_seed

    ids = list(range(len(glyphs.GLYPH_CLASSES))) if glyph_ids is None else list(glyph_ids)
    splits = {"train": glyph_records(ids, domain, train_per_font, derive_seed(seed, "train")),
              "test": glyph_records(ids, domain, test_per_font, derive_seed(seed, "test"))}
    return Source("glyphs", [glyphs.GLYPH_CLASSES[g].name for g in ids], splits, domains=[domain],
                  notes="rendered in memory")


def open_digits(seed: int = 0) -> Source:
    splits = {s: digit_records(s, seed) for s in ("train", "test")}
    return Source("digits", [glyphs.GLYPH_CLASSES[d].name for d in range(10)], splits, domains=["handwritten"],
                  notes="scikit-learn digits, seeded stratified 50/50 split")
