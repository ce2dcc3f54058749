"""Strategies that are the same computation under two names (`same_computation_as`, `bench/run/twins.py`)."""
from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from bench.core.store import ResultStore
from bench.core.strategy import STRATEGIES, computation_twin
from bench.run import runner
from bench.run.executors import SerialExecutor
from bench.run.record import record_problems
from bench.run.runner import CellConfig, run_grid
from bench.run.twins import twin_of

TINY_CI = {"num_tasks": 2, "num_classes": 6, "train_per_font": 1, "test_per_font": 1}
DECLARED = sorted(name for name in STRATEGIES.names() if computation_twin(STRATEGIES.get(name)))


def cell(strategy: str, **kw) -> CellConfig:
    base = dict(scenario="ci5_glyphs", strategy=strategy, backbone="vit_test_micro", seed=0,
                strategy_config={"epochs": 1, "lr": 0.05}, scenario_overrides=TINY_CI)
    return CellConfig(**{**base, **kw})


def test_naive_declares_full_finetuning_as_its_computation():
    assert DECLARED == ["naive"] and computation_twin(STRATEGIES.get("naive")) == "full_finetune"
    assert computation_twin(STRATEGIES.get("ewc")) is None  # a subclass of naive that changes the training


@pytest.mark.parametrize("name", DECLARED)
def test_a_declared_twin_overrides_nothing_and_has_the_same_config(name):
    cls = STRATEGIES.get(name)
    twin = STRATEGIES.get(computation_twin(cls))
    assert issubclass(cls, twin) and cls is not twin
    code = [key for key, value in vars(cls).items()
            if inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod, property))]
    assert code == [], f"{name} overrides {code}: not the same computation as {twin.name}"
    fields = lambda c: {(f.name, repr(f.default), repr(f.default_factory)) for f in dataclasses.fields(c)}  # noqa: E731
    assert fields(cls.config_cls) == fields(twin.config_cls)


def test_run_grid_computes_a_twin_pair_once_and_writes_both_records(tmp_path, monkeypatch):
    computed = []
    original = runner.run_cell
    monkeypatch.setattr(runner, "run_cell", lambda cfg, *a, **k: computed.append(cfg.strategy) or original(cfg, *a, **k))
    naive, full = cell("naive"), cell("full_finetune")
    records = run_grid([naive, full], tmp_path, "cpu", show_progress=False, executor=SerialExecutor())
    assert computed == ["full_finetune"]
    derived, ran = records
    assert derived["cell_id"] == naive.cell_id() and derived["computed_as"] == full.cell_id()
    assert derived["results"] == ran["results"] and derived["metrics"] == ran["metrics"]
    assert derived["strategy"]["name"] == "naive" and derived["strategy"]["family"] == "continual"
    assert derived["strategy"]["paper"] == STRATEGIES.get("naive").paper
    assert derived["config"] == naive.resolved() and "computed_as" not in ran
    stored = ResultStore(tmp_path).read(naive.cell_id())
    assert stored == json.loads(json.dumps(derived)) and record_problems(stored) == []
    # Only naive's record lost: written from full_finetune's on disk, nothing computed.
    ResultStore(tmp_path).path_for(naive.cell_id()).unlink()
    again = run_grid([naive, full], tmp_path, "cpu", show_progress=False, executor=SerialExecutor())
    assert computed == ["full_finetune"] and again[0]["computed_as"] == full.cell_id()
    # The same computation run on its own gives the same numbers: the copy stands for it.
    alone = original(naive, tmp_path / "alone", "cpu", False)
    assert alone["results"]["acc_matrix"] == ran["results"]["acc_matrix"] and "computed_as" not in alone


def test_a_twin_outside_the_run_or_with_another_config_means_the_cell_runs_itself(tmp_path, monkeypatch):
    computed = []
    original = runner.run_cell
    monkeypatch.setattr(runner, "run_cell", lambda cfg, *a, **k: computed.append(cfg.strategy) or original(cfg, *a, **k))
    run_grid([cell("naive")], tmp_path, "cpu", show_progress=False, executor=SerialExecutor())
    assert computed == ["naive"]
    other = cell("naive", strategy_config={"epochs": 1, "lr": 0.01})
    assert twin_of(other) is not None and twin_of(cell("naive", label="naive_slow")) is None
    records = run_grid([other, cell("full_finetune")], tmp_path / "b", "cpu", show_progress=False,
                       executor=SerialExecutor())
    assert computed == ["naive", "naive", "full_finetune"] and all("computed_as" not in r for r in records)


def test_a_failed_twin_leaves_the_cell_to_run_itself(tmp_path, monkeypatch):
    computed = []
    original = runner.run_cell

    def fail_full_finetuning(cfg, *args, **kwargs):
        computed.append(cfg.strategy)
        if cfg.strategy == "full_finetune":
            return {"cell_id": cfg.cell_id(), "status": "failed", "error": "out of memory"}
        return original(cfg, *args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", fail_full_finetuning)
    records = run_grid([cell("naive"), cell("full_finetune")], tmp_path, "cpu", show_progress=False,
                       executor=SerialExecutor())
    assert computed == ["full_finetune", "naive"]
    assert records[0]["status"] == "ok" and "computed_as" not in records[0] and records[1]["status"] == "failed"
