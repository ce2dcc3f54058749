"""Tests for bench.report.tables: flattening, seed aggregation, Markdown/CSV output."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bench.report.tables import aggregate, base_to_new_average, flags_label, records_to_frame, write_tables

INCREMENTAL_METRICS = ("final_accuracy", "avg_incremental_accuracy", "forgetting_avalanche",
                       "forgetting_max", "bwt")


def make_record(
    strategy: str = "linear_probe",
    seed: int = 0,
    *,
    scenario: str = "ci3_glyphs",
    kind: str = "class_incremental",
    metrics: dict[str, float] | None = None,
    status: str = "ok",
    error: str | None = None,
    flags: dict[str, Any] | None = None,
    submitted: bool = False,
    strategy_config: dict[str, Any] | None = None,
    seconds: float = 10.0,
    peak_cuda_mb: float | None = None,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    config = {
        "suite": "default",
        "scenario": scenario,
        "strategy": strategy,
        "strategy_config": strategy_config or {"lr": 0.1},
        "seed": seed,
        "backbone": "vit_glyph_tiny",
    }
    return {
        "schema_version": 1,
        "cell_id": f"default__{scenario}__{strategy}__s{seed}",
        "status": status,
        "error": error,
        "config": config,
        "scenario": {"name": scenario, "kind": kind, "num_steps": 3, "eval_names": ["t0", "t1", "t2"]},
        "strategy": {
            "name": strategy,
            "family": "baseline",
            "flags": flags or {"task_id_at_test": False, "batchwise_inference": False,
                               "extra_forward_passes": 0},
            "trainable_params": 8256,
            "backbone_params": 800000,
            "trainable_share": 0.01032,
            "params_per_new_task": 0,
        },
        "results": {"acc_matrix": [[0.9]], "eval_names": ["t0"]},
        "metrics": metrics if metrics is not None else {},
        "timing": {"train_seconds": seconds - 1.0, "eval_seconds": 1.0, "total_seconds": seconds},
        "memory": memory if memory is not None else {"peak_rss_mb": 900.0, "peak_cuda_mb": peak_cuda_mb},
        "env": {},
        "submitted": submitted,
    }


def ci_metrics(final: float, forgetting: float = 0.1) -> dict[str, float]:
    return {
        "final_accuracy": final,
        "avg_incremental_accuracy": final + 0.05,
        "forgetting_avalanche": forgetting,
        "forgetting_max": forgetting + 0.02,
        "bwt": -forgetting,
    }


def test_flags_label() -> None:
    assert flags_label(None) == "—"
    assert flags_label({"task_id_at_test": False, "extra_forward_passes": 0}) == "—"
    assert (
        flags_label({"task_id_at_test": True, "batchwise_inference": True, "extra_forward_passes": 1})
        == "task-id, batch-vote, +1 fwd"
    )
    assert flags_label({"replay_memory": True, "joint_training": True, "extra_forward_passes": 2,
                        "class_names": False}) == "+2 fwd, replay, joint"
    # Unknown flags are shown, not dropped.
    assert flags_label({"uses_text_encoder": True, "replay_buffer": 200}) == (
        "replay-buffer=200, uses-text-encoder"
    )


def test_records_to_frame_keeps_ok_rows_only() -> None:
    records = [
        make_record("a", 0, metrics=ci_metrics(0.8), flags={"task_id_at_test": True}),
        make_record("b", 0, status="failed", error="boom"),
    ]
    frame = records_to_frame(records)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["scenario"] == "ci3_glyphs"
    assert row["kind"] == "class_incremental"
    assert row["strategy"] == "a"
    assert row["seed"] == 0
    assert row["final_accuracy"] == pytest.approx(0.8)
    assert math.isnan(row["base_acc"])
    assert row["trainable_params"] == 8256
    assert row["trainable_share"] == pytest.approx(0.01032)
    assert row["params_per_new_task"] == 0
    assert row["seconds"] == pytest.approx(10.0)
    assert row["peak_memory_mb"] == pytest.approx(900.0)
    assert row["memory_measure"] == "peak RSS"
    assert row["flags"] == "task-id"
    assert not row["submitted"]


def test_two_seeds_aggregate_to_mean_and_sample_std() -> None:
    records = [
        make_record("lp", 0, metrics=ci_metrics(0.8, 0.10), seconds=10.0),
        make_record("lp", 1, metrics=ci_metrics(0.6, 0.20), seconds=14.0),
        make_record("solo", 0, metrics=ci_metrics(0.5)),
    ]
    agg = aggregate(records_to_frame(records)).set_index("strategy")
    lp = agg.loc["lp"]
    assert lp["n_seeds"] == 2
    assert lp["seeds"] == "0,1"
    # mean (0.8 + 0.6) / 2 = 0.7; sample std sqrt((0.1^2 + 0.1^2) / (2 - 1)) = sqrt(0.02)
    assert lp["final_accuracy_mean"] == pytest.approx(0.7)
    assert lp["final_accuracy_std"] == pytest.approx(math.sqrt(0.02))
    # forgetting (0.1 + 0.2) / 2 = 0.15, std sqrt(0.05^2 * 2) = sqrt(0.005)
    assert lp["forgetting_avalanche_mean"] == pytest.approx(0.15)
    assert lp["forgetting_avalanche_std"] == pytest.approx(math.sqrt(0.005))
    assert lp["seconds_mean"] == pytest.approx(12.0)
    solo = agg.loc["solo"]
    assert solo["n_seeds"] == 1
    assert solo["final_accuracy_std"] == 0.0
    # Metrics nobody reported stay missing, also in the std.
    assert math.isnan(solo["harmonic_mean_mean"]) and math.isnan(solo["harmonic_mean_std"])


def test_metric_missing_in_one_seed_is_not_averaged() -> None:
    partial = ci_metrics(0.6)
    del partial["forgetting_max"]
    agg = aggregate(records_to_frame([
        make_record("lp", 0, metrics=ci_metrics(0.8)),
        make_record("lp", 1, metrics=partial),
    ]))
    assert agg.loc[0, "final_accuracy_mean"] == pytest.approx(0.7)
    assert math.isnan(agg.loc[0, "forgetting_max_mean"])


def test_different_configs_are_not_averaged_together() -> None:
    agg = aggregate(records_to_frame([
        make_record("lp", 0, metrics=ci_metrics(0.8), strategy_config={"lr": 0.1}),
        make_record("lp", 0, metrics=ci_metrics(0.4), strategy_config={"lr": 0.01}),
    ]))
    assert len(agg) == 2
    assert sorted(agg["final_accuracy_mean"]) == pytest.approx([0.4, 0.8])


def test_incremental_markdown_rows_columns_and_legend(tmp_path: Path) -> None:
    records = [
        make_record("linear_probe", 0, metrics=ci_metrics(0.8, 0.10)),
        make_record("linear_probe", 1, metrics=ci_metrics(0.6, 0.20)),
        make_record("l2p", 0, metrics=ci_metrics(0.9), flags={
            "task_id_at_test": False, "batchwise_inference": True, "extra_forward_passes": 1}),
        make_record("theirs", 0, metrics=ci_metrics(0.95), submitted=True),
        make_record("partial", 0, metrics={"final_accuracy": 0.3}),
    ]
    paths = write_tables(records, tmp_path)
    md = (tmp_path / "ci3_glyphs.md").read_text(encoding="utf-8")
    assert tmp_path / "ci3_glyphs.md" in paths and tmp_path / "ci3_glyphs.csv" in paths

    assert "`ci3_glyphs`" in md and "class-incremental" in md
    assert "avalanche-lib" in md and "Mammoth's definition" in md
    assert "not the average incremental accuracy" in md

    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| Strategy"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols == [
        "Strategy", "Final acc (%)", "Avg incr. acc (%)", "Forgetting, avalanche (%)",
        "Forgetting, max (%)", "BWT (%)", "≈ best", "Trainable params", "Params / new task",
        "Train (s)", "Eval (s)", "Total (s)", "Peak memory (MB)", "Flags", "Seeds",
    ]
    body = [line for line in lines[lines.index(header) + 2:] if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    # Sorted by final accuracy, best first.
    assert [row[0] for row in cells] == [
        "theirs †submitted", "l2p", "linear_probe", "partial"]
    lp = cells[2]
    # 70.0 ± 14.1: mean 0.7, sample std sqrt(0.02) = 0.1414 -> percentages.
    assert lp[1] == "70.0 ± 14.1"
    assert lp[3] == "15.0 ± 7.1"  # forgetting 0.15 ± sqrt(0.005) = 0.0707
    assert lp[5] == "-15.0 ± 7.1"
    # Within noise of the best (theirs, 95.0, one seed): 70 ± 12.71·14.14/√2 = 70 ± 127 reaches 95; l2p (one seed,
    # 90.0) has no interval and is below the best, so it is not marked.
    assert lp[6] == "≈" and cells[0][6] == "≈" and cells[1][6] == "" and cells[3][6] == ""
    assert lp[7] == "8,256 (1.03%)"
    assert lp[8] == "0"
    assert lp[-2:] == ["—", "2"]
    assert cells[0][1] == "95.0"  # one seed: no ± part
    assert cells[1][-2] == "batch-vote, +1 fwd"
    # Never invented: a metric the record lacks prints as a dash.
    assert cells[3][1] == "30.0" and cells[3][2:6] == ["—"] * 4
    assert cells[2][12] == "900 ± 0"
    assert "- Peak memory (MB): peak RSS." in md

    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "[ci3_glyphs](ci3_glyphs.md)" in index
    assert not (tmp_path / "failures.md").exists()


def test_base_to_new_and_adaptation_columns(tmp_path: Path) -> None:
    records = [
        make_record("coop", 0, scenario="b2n", kind="base_to_new",
                    metrics={"base_acc": 0.9, "new_acc": 0.5, "harmonic_mean": 0.642857}),
        make_record("cocoop", 0, scenario="b2n", kind="base_to_new",
                    metrics={"base_acc": 0.8, "new_acc": 0.7, "harmonic_mean": 0.746667},
                    peak_cuda_mb=1234.0),
        make_record("tent", 0, scenario="da", kind="domain_adaptation",
                    metrics={"source_acc": 0.9, "target_acc": 0.6}),
    ]
    write_tables(records, tmp_path)
    b2n = (tmp_path / "b2n.md").read_text(encoding="utf-8")
    header = next(line for line in b2n.splitlines() if line.startswith("| Strategy"))
    assert "| Base (%) | New (%) | HM (%) |" in header
    assert "Final acc" not in header
    rows = [line for line in b2n.splitlines() if line.startswith("| coop") or line.startswith("| cocoop")]
    assert rows[0].startswith("| cocoop | 80.0 | 70.0 | 74.7 |")  # higher HM first
    # CUDA and RSS peaks are different quantities: each row says which it is.
    assert "| 1234 [1] |" in rows[0] and "| 900 [2] |" in rows[1]
    assert "[1] peak CUDA memory; [2] peak RSS" in b2n
    da = (tmp_path / "da.md").read_text(encoding="utf-8")
    assert "| Source (%) | Target (%) |" in da
    assert "| tent | 90.0 | 60.0 |" in da


def test_failures_are_listed(tmp_path: Path) -> None:
    records = [
        make_record("lp", 0, metrics=ci_metrics(0.8)),
        make_record("l2p", 2, status="failed",
                    error="RuntimeError: CUDA out of memory | tried 2 GiB\nTraceback (most recent call last):"),
    ]
    paths = write_tables(records, tmp_path)
    failures = tmp_path / "failures.md"
    assert failures in paths
    text = failures.read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| ci3_glyphs"))
    assert "| l2p | vit_glyph_tiny | 2 |" in row
    assert "RuntimeError: CUDA out of memory \\| tried 2 GiB" in row
    assert "Traceback" not in text
    assert "failures.md" in (tmp_path / "index.md").read_text(encoding="utf-8")
    # Failed cells never reach the scenario table.
    assert "l2p" not in (tmp_path / "ci3_glyphs.md").read_text(encoding="utf-8")

    # Once nothing fails any more, the stale list goes away.
    write_tables(records[:1], tmp_path)
    assert not failures.exists()


def test_csv_round_trips(tmp_path: Path) -> None:
    records = [
        make_record("lp", 0, metrics=ci_metrics(0.8123456789, 0.1)),
        make_record("lp", 1, metrics=ci_metrics(0.6, 0.2)),
        make_record("l2p", 0, metrics=ci_metrics(0.9), submitted=True),
    ]
    write_tables(records, tmp_path)
    text_cols = {"scenario": str, "kind": str, "strategy": str, "backbone": str,
                 "variant": str, "family": str, "flags": str, "seeds": str}
    header = (tmp_path / "ci3_glyphs.csv").read_text().splitlines()[0].split(",")
    text_cols.update({c: str for c in header if c.endswith("_per_seed")})  # "0.8123;0.6": every seed's value
    back = pd.read_csv(tmp_path / "ci3_glyphs.csv", dtype=text_cols)
    expected = aggregate(records_to_frame(records))
    assert sorted(back["final_accuracy_per_seed"].tolist()) == ["0.812346;0.6", "0.9"]
    assert len(back) == 2
    assert "base_acc_mean" not in back  # no data for this scenario's kind
    # The headline's 95% interval and the noise mark travel with the CSV: lp 0.706 ± std (0.8123 - 0.6)/√2 over
    # 2 seeds, half-width t(0.975, 1) = 12.7062 times std/√2, reaches l2p's 0.9: both within noise of the best.
    assert back.pop("headline").tolist() == ["final_accuracy"] * 2
    assert back.pop("within_noise_of_best").tolist() == [True, True]
    ci95 = back.pop("headline_ci95").tolist()
    assert math.isnan(ci95[0]) and ci95[1] == pytest.approx(12.7062 * (0.2123456789 / math.sqrt(2)) / math.sqrt(2), rel=1e-4)
    for col in back.columns:
        if col in text_cols:
            assert back[col].fillna("").tolist() == expected[col].astype(str).tolist(), col
        else:
            pd.testing.assert_series_equal(
                back[col], expected[col], check_dtype=False, check_names=False, rtol=1e-12
            )


def test_no_records_writes_only_index(tmp_path: Path) -> None:
    paths = write_tables([], tmp_path / "tables")
    assert paths == [tmp_path / "tables" / "index.md"]
    assert "No finished cells" in paths[0].read_text(encoding="utf-8")


def test_runner_record_layout(tmp_path: Path) -> None:
    """Records as bench.run.runner writes them: memory as peak_mb + measure, failures without blocks."""
    gpu = {"peak_mb": 2048.0, "measure": "cuda max allocated"}
    cpu = {"peak_mb": 300.0, "measure": "peak RSS increase during the cell (sampled)"}
    ok = [
        make_record("lp", 0, metrics=ci_metrics(0.8), memory=gpu),
        make_record("lp", 1, metrics=ci_metrics(0.6), memory=gpu),
        make_record("mixed", 0, metrics=ci_metrics(0.5), memory=gpu),
        make_record("mixed", 1, metrics=ci_metrics(0.5), memory=cpu),
    ]
    failed = {"schema_version": 1, "cell_id": "0123456789abcdef", "status": "failed",
              "error": "ValueError: no such backbone\nTraceback ...",
              "config": {"scenario": "ci3_glyphs", "strategy": "l2p", "seed": 4}}
    agg = aggregate(records_to_frame([*ok, failed])).set_index("strategy")
    assert agg.loc["lp", "peak_memory_mb_mean"] == pytest.approx(2048.0)
    assert agg.loc["lp", "memory_measure"] == "cuda max allocated"
    # Seeds that measured different things are not averaged.
    assert math.isnan(agg.loc["mixed", "peak_memory_mb_mean"])
    write_tables([*ok, failed], tmp_path)
    md = (tmp_path / "ci3_glyphs.md").read_text(encoding="utf-8")
    lp_row = next(line for line in md.splitlines() if line.startswith("| lp "))
    assert "| 2048 ± 0 [1] |" in lp_row
    assert "[1] cuda max allocated" in md
    failures = (tmp_path / "failures.md").read_text(encoding="utf-8")
    assert "| ci3_glyphs | l2p | — | 4 | `0123456789abcdef` | failed | ValueError: no such backbone |" in failures


def b2n_record(strategy: str, scenario: str, base: float, new: float, seed: int = 0, **kw: Any) -> dict[str, Any]:
    hm = 2 * base * new / (base + new)
    return make_record(strategy, seed, scenario=scenario, kind="base_to_new",
                       metrics={"base_acc": base, "new_acc": new, "harmonic_mean": hm}, **kw)


def test_base_to_new_average_is_the_hm_of_averaged_base_and_new(tmp_path: Path) -> None:
    records = [
        # coop: two seeds on b2n_a (base 0.9 and 0.7 -> 0.8; new 0.4 both), one on b2n_b (0.6 / 0.8).
        b2n_record("coop", "b2n_a", 0.9, 0.4, seed=0),
        b2n_record("coop", "b2n_a", 0.7, 0.4, seed=1),
        b2n_record("coop", "b2n_b", 0.6, 0.8),
        b2n_record("cocoop", "b2n_a", 0.5, 0.5),
        b2n_record("cocoop", "b2n_b", 0.9, 0.7),
        b2n_record("only_a", "b2n_a", 0.99, 0.99),  # ran on one of the two scenarios: no averages
        make_record("lp", 0, metrics=ci_metrics(0.8)),  # other kinds never enter the average
    ]
    average = base_to_new_average(aggregate(records_to_frame(records))).set_index("strategy")
    assert sorted(average.index) == ["cocoop", "coop", "only_a"]
    # coop: base (0.8 + 0.6) / 2 = 0.7, new (0.4 + 0.8) / 2 = 0.6, HM 2 * 0.7 * 0.6 / 1.3 = 0.646154
    coop = average.loc["coop"]
    assert coop["base_acc_avg"] == pytest.approx(0.7)
    assert coop["new_acc_avg"] == pytest.approx(0.6)
    assert coop["harmonic_mean_of_avgs"] == pytest.approx(0.84 / 1.3)
    # Not the mean of the per-scenario HMs: (HM(0.8, 0.4) + HM(0.6, 0.8)) / 2 = (0.533333 + 0.685714) / 2.
    assert coop["harmonic_mean_of_avgs"] != pytest.approx((0.64 / 1.2 + 0.96 / 1.4) / 2)
    assert (coop["n_scenarios"], coop["n_b2n_scenarios"], coop["seeds_per_scenario"]) == (2, 2, "1–2")
    # cocoop: base 0.7, new 0.6 too: the same HM.
    assert average.loc["cocoop", "harmonic_mean_of_avgs"] == pytest.approx(0.84 / 1.3)
    only_a = average.loc["only_a"]
    assert only_a["n_scenarios"] == 1 and only_a["missing"] == "b2n_b"
    assert math.isnan(only_a["base_acc_avg"]) and math.isnan(only_a["harmonic_mean_of_avgs"])

    paths = write_tables(records, tmp_path)
    md_path, csv_path = tmp_path / "base_to_new_average.md", tmp_path / "base_to_new_average.csv"
    assert md_path in paths and csv_path in paths
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# Base-to-new average over 2 scenarios")
    assert "harmonic mean of those two averages" in md
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| Strategy"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Strategy", "Base (%)", "New (%)", "HM (%)", "Scenarios", "Seeds / scenario", "Flags"]
    body = [line for line in lines[lines.index(header) + 2:] if line.startswith("|")]
    assert body == [
        "| cocoop | 70.0 | 60.0 | 64.6 | 2 of 2 | 1 | — |",
        "| coop | 70.0 | 60.0 | 64.6 | 2 of 2 | 1–2 | — |",
        "| only_a | — | — | — | 1 of 2 (missing b2n_b) | 1 | — |",
    ]
    back = pd.read_csv(csv_path, dtype={"strategy": str}).set_index("strategy")
    assert back.loc["coop", "harmonic_mean_of_avgs"] == pytest.approx(0.84 / 1.3, rel=1e-12)
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "[base, new and HM](base_to_new_average.md)" in index and "2 base-to-new scenarios" in index


def test_base_to_new_average_with_one_scenario_and_without_any(tmp_path: Path) -> None:
    write_tables([b2n_record("coop", "b2n_a", 0.9, 0.5)], tmp_path)
    md = (tmp_path / "base_to_new_average.md").read_text(encoding="utf-8")
    assert md.startswith("# Base-to-new average over 1 scenario\n")
    assert "| coop | 90.0 | 50.0 | 64.3 | 1 of 1 | 1 | — |" in md  # 2 * 0.9 * 0.5 / 1.4 = 0.642857
    # Without base-to-new records the table is gone, not left stale.
    write_tables([make_record("lp", 0, metrics=ci_metrics(0.8))], tmp_path)
    assert not (tmp_path / "base_to_new_average.md").exists()
    assert "base_to_new_average" not in (tmp_path / "index.md").read_text(encoding="utf-8")
