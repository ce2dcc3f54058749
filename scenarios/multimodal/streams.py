"""Held-out splits and continual streams of the embedded multimodal tasks.

- `build_split`: the examples of one task kind from scenes `first_index ..` of one split (train / val / test draw
  from disjoint seed streams, so no scene is in two splits).
- `domain_incremental_stream`: one task kind; each experience draws new scenes in the next style domain
  (clean -> outline -> texture -> noisy by default).
- `task_incremental_stream`: one experience per task kind (caption -> vqa -> entailment by default), each on its
  own scenes, so forgetting and transfer can be measured for generation too.

Everything is a pure function of its arguments and the seed.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenarios import glyphs
from scenarios.multimodal.scenes import SPLITS, render_scene
from scenarios.multimodal.tasks import TASK_KINDS, Example, scene_examples

__all__ = ["Experience", "build_split", "domain_incremental_stream", "task_incremental_stream"]


@dataclass(frozen=True)
class Experience:
    """One step of a stream: its task kind, style domain and held-out splits."""

    name: str
    kind: str
    domain: str
    train: tuple[Example, ...]
    val: tuple[Example, ...]
    test: tuple[Example, ...]


def build_split(kind: str, split: str, seed: int, n_scenes: int, *, first_index: int = 0, domain: str = "clean",
                fonts: str = "bench", per_scene: int = 3) -> tuple[Example, ...]:
    """Examples of `kind` from scenes `first_index .. first_index + n_scenes - 1` of `split`."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}; valid: {', '.join(TASK_KINDS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    out: list[Example] = []
    for index in range(first_index, first_index + n_scenes):
        scene = render_scene(seed, split, index, domain, fonts)
        rng = np.random.default_rng([seed, SPLITS.index(split), index, 4, TASK_KINDS.index(kind)])
        out.extend(scene_examples(scene, kind, rng, per_scene))
    return tuple(out)


def _experience(name: str, kind: str, domain: str, seed: int, step: int, sizes: tuple[int, int, int],
                per_scene: int) -> Experience:
    splits = {split: build_split(kind, split, seed, n, first_index=step * n, domain=domain, per_scene=per_scene)
              for split, n in zip(SPLITS, sizes)}
    return Experience(name, kind, domain, splits["train"], splits["val"], splits["test"])


def domain_incremental_stream(kind: str, seed: int, domains: Sequence[str] = glyphs.DOMAINS, n_train: int = 64,
                              n_val: int = 16, n_test: int = 32, per_scene: int = 3) -> list[Experience]:
    """The same task kind in every experience, the style shifting from one to the next; `n_*` count scenes."""
    if len(domains) < 2 or len(set(domains)) != len(domains):
        raise ValueError(f"a domain-incremental stream needs >= 2 distinct domains, got {list(domains)}")
    return [_experience(f"{kind}/{domain}", kind, domain, seed, step, (n_train, n_val, n_test), per_scene)
            for step, domain in enumerate(domains)]


def task_incremental_stream(seed: int, kinds: Sequence[str] = ("caption", "vqa", "entailment"),
                            domain: str = "clean", n_train: int = 64, n_val: int = 16, n_test: int = 32,
                            per_scene: int = 3) -> list[Experience]:
    """One experience per task kind, in order, each on scenes of its own."""
    if len(kinds) < 2 or len(set(kinds)) != len(kinds):
        raise ValueError(f"a task-incremental stream needs >= 2 distinct task kinds, got {list(kinds)}")
    return [_experience(f"{kind}/{domain}", kind, domain, seed, step, (n_train, n_val, n_test), per_scene)
            for step, kind in enumerate(kinds)]
