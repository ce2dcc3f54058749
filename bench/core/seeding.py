"""Seeds: the global seed of a cell, and stable derived seeds for each use of it (one per render, class
order, subset...), so that no use of randomness shifts another."""
from __future__ import annotations

import hashlib
import random

import numpy as np


def seed_everything(seed: int) -> None:
    import torch  # here, not at the top: scenario presets derive seeds in commands that never load torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derive_seed(seed: int, *tags: object) -> int:
    """A stable 31-bit seed for one use of the scenario seed (train render, test render, class order...)."""
    text = "/".join(map(str, (seed, *tags)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
