"""The rules of the field's protocols, each a pure function returning class lists or record indices."""
from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np

from bench.core.seeding import derive_seed

PYCIL_SEED = 1993
CLASS_ORDERS = ("seeded", "pycil", "sorted")


def class_order(num_classes: int, seed: int, order: str = "seeded") -> list[int]:
    """The order classes arrive in a class-incremental stream.

    - "seeded": a permutation from a local generator seeded by (seed, "class-order"): one order per run seed.
    - "pycil": PyCIL / PILOT's order, `np.random.seed(1993); np.random.permutation(n)`, the same for every seed
      (a local RandomState, so the global numpy RNG is left alone).
    - "sorted": 0..n-1.
    """
    if order == "seeded":
        return np.random.default_rng(derive_seed(seed, "class-order")).permutation(num_classes).tolist()
    if order == "pycil":
        return np.random.RandomState(PYCIL_SEED).permutation(num_classes).tolist()
    if order == "sorted":
        return list(range(num_classes))
    raise ValueError(f"unknown class order {order!r}; valid: {', '.join(CLASS_ORDERS)}")


def exact_split(order: Sequence[int], parts: int) -> list[list[int]]:
    """Split a class order into `parts` consecutive groups whose sizes differ by at most one; none dropped."""
    if not 1 <= parts <= len(order):
        raise ValueError(f"cannot split {len(order)} classes into {parts} tasks")
    return [list(map(int, chunk)) for chunk in np.array_split(np.asarray(order), parts)]


def indices_of(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Record indices (ascending) whose label is in `classes`."""
    return np.flatnonzero(np.isin(np.asarray(labels), np.asarray(list(classes), dtype=np.int64)))


def domain_indices(domains: Sequence[str], domain: str) -> np.ndarray:
    return np.flatnonzero(np.asarray(domains) == domain)


def base_new_classes(num_classes: int, rule: str = "coop", seed: int = 0) -> tuple[list[int], list[int]]:
    """Base and new classes.

    - "coop": CoOp / CoCoOp's `subsample_classes`: labels sorted, the first ceil(n/2) base, the rest new.
    - "seeded": a seeded half (the glyph scenarios' rule): permutation by (seed, "base-new"), first ceil(n/2) base.
    """
    if rule == "coop":
        half = math.ceil(num_classes / 2)
        return list(range(half)), list(range(half, num_classes))
    if rule == "seeded":
        order = np.random.default_rng(derive_seed(seed, "base-new")).permutation(num_classes).tolist()
        half = (num_classes + 1) // 2
        return sorted(order[:half]), sorted(order[half:])
    raise ValueError(f"unknown base/new rule {rule!r}; valid: coop, seeded")


def seeded_few_shot(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """`shots` records per class (classes in ascending order), drawn by numpy's generator: the glyph rule."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    keep: list[int] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < shots:
            raise ValueError(f"class {cls} has {len(members)} samples, fewer than shots={shots}")
        keep.extend(rng.choice(members, size=shots, replace=False).tolist())
    return np.array(sorted(keep), dtype=np.int64)


def coop_few_shot(labels: Sequence[int], shots: int, seed: int,
                  val_labels: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """CoOp's few-shot draw (Dassl `generate_fewshot_dataset` after `set_random_seed(seed)`; seeds 1, 2, 3):
    records grouped by label in order of first appearance, `random.sample(items, shots)` per label from Python's
    `random` seeded with `seed` (a class with fewer items keeps all of them), then the val split drawn from the same
    stream with min(shots, 4). Returns (train indices, val indices or None), in drawing order as CoOp keeps them."""
    rng = random.Random(seed)

    def draw(values: Sequence[int], k: int) -> np.ndarray:
        groups: dict[int, list[int]] = {}
        for i, label in enumerate(values):
            groups.setdefault(int(label), []).append(i)
        picked: list[int] = []
        for items in groups.values():
            picked.extend(rng.sample(items, k) if len(items) >= k else items)
        return np.array(picked, dtype=np.int64)

    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    train = draw(list(labels), shots)
    val = draw(list(val_labels), min(shots, 4)) if val_labels is not None else None
    return train, val


def adaptation_indices(domains: Sequence[str], source: str, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Unsupervised adaptation (DAPL on Office-Home): every source record labelled, every target record
    unlabelled for training and labelled for evaluation."""
    if source == target:
        raise ValueError(f"source and target domain are both {source!r}")
    present = sorted(set(domains))
    for d in (source, target):
        if d not in present:
            raise ValueError(f"domain {d!r} not in this source; it has {present}")
    return domain_indices(domains, source), domain_indices(domains, target)
