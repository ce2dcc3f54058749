"""bench.report.leaderboard: a rebuild never silently drops tables or rows the leaderboards already have."""
from __future__ import annotations

import copy

import pytest

from bench.core.store import ResultStore
from bench.report.leaderboard import LeaderboardLossError, build_leaderboards
from test_html_report import synthetic_records


@pytest.fixture(autouse=True)
def plain_html(monkeypatch):
    """The HTML page (plots: seconds each) is not what is tested here; the Markdown and CSV tables are."""
    def write_html(records, path, **_):
        path.write_text(f"{len(list(records))} records")
        return path

    monkeypatch.setattr("bench.report.leaderboard.write_html", write_html)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_rebuild_that_drops_rows_is_refused_and_writes_nothing(tmp_path):
    records = synthetic_records()
    full = ResultStore(tmp_path / "full")
    for rec in records:
        full.write(rec)
    build_leaderboards(tmp_path / "full", tmp_path / "boards")
    before = _snapshot(tmp_path / "boards")
    fewer = ResultStore(tmp_path / "fewer")
    for rec in records[1:]:  # one cell short: its row would vanish
        fewer.write(rec)
    with pytest.raises(LeaderboardLossError, match=r"would drop 1 row\(s\) of .*\.csv") as caught:
        build_leaderboards(tmp_path / "fewer", tmp_path / "boards")
    assert "--force" in str(caught.value)
    assert _snapshot(tmp_path / "boards") == before
    build_leaderboards(tmp_path / "fewer", tmp_path / "boards", force=True)  # forced: rebuilt
    assert _snapshot(tmp_path / "boards") != before


def test_a_rebuild_that_adds_or_updates_rows_needs_no_force(tmp_path):
    records = synthetic_records()
    store = ResultStore(tmp_path / "results")
    for rec in records[1:]:
        store.write(rec)
    build_leaderboards(tmp_path / "results", tmp_path / "boards")
    store.write(records[0])
    newer = copy.deepcopy(records[1])
    newer["timing"] = {"total_seconds": 1.0}
    store.write(newer)
    build_leaderboards(tmp_path / "results", tmp_path / "boards")  # more rows, changed numbers: fine


def test_a_missing_results_folder_cannot_wipe_the_tables(tmp_path):
    store = ResultStore(tmp_path / "results")
    for rec in synthetic_records():
        store.write(rec)
    build_leaderboards(tmp_path / "results", tmp_path / "boards")
    before = _snapshot(tmp_path / "boards")
    with pytest.raises(LeaderboardLossError, match="from no results folder"):
        build_leaderboards(tmp_path / "fresh_clone" / "results", tmp_path / "boards")
    assert _snapshot(tmp_path / "boards") == before
