"""Corrupted evaluation sets generated once before the cells (bench.eval.robustness.pregenerate_corrupted_sets):
a cell then corrupts no image itself, so its robustness time is its own, and its numbers equal those of a cell that
corrupted its sets itself."""
from __future__ import annotations

import bench.eval.robustness as robustness
from bench.eval.robustness import pregenerate_corrupted_sets, robustness_hook
from bench.run.runner import CellConfig, run_cell
from test_robustness import SMALL, TINY_CI


def _cell() -> CellConfig:
    return CellConfig(scenario="ci5_glyphs", strategy="linear_probe", backbone="vit_test_micro", seed=0,
                      strategy_config={"epochs": 1}, scenario_overrides=TINY_CI, robustness=SMALL)


def test_a_cell_after_pregeneration_corrupts_nothing_and_scores_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(robustness, "_CORRUPTED", type(robustness._CORRUPTED)())
    calls = []
    original = robustness.corrupt_images
    monkeypatch.setattr(robustness, "corrupt_images", lambda *a, **k: calls.append(a[1]) or original(*a, **k))

    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cold"))
    alone = run_cell(_cell(), tmp_path / "alone", "cpu", False, after_training=robustness_hook())
    assert alone["status"] == "ok" and calls  # without pregeneration the cell corrupts its sets

    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "pre"))
    robustness._CORRUPTED.clear()
    calls.clear()
    made = pregenerate_corrupted_sets([_cell(), _cell()])  # two cells of one scenario: its sets once
    assert made["sets"] == len(alone["results"]["eval_names"])
    assert len(calls) == made["sets"] * len(SMALL["corruption_names"]) * len(SMALL["severities"])
    calls.clear()
    after = run_cell(_cell(), tmp_path / "after", "cpu", False, after_training=robustness_hook())
    assert after["status"] == "ok" and calls == []
    assert after["robustness"]["corruptions"] == alone["robustness"]["corruptions"]
