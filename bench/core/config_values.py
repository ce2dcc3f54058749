"""A strategy config as plain values (what a cell id hashes), without importing torch: `bench.core.strategy`
defines the configs, `bench.run.catalog` rebuilds them from the cached listing for `promptshift plan`."""
from __future__ import annotations

import dataclasses
from typing import Any

# Knobs added after results were stored, with the value that switches each off. bench.run.runner hashes `to_dict()`
# into the cell id, so leaving these out at their off value keeps every earlier cell's id, and its stored result,
# valid; `from_dict` fills them back in. Any other value is written out and gives a new id.
OMITTED_WHEN_OFF: dict[str, Any] = {"augment": "none", "augment_views": 0, "schedule": "cosine", "warmup_lr": 0.0,
                                     "train_voting": False, "head_init": "torch"}


def plain_config(cfg: Any) -> dict[str, Any]:
    """The fields of a config dataclass as plain values; fields in `OMITTED_WHEN_OFF` are left out while they hold
    their off value and that is also the class's default (`from_dict` must fill the same value back: a preset whose
    default is on, e.g. `l2p_cifar`'s `augment: rrc_flip`, writes `augment: none` out when it is switched off)."""
    out = dataclasses.asdict(cfg)
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name, off in OMITTED_WHEN_OFF.items():
        if name in out and out[name] == off and defaults.get(name) == off:
            del out[name]
    return out
