"""Tests for bench.report.stats: t-based intervals and the "within noise of the best" rule, on hand-computed values."""
from __future__ import annotations

import math

import pytest

from bench.report.stats import compare, half_width, interval, within_noise_of_best


def test_half_width_is_t_times_standard_error() -> None:
    # n = 3, std 0.1: t(0.975, 2) = 4.302653 -> 4.302653 * 0.1 / sqrt(3) = 0.248414
    assert half_width(0.1, 3) == pytest.approx(0.248414, abs=1e-6)
    # n = 2: t(0.975, 1) = 12.706205
    assert half_width(0.1, 2) == pytest.approx(12.706205 * 0.1 / math.sqrt(2), rel=1e-6)
    assert math.isnan(half_width(0.1, 1)) and interval(0.5, 0.0, 1) == (0.5, 0.5)


def test_within_noise_marks_overlapping_intervals_only() -> None:
    # best 0.80 ± 0.01 (n 3): [0.7752, 0.8248]; 0.78 ± 0.01 overlaps; 0.70 ± 0.01 ([0.6752, 0.7248]) does not.
    marks = within_noise_of_best([0.70, 0.80, 0.78, math.nan], [0.01, 0.01, 0.01, 0.0], [3, 3, 3, 3])
    assert marks == [False, True, True, False]
    # one seed each: only an exact tie is marked
    assert within_noise_of_best([0.5, 0.5, 0.49], [0.0, 0.0, 0.0], [1, 1, 1]) == [True, True, False]
    # the upper bound (row 0) is not a contender: the best is row 1, and row 0 is compared with it too
    assert within_noise_of_best([0.9, 0.5, 0.1], [0.0] * 3, [1] * 3, eligible=[False, True, True]) == [True, True, False]
    # lower is better (forgetting)
    assert within_noise_of_best([0.1, 0.3], [0.0, 0.0], [1, 1], higher_is_better=False) == [True, False]


def test_compare_says_greater_less_or_within_noise() -> None:
    assert compare(0.9, 0.01, 3, 0.7, 0.01, 3) == "greater"
    assert compare(0.7, 0.01, 3, 0.9, 0.01, 3) == "less"
    assert compare(0.8, 0.1, 3, 0.7, 0.1, 3) == "within noise"
    assert compare(math.nan, 0.0, 1, 0.5, 0.0, 1) == "missing"
