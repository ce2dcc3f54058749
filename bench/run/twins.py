"""Cells that are the same computation under two names, computed once.

Some strategies are registered twice on purpose: `naive` is full fine-tuning (`full_finetune`) line for line,
named again so that the continual-learning tables have their lower bound beside EWC, LwF and replay. A strategy
says so with `same_computation_as`; when a run holds both cells with the same config, scenario, backbone, seed
and robustness settings, it computes the twin it points to and writes this cell's record from that one: the same
numbers, this strategy's name, family and paper, and `computed_as` naming the cell that ran (its timing is that
cell's). Where the twin is not in the run and not on disk, or failed, the cell runs itself.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any

from bench.core.strategy import STRATEGIES, computation_twin

if TYPE_CHECKING:  # the runner imports this module
    from bench.run.runner import CellConfig


def twin_of(cfg: "CellConfig") -> "CellConfig | None":
    """The cell whose computation `cfg` is, or None. Labelled variants and unequal resolved configs have none, nor
    has a strategy outside the registry (the seq2seq strategies of the multimodal kinds)."""
    if cfg.strategy not in STRATEGIES:
        return None
    target = computation_twin(STRATEGIES.get(cfg.strategy))
    if not target or (cfg.label and cfg.label != cfg.strategy):
        return None
    twin = dataclasses.replace(cfg, strategy=target, label=None)
    if twin.resolved()["strategy_config"] != cfg.resolved()["strategy_config"]:
        return None  # another lr, epochs, ...: another computation
    return twin


def derived_record(cfg: "CellConfig", twin_record: dict[str, Any]) -> dict[str, Any]:
    """`cfg`'s record from its twin's finished record: the twin's numbers under `cfg`'s id, config and strategy."""
    cls = STRATEGIES.get(cfg.strategy)
    record = copy.deepcopy(twin_record)
    record["cell_id"] = cfg.cell_id()
    record["config"] = cfg.resolved()
    record["strategy"].update({"name": cfg.strategy, "label": cfg.label or cfg.strategy, "family": cls.family,
                               "paper": cls.paper, "flags": dataclasses.asdict(cls.flags)})
    record["computed_as"] = twin_record["cell_id"]
    return record
