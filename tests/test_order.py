"""Start order of a run's cells (`bench/run/order.py`): longest first from the seconds in earlier tables."""
from __future__ import annotations

import csv
from pathlib import Path

from bench.run.order import by_past_seconds, longest_first, past_seconds
from bench.run.runner import CellConfig, run_grid

COLUMNS = ["scenario", "strategy", "backbone", "submitted", "seconds_mean"]


def write_table(path: Path, rows: list[list[object]], columns: list[str] = COLUMNS) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)


def cell(strategy: str, scenario: str = "ci5_glyphs", seed: int = 0, label: str | None = None) -> CellConfig:
    return CellConfig(scenario=scenario, strategy=strategy, backbone="vit_glyph_tiny", seed=seed, label=label)


def test_past_seconds_reads_result_tables_and_skips_the_rest(tmp_path):
    write_table(tmp_path / "ci5_glyphs.csv", [["ci5_glyphs", "l2p", "vit_glyph_tiny", "False", 30.5],
                                             ["ci5_glyphs", "naive", "vit_glyph_tiny", "False", 10.0],
                                             ["ci5_glyphs", "mine", "vit_glyph_tiny", "True", 99.0],
                                             ["ci5_glyphs", "bad", "vit_glyph_tiny", "False", "nan"]])
    write_table(tmp_path / "claims.csv", [["L2P forgets less", "holds"]], ["claim", "verdict"])
    (tmp_path / "broken.csv").write_bytes(b"\xff\xfe\x00")
    seconds = past_seconds(tmp_path)
    assert seconds == {("ci5_glyphs", "l2p", "vit_glyph_tiny"): 30.5, ("ci5_glyphs", "naive", "vit_glyph_tiny"): 10.0}
    assert past_seconds(tmp_path / "missing") == {}


def test_longest_first_puts_unknown_cells_first_then_the_longest():
    cells = [cell("naive"), cell("new"), cell("l2p"), cell("naive", seed=1), cell("other")]
    known = {"naive": 10.0, "l2p": 30.0}
    order = longest_first(cells, lambda c: known.get(c.strategy))
    assert order == [1, 4, 2, 0, 3]  # unknown in their order, then 30 s, then the two 10 s cells in theirs


def test_a_labelled_variant_is_estimated_by_its_own_row(tmp_path):
    write_table(tmp_path / "t.csv", [["ci5_glyphs", "vpt_long", "vit_glyph_tiny", "False", 50.0],
                                     ["ci5_glyphs", "vpt_shallow", "vit_glyph_tiny", "False", 5.0]])
    estimate = by_past_seconds(tmp_path)
    assert estimate(cell("vpt_shallow", label="vpt_long")) == 50.0
    assert estimate(cell("vpt_shallow")) == 5.0


class RecordingExecutor:
    """Records the order in which tasks reach it and fails every cell (nothing runs, nothing is written)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def map(self, tasks):
        for index, task in enumerate(tasks):
            self.started.append(task.config.strategy)
            yield index, {"status": "failed", "error": "not run"}


def test_run_grid_starts_cells_longest_first_and_returns_them_in_cell_order(tmp_path):
    cells = [cell("naive"), cell("l2p"), cell("linear_probe")]
    known = {"naive": 10.0, "l2p": 30.0, "linear_probe": 1.0}
    executor = RecordingExecutor()
    records = run_grid(cells, tmp_path, show_progress=False, executor=executor, estimate=lambda c: known[c.strategy])
    assert executor.started == ["l2p", "naive", "linear_probe"]
    assert len(records) == 3
    executor = RecordingExecutor()
    run_grid(cells, tmp_path, show_progress=False, executor=executor)
    assert executor.started == ["naive", "l2p", "linear_probe"]  # no estimate: the order of `cells`
