"""The memory column covers the whole cell: in a worker of its own, a cell's peak is its process's max RSS, so
memory taken while the model is built (before training) counts; the training-only figure is kept beside it."""
from __future__ import annotations

from pathlib import Path

from bench.contract.plugins import load_plugins
from bench.core.strategy import STRATEGIES
from bench.run.executors import PoolExecutor
from bench.run.runner import CellConfig, run_grid

PLUGIN = '''
import torch

from bench.core.strategy import register_strategy
from strategies.linear_probe import LinearProbe, LinearProbeConfig


@register_strategy("hungry_probe", config=LinearProbeConfig)
class HungryProbe(LinearProbe):
    """Linear probe that touches 400 MB while it is built, then frees it.
    Trains: a linear head. Freezes: the backbone."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        torch.ones(100 * 2**20, dtype=torch.float32).sum()  # 400 MB, written, then freed
'''
TINY = {"num_tasks": 2, "num_classes": 4, "train_per_font": 1, "test_per_font": 1}


def test_a_pool_cells_memory_counts_what_building_the_model_took(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(STRATEGIES, "_items", dict(STRATEGIES._items))  # the plugin stays out of other tests
    (tmp_path / "hungry.py").write_text(PLUGIN)
    load_plugins([str(tmp_path / "hungry.py")])  # here too: the cell's id reads the strategy's defaults
    cell = CellConfig("ci5_glyphs", "hungry_probe", "vit_test_micro", 0, {"epochs": 1}, TINY)
    [record] = run_grid([cell], tmp_path / "results", "cpu", False, executor=PoolExecutor(1),
                        plugins=[str(tmp_path / "hungry.py")])
    assert record["status"] == "ok", record.get("error")
    memory = record["memory"]
    assert "max RSS of the cell's own worker process" in memory["measure"]
    assert memory["peak_mb"] >= 400
    assert memory["stream_peak_increase_mb"] < 400  # training and evaluation alone never saw it
