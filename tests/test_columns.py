"""Tests for bench.report.columns: one column table read by both renderers; columns show only what they mean."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.columns import forgetting_definitions_agree, scenario_columns
from bench.report.html_report import render_page
from bench.report.tables import aggregate, records_to_frame, write_tables
from test_html_report import record

CI = ["task0", "task1", "task2"]
MONOTONE = [[0.9, 0.1, 0.0], [0.6, 0.8, 0.2], [0.5, 0.7, 0.9]]   # no task peaks later: both forgetting agree
PEAKED = [[0.6, 0.0, 0.0], [0.9, 0.8, 0.0], [0.5, 0.7, 0.9]]     # task 0 peaks after task 1: they differ


def _labels(records) -> list[str]:
    agg = aggregate(records_to_frame(records))
    agg["_label"] = agg["strategy"]
    return [c.label for c in scenario_columns(str(agg["kind"].iat[0]), agg)]


def test_one_forgetting_column_where_the_definitions_agree_two_where_they_differ() -> None:
    same = [record("a", "ci", "class_incremental", MONOTONE, CI, trainable=10)]
    labels = _labels(same)
    assert "Forgetting (%)" in labels and "Forgetting, max (%)" not in labels
    both = same + [record("b", "ci", "class_incremental", PEAKED, CI, trainable=10)]
    assert forgetting_definitions_agree(aggregate(records_to_frame(same)))
    assert {"Forgetting, avalanche (%)", "Forgetting, max (%)"} <= set(_labels(both))


def test_fwt_column_appears_only_with_an_untrained_start_row(tmp_path: Path) -> None:
    plain = record("a", "ci", "domain_incremental", MONOTONE, CI, trainable=10)
    assert "FWT (%)" not in _labels([plain])
    started = record("a", "ci", "domain_incremental", MONOTONE, CI, trainable=10)
    started["results"]["initial_accuracy"] = [0.1, 0.05, 0.1]
    frame = records_to_frame([started])
    # FWT = mean(A[0,1] - 0.05, A[1,2] - 0.1) = mean(0.05, 0.1) = 0.075
    assert frame["fwt"].iat[0] == pytest.approx(0.075)
    write_tables([started], tmp_path)
    assert "| FWT (%) |" in (tmp_path / "ci.md").read_text() and "7.5" in (tmp_path / "ci.md").read_text()


def test_time_is_split_and_both_renderers_show_the_same_headers(tmp_path: Path) -> None:
    rec = record("a", "ci", "class_incremental", MONOTONE, CI, trainable=10)
    rec["timing"]["robustness_seconds"] = 3.0
    write_tables([rec], tmp_path)
    md = (tmp_path / "ci.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Strategy"))
    md_labels = [c.strip() for c in header.strip("|").split("|")]
    assert ["Train (s)", "Eval (s)", "Robustness (s)", "Total (s)"] == md_labels[md_labels.index("Train (s)"):][:4]
    page = render_page([rec])
    for label in md_labels:
        assert f'title="click to sort">{label}</th>' in page


def test_hm_is_the_hm_of_mean_base_and_mean_new_over_seeds() -> None:
    records = [record("coop", "b2n", "base_to_new", [[0.9, 0.1]], ["base", "new"], trainable=5, seed=0),
               record("coop", "b2n", "base_to_new", [[0.5, 0.5]], ["base", "new"], trainable=5, seed=1)]
    row = aggregate(records_to_frame(records)).iloc[0]
    # mean base 0.7, mean new 0.3 -> HM 2 * 0.7 * 0.3 / 1.0 = 0.42 (the mean of per-seed HMs would be 0.34)
    assert row["harmonic_mean_mean"] == pytest.approx(0.42)


def _csv_rows(records, tmp_path: Path) -> dict[str, dict[str, str]]:
    import csv

    write_tables(records, tmp_path)
    (path,) = [p for p in tmp_path.glob("*.csv") if p.stem != "base_to_new_average" and p.stem != "index"]
    return {r["strategy"] + "/" + r["backbone"]: r for r in csv.DictReader(path.open())}


def test_every_headline_column_gets_an_interval(tmp_path: Path) -> None:
    """Each kind's headline (HM included: its std was once looked up as "harmonic_std_std") has a 95% half-width."""
    cases = {"base_to_new": ([[0.8, 0.6]], ["base", "new"]), "class_incremental": (MONOTONE, CI),
             "domain_incremental": (MONOTONE, CI), "domain_adaptation": ([[0.8, 0.6]], ["source", "target"])}
    for kind, (matrix, names) in cases.items():
        records = []
        for s in range(3):
            shifted = [[min(1.0, v + 0.01 * s) for v in row] for row in matrix]
            records.append(record("a", f"sc_{kind}", kind, shifted, names, trainable=10, seed=s))
        rows = _csv_rows(records, tmp_path / kind)
        half = float(rows["a/vit_glyph_tiny"]["headline_ci95"])
        assert half > 0, kind
        row = rows["a/vit_glyph_tiny"]
        assert row[row["headline"] + "_per_seed"].count(";") == 2, kind  # every seed's value is in the CSV


def test_near_best_marks_compare_rows_of_one_backbone_only(tmp_path: Path) -> None:
    records = []
    for s in range(3):
        records.append(record("best_vit", "ci", "class_incremental", [[0.95 + 0.001 * s]], ["t"], trainable=10,
                              seed=s))
        records.append(record("low_vit", "ci", "class_incremental", [[0.50 + 0.001 * s]], ["t"], trainable=10,
                              seed=s))
        other = record("clip_row", "ci", "class_incremental", [[0.60 + 0.001 * s]], ["t"], trainable=10, seed=s)
        other["config"]["backbone"] = "clip_glyph_tiny"
        records.append(other)
    rows = _csv_rows(records, tmp_path)
    marks = {k: v["within_noise_of_best"] for k, v in rows.items()}
    # clip_row is the best of its own backbone; low_vit is not within noise of best_vit
    assert marks == {"best_vit/vit_glyph_tiny": "True", "low_vit/vit_glyph_tiny": "False",
                     "clip_row/clip_glyph_tiny": "True"}


def test_rows_say_what_they_store_their_buffer_and_their_twin(tmp_path: Path) -> None:
    ranpac = record("ranpac", "ci", "class_incremental", MONOTONE, CI, trainable=0)
    ranpac["strategy"]["stored_values"] = 1_850_001
    replay = record("replay", "ci", "class_incremental", MONOTONE, CI, trainable=10, flags={"replay_memory": True})
    replay["config"]["strategy_config"]["memory_size"] = 200
    full = record("full_finetune", "ci", "class_incremental", MONOTONE, CI, trainable=10)
    naive = record("naive", "ci", "class_incremental", MONOTONE, CI, trainable=10)
    naive["computed_as"] = full["cell_id"]
    joint = record("joint_ridge", "ci", "class_incremental", MONOTONE, CI, trainable=0, flags={"joint_training": True})
    write_tables([ranpac, replay, full, naive, joint], tmp_path)
    text = (tmp_path / "ci.md").read_text()
    assert "0 trained, 1.85M stored" in text
    assert "replay, buffer 200 images" in text
    assert "same computation as full_finetune" in text
    assert "joint, bounds frozen-feature learners" in text
    assert "± is the standard deviation over seeds, not an interval" in text
