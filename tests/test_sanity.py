"""Tests for bench.report.sanity: each check passes on a clean result set and fails on a doctored one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.core.store import ResultStore
from bench.report.leaderboard import build_leaderboards
from bench.report.sanity import run_checks
from test_html_report import record

TASKS = [[0, 1, 2, 3], [4, 5, 6, 7]]
NAMES = [f"class {i}" for i in range(8)]


def ci(strategy: str, final: float, seed: int, *, joint: bool = False, start: list[float] | None = None,
       trainable: int = 100) -> dict[str, Any]:
    """A 2-task class-incremental cell over 8 classes whose last row averages to `final`."""
    rec = record(strategy, "ci2", "class_incremental", [[0.9, 0.0], [final, final]], ["task1", "task2"],
                 trainable=trainable, seed=seed, flags={"joint_training": joint})
    rec["scenario"].update(classes_per_step=TASKS, class_names=NAMES, domains=["clean"], eval_sizes=[40, 40])
    if joint:
        rec["metrics"] = {"final_accuracy": final}
    if start is not None:
        rec["results"]["initial_accuracy"] = start
    return rec


def verdicts(records: list[dict[str, Any]], check: str) -> dict[str, str]:
    quality = lambda: ({"clip_glyph_tiny": {"zero_shot_bench_fonts": 0.96}}, 1000, 62)  # noqa: E731
    return {f.row.split(" (")[0]: f.verdict for f in run_checks(records, quality) if f.check == check}


def test_joint_upper_bound_below_a_continual_learner_fails() -> None:
    clean = [ci("joint", 0.90 + 0.01 * s, s, joint=True) for s in range(3)] + \
            [ci("l2p", 0.70 + 0.01 * s, s) for s in range(3)]
    assert verdicts(clean, "upper bound") == {"l2p": "pass"}
    doctored = [ci("joint", 0.50 + 0.01 * s, s, joint=True) for s in range(3)] + \
               [ci("l2p", 0.70 + 0.012 * s, s) for s in range(3)]
    assert verdicts(doctored, "upper bound") == {"l2p": "fail"}
    # within noise: a wide spread over seeds makes it undecided, not a failure
    noisy = [ci("joint", v, s, joint=True) for s, v in enumerate((0.5, 0.9, 0.7))] + \
            [ci("l2p", 0.72 + 0.01 * s, s) for s in range(3)]
    assert verdicts(noisy, "upper bound") == {"l2p": "undecided"}


def test_each_row_is_checked_against_its_own_familys_bound() -> None:
    # RanPAC above joint fine-tuning is no failure (another family); above the joint ridge head it is one
    joint = [ci("joint", 0.70 + 0.01 * s, s, joint=True) for s in range(3)]
    ranpac = [ci("ranpac", 0.78 + 0.01 * s, s, trainable=0) for s in range(3)]
    assert verdicts(joint + ranpac, "upper bound") == {}  # no frozen-feature bound ran: no verdict
    ridge = [ci("joint_ridge", 0.80 + 0.011 * s, s, joint=True, trainable=0) for s in range(3)]
    probe = [ci("joint_probe", 0.60 + 0.01 * s, s, joint=True) for s in range(3)]
    assert verdicts(joint + ranpac + ridge + probe, "upper bound") == {"ranpac": "pass"}  # the best bound counts
    low_ridge = [ci("joint_ridge", 0.70 + 0.011 * s, s, joint=True, trainable=0) for s in range(3)]
    assert verdicts(joint + ranpac + low_ridge + probe, "upper bound") == {"ranpac": "fail"}
    vpt = [ci("vpt_deep", 0.75 + 0.012 * s, s) for s in range(3)]  # features change: joint fine-tuning bounds it
    found = verdicts(joint + vpt + low_ridge, "upper bound")
    assert found == {"vpt_deep": "fail"}
    text = [f.detail for f in run_checks(joint + vpt) if f.check == "upper bound"][0]
    assert "the fine-tuning bound joint" in text and "paired over 3 seeds" in text


def test_a_trained_row_at_chance_fails() -> None:
    # 8 classes seen at the end, no task identity: chance 1/8 = 12.5%
    assert verdicts([ci("l2p", 0.7 + 0.01 * s, s) for s in range(3)], "chance") == {"l2p": "pass"}
    assert verdicts([ci("l2p", 0.125, s) for s in range(3)], "chance") == {"l2p": "fail"}
    training_free = [ci("simplecil", 0.125, 0, trainable=0)]  # prototypes at chance are broken too
    assert verdicts(training_free, "chance") == {"simplecil": "fail"}


def test_a_trained_row_below_its_untrained_start_fails() -> None:
    clean = [ci("coop", 0.70 + 0.01 * s, s, start=[0.5, 0.5]) for s in range(3)]
    assert verdicts(clean, "untrained start") == {"coop": "pass"}
    doctored = [ci("coop", 0.40 + 0.01 * s, s, start=[0.5, 0.5]) for s in range(3)]
    assert verdicts(doctored, "untrained start") == {"coop": "fail"}
    assert verdicts([ci("coop", 0.7, 0)], "untrained start") == {}  # no start row: no verdict
    # a null start entry (not evaluated) leaves that set out of both sides: task 2 alone, 0.45 < 0.5
    partial = [ci("coop", 0.45, s, start=[None, 0.5]) for s in range(3)]
    assert verdicts(partial, "untrained start") == {"coop": "fail"}


def zero_shot(base: float, new: float, seed: int = 0) -> dict[str, Any]:
    rec = record("zeroshot_clip", "b2n", "base_to_new", [[base, new]], ["base", "new"], trainable=0, seed=seed)
    rec["config"]["backbone"] = "clip_glyph_tiny"
    rec["scenario"].update(classes_per_step=[list(range(31))], class_names=[f"c{i}" for i in range(62)],
                           domains=["clean"], eval_sizes=[200, 200])
    return rec


def test_zero_shot_must_equal_the_measured_quality_within_a_binomial_interval() -> None:
    # q = 0.96 on 1000 images; 200 images here: margin 1.96·sqrt(.96·.04/1000 + p(1-p)/200) ≈ 2.7-3.0 points.
    # Base and new each predict among 31 of 62 classes: only the lower bound applies.
    assert set(verdicts([zero_shot(0.97, 0.99)], "zero-shot quality").values()) == {"pass"}
    found = [f for f in run_checks([zero_shot(0.97, 0.80)],
                                   lambda: ({"clip_glyph_tiny": {"zero_shot_bench_fonts": 0.96}}, 1000, 62))
             if f.check == "zero-shot quality"]
    assert [f.verdict for f in found] == ["pass", "fail"] and "'new'" in found[1].detail


def zero_shot_ci(task_accuracies: list[float]) -> dict[str, Any]:
    """A zero-shot class-incremental cell: 31 + 31 classes in two tasks, each set predicted among all 62."""
    matrix = [[task_accuracies[0], None], task_accuracies]  # the second task is not scored before step 2
    rec = record("zeroshot_clip", "ci2z", "class_incremental", matrix, ["task1", "task2"], trainable=0)
    rec["config"]["backbone"] = "clip_glyph_tiny"
    rec["scenario"].update(classes_per_step=[list(range(31)), list(range(31, 62))],
                           class_names=[f"c{i}" for i in range(62)], domains=["clean"], eval_sizes=[500, 500])
    return rec


def test_zero_shot_task_sets_are_pooled_over_every_class_before_comparing() -> None:
    # One task's classes are easier than the other's: alone, 0.995 is above q + margin and 0.925 below q - margin;
    # pooled over all 62 classes (the measurement's population) the 1000 images score 0.96 = q.
    quality = lambda: ({"clip_glyph_tiny": {"zero_shot_bench_fonts": 0.96}}, 1000, 62)  # noqa: E731
    found = [f for f in run_checks([zero_shot_ci([0.995, 0.925])], quality) if f.check == "zero-shot quality"]
    assert [f.verdict for f in found] == ["pass"] and "'task1', 'task2'" in found[0].detail
    found = [f for f in run_checks([zero_shot_ci([0.90, 0.90])], quality) if f.check == "zero-shot quality"]
    assert [f.verdict for f in found] == ["fail"]


def test_failing_checks_are_printed_and_head_their_table(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    for rec in [ci("l2p", 0.125, s) for s in range(2)] + [ci("naive", 0.6, 0)]:
        store.write(rec)
    printed: list[str] = []
    build_leaderboards(tmp_path / "results", tmp_path / "boards", echo=printed.append)
    assert printed == ["sanity check FAILED [chance] ci2 / l2p (vit_glyph_tiny): headline 12.5% ± 0.0 (n=2) vs "
                       "chance 12.5%"]
    table = (tmp_path / "boards" / "ci2.md").read_text()
    assert table.index("FAIL [chance] ci2 / l2p") < table.index("| Strategy")
    page = (tmp_path / "boards" / "index.html").read_text()
    assert page.index("Sanity checks that fail on this table") < page.index("[chance] ci2 / l2p") < \
        page.index('<table class="board" data-scenario="ci2"')
    assert "(1 failing)" in (tmp_path / "boards" / "index.md").read_text()


def test_a_rows_records_come_in_seed_order_whatever_order_they_are_read_in() -> None:
    """The store lists records by cell id, a hash: the row sorts them by seed (10 after 9, not after 1), so the
    seeds column reads in order and every sum over seeds runs in one order on every build."""
    from bench.report.sanity import table_rows

    records = [ci("l2p", 0.7, s) for s in (10, 2, 0, 9, 1)]
    (row,) = table_rows(records)
    assert [r["config"]["seed"] for r in row.records] == [0, 1, 2, 9, 10]
