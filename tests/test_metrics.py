"""Tests for bench.eval.metrics: hand-computed values, avalanche cross-check, validation."""

from __future__ import annotations

import numpy as np
import pytest

from bench.eval import metrics as M

# Rows = after training task i, columns = task j's test set.
A = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.2],
    [0.5, 0.7, 0.9],
]

# Task 0 peaks after task 1 (0.9 > 0.6), so the two forgetting definitions differ.
PEAKED = [
    [0.6, 0.0, 0.0],
    [0.9, 0.8, 0.0],
    [0.5, 0.7, 0.9],
]


def test_final_average_accuracy_hand_computed() -> None:
    # (0.5 + 0.7 + 0.9) / 3 = 2.1 / 3 = 0.7
    assert M.final_average_accuracy(A) == pytest.approx(0.7)


def test_average_incremental_accuracy_hand_computed() -> None:
    # step 0: 0.9; step 1: (0.6 + 0.8) / 2 = 0.7; step 2: 0.7 (above)
    # (0.9 + 0.7 + 0.7) / 3 = 2.3 / 3
    assert M.average_incremental_accuracy(A) == pytest.approx(2.3 / 3)


def test_forgetting_avalanche_hand_computed() -> None:
    # j=0: A[0,0] - A[2,0] = 0.9 - 0.5 = 0.4; j=1: A[1,1] - A[2,1] = 0.8 - 0.7 = 0.1
    # (0.4 + 0.1) / 2 = 0.25
    assert M.forgetting_avalanche(A) == pytest.approx(0.25)


def test_forgetting_max_hand_computed() -> None:
    # j=0: max(0.9, 0.6) - 0.5 = 0.4; j=1: max(0.8) - 0.7 = 0.1 -> 0.25
    assert M.forgetting_max(A) == pytest.approx(0.25)


def test_backward_transfer_hand_computed() -> None:
    # j=0: 0.5 - 0.9 = -0.4; j=1: 0.7 - 0.8 = -0.1 -> -0.25
    assert M.backward_transfer(A) == pytest.approx(-0.25)


def test_forgetting_definitions_differ_when_accuracy_peaks_later() -> None:
    # avalanche: j=0: 0.6 - 0.5 = 0.1; j=1: 0.8 - 0.7 = 0.1 -> 0.1
    assert M.forgetting_avalanche(PEAKED) == pytest.approx(0.1)
    # max: j=0: max(0.6, 0.9) - 0.5 = 0.4; j=1: 0.8 - 0.7 = 0.1 -> 0.25
    assert M.forgetting_max(PEAKED) == pytest.approx(0.25)
    assert M.forgetting_max(PEAKED) != pytest.approx(M.forgetting_avalanche(PEAKED))


def test_forgetting_max_follows_mammoth_final_row_inside_the_max() -> None:
    # Mammoth takes the max over every row, the final one included: a task that ends above its earlier best
    # contributes max(0.5, 0.9) - 0.9 = 0, never a negative term.
    assert M.forgetting_max([[0.5, 0.0], [0.9, 0.8]]) == 0.0
    # mammoth/utils/metrics.py::forgetting on the same results, written out: rows padded with 0, max over axis 0.
    rows = [[0.6, 0.0, 0.0], [0.9, 0.8, 0.0], [0.5, 0.7, 0.9]]
    maxx = np.max(np.array(rows), axis=0)
    assert M.forgetting_max(PEAKED) == pytest.approx(np.mean([maxx[i] - rows[-1][i] for i in range(2)]))


def test_forward_transfer_hand_computed() -> None:
    # b = (0.1, 0.05, 0.1); j=1: A[0,1] - 0.05 = 0.05; j=2: A[1,2] - 0.1 = 0.1 -> 0.075
    assert M.forward_transfer(A, [0.1, 0.05, 0.1]) == pytest.approx(0.075)
    # a not-evaluated entry drops its term; nothing left or no start row -> NaN
    assert M.forward_transfer(A, [0.1, None, 0.1]) == pytest.approx(0.1)
    assert np.isnan(M.forward_transfer(A, None))
    assert np.isnan(M.forward_transfer([[0.5]], [0.1]))


@pytest.mark.parametrize("matrix", [A, PEAKED, [[0.3, 0.2], [0.1, 0.9]]])
def test_bwt_is_minus_forgetting_avalanche(matrix: list[list[float]]) -> None:
    assert M.backward_transfer(matrix) == pytest.approx(-M.forgetting_avalanche(matrix))


def test_single_step_conventions() -> None:
    one = [[0.42]]
    assert M.forgetting_avalanche(one) == 0.0
    assert M.forgetting_max(one) == 0.0
    assert M.backward_transfer(one) == 0.0
    assert M.final_average_accuracy(one) == pytest.approx(0.42)
    assert M.average_incremental_accuracy(one) == pytest.approx(0.42)


def test_forgetting_matches_avalanche_functional() -> None:
    functional = pytest.importorskip("avalanche.evaluation.functional")
    rng = np.random.default_rng(1234)
    for steps in (2, 3, 4, 6, 9):
        for lower_triangular in (True, False):
            mat = rng.uniform(0.0, 1.0, size=(steps, steps))
            if lower_triangular:
                # Class-incremental: zero accuracy on classes not trained yet.
                mat = np.tril(mat)
            # avalanche returns a (T, T) matrix whose [t, k] entry is
            # A[k, k] - A[t, k] for t > k and 0 otherwise; its last row, minus
            # the always-zero last column, holds the final forgetting per task.
            ours = M.forgetting_avalanche(mat)
            theirs = float(np.mean(functional.forgetting(mat)[-1, :-1]))
            assert ours == pytest.approx(theirs, abs=1e-12)
            assert M.backward_transfer(mat) == pytest.approx(-theirs, abs=1e-12)


def test_harmonic_mean_values() -> None:
    # 2 * 0.8 * 0.6 / 1.4 = 0.96 / 1.4
    assert M.harmonic_mean(0.8, 0.6) == pytest.approx(0.96 / 1.4)
    assert M.harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert M.harmonic_mean(1.0, 0.0) == 0.0
    assert M.harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="new accuracy"):
        M.harmonic_mean(0.5, 75.0)
    with pytest.raises(ValueError, match="base accuracy"):
        M.harmonic_mean(float("nan"), 0.5)


def test_summarize_incremental() -> None:
    out = M.summarize(A, ["t0", "t1", "t2"], "class_incremental")
    assert out == pytest.approx(
        {
            "final_accuracy": 0.7,
            "avg_incremental_accuracy": 2.3 / 3,
            "forgetting_avalanche": 0.25,
            "forgetting_max": 0.25,
            "bwt": -0.25,
        }
    )
    assert set(M.summarize(PEAKED, ["a", "b", "c"], "domain_incremental")) == set(out)
    assert all(isinstance(v, float) for v in out.values())


def test_summarize_single_step_kinds() -> None:
    # Columns are looked up by name, so order does not matter.
    b2n = M.summarize([[0.6, 0.8]], ["new", "base"], "base_to_new")
    assert b2n == pytest.approx({"base_acc": 0.8, "new_acc": 0.6, "harmonic_mean": 0.96 / 1.4})
    da = M.summarize([[0.9, 0.4]], ["source", "target"], "domain_adaptation")
    assert da == pytest.approx({"source_acc": 0.9, "target_acc": 0.4})
    joint = M.summarize([[0.9, 0.7, 0.5]], ["t0", "t1", "t2"], "joint")
    assert joint == pytest.approx({"final_accuracy": 0.7})


@pytest.mark.parametrize(
    ("matrix", "names", "kind", "message"),
    [
        ([0.5, 0.6], ["a", "b"], "joint", "2-D"),
        ([[0.5, 0.6], [0.7]], ["a", "b"], "joint", "rectangular"),
        ([[0.5, float("nan")]], ["a", "b"], "joint", "NaN"),
        ([[50.0, 60.0]], ["a", "b"], "joint", r"\[0, 1\]"),
        ([[-0.1, 0.6]], ["a", "b"], "joint", r"\[0, 1\]"),
        (np.zeros((0, 0)), [], "joint", "empty"),
        ([[0.5, 0.6]], ["a", "b"], "class_incremental", "square"),
        (A, ["t0", "t1"], "class_incremental", "3 columns"),
        (A, ["t0", "t0", "t1"], "class_incremental", "unique"),
        (A, ["t0", "t1", "t2"], "task_incremental", "unknown scenario kind"),
        ([[0.5, 0.6]], ["base", "novel"], "base_to_new", "'new'"),
        ([[0.5, 0.6], [0.5, 0.6]], ["base", "new"], "base_to_new", "T == 1"),
        ([[0.5, 0.6]], ["src", "target"], "domain_adaptation", "'source'"),
        ([[0.5, 0.6]], "ab", "joint", "not a single string"),
    ],
)
def test_summarize_validation(matrix: object, names: list[str], kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        M.summarize(matrix, names, kind)  # type: ignore[arg-type]


def test_square_only_metrics_reject_rectangles() -> None:
    rect = [[0.5, 0.6, 0.7], [0.5, 0.6, 0.7]]
    for fn in (
        M.average_incremental_accuracy,
        M.forgetting_avalanche,
        M.forgetting_max,
        M.backward_transfer,
    ):
        with pytest.raises(ValueError, match="square"):
            fn(rect)
    # Final accuracy is defined for any shape: mean of the last row.
    assert M.final_average_accuracy(rect) == pytest.approx(0.6)
