"""Tiny but real scenarios and random micro backbones: what tests and `check-plugin` run on CPU in seconds."""
from __future__ import annotations

from typing import Any

# Random, tiny backbones per family (never pretrained; numbers on them say nothing about a method's quality).
TEST_BACKBONES: dict[str, str] = {"vit": "vit_test_micro", "clip": "clip_test_micro", "coca": "coca_test_micro"}

# Small versions of each scenario kind: the benchmark's own builders, with fewer classes and images.
TINY_SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "class_incremental": ("ci5_glyphs", {"num_tasks": 2, "num_classes": 8, "train_per_font": 2,
                                         "test_per_font": 1}),
    "domain_incremental": ("di_styles", {"domains": ("clean", "outline"), "num_classes": 6, "train_per_font": 2,
                                         "test_per_font": 1}),
    "base_to_new": ("b2n_glyphs", {"num_classes": 8, "shots": 8, "train_per_font": 2, "test_per_font": 1}),
    "domain_adaptation": ("uda_styles", {"num_classes": 6, "train_per_font": 2, "test_per_font": 1}),
}


def tiny_scenario(kind: str, seed: int = 0):
    """A small scenario of the given kind, built by the real builders (cached on disk after the first call)."""
    from scenarios.catalog import build_scenario

    name, overrides = TINY_SCENARIOS[kind]
    return build_scenario(name, seed, **overrides)
