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


# ------------------------------------------------------------------------------------------ paired comparisons
from scipy import stats as sps  # noqa: E402

from bench.report.stats import holm, min_detectable, paired, sign_flip_p, with_holm  # noqa: E402


def test_paired_matches_scipy_on_shared_seeds_only() -> None:
    a = {0: 0.80, 1: 0.78, 2: 0.83, 3: 0.70}
    b = {0: 0.75, 1: 0.76, 2: 0.79, 5: 0.10}  # seed 3 and 5 are not shared
    p = paired(a, b)
    d = [0.05, 0.02, 0.04]
    assert p.n == 3 and p.mean_diff == pytest.approx(sum(d) / 3) and (p.wins, p.losses) == (3, 0)
    assert p.t_p == pytest.approx(sps.ttest_rel([0.80, 0.78, 0.83], [0.75, 0.76, 0.79]).pvalue)
    res = sps.ttest_rel([0.80, 0.78, 0.83], [0.75, 0.76, 0.79]).confidence_interval(0.95)
    assert p.ci == pytest.approx((res.low, res.high))
    exact = sps.permutation_test(([0.80, 0.78, 0.83], [0.75, 0.76, 0.79]), lambda x, y: (x - y).mean(),
                                 permutation_type="samples", n_resamples=10_000).pvalue
    assert p.perm_p == pytest.approx(exact) == pytest.approx(0.25)  # 2 of 8 sign patterns: the floor at n = 3
    # hand-computed: sd(d) = 0.015275, (4.302653 + 1.060660) * 0.015275 / sqrt(3) = 0.047299
    assert p.mde == pytest.approx(0.047299, abs=1e-5)


def test_sign_flip_p_counts_sign_patterns_exactly() -> None:
    assert sign_flip_p([1.0, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(2 / 32)
    assert sign_flip_p([3.0, -1.0]) == pytest.approx(1.0)  # |±3 ±1|/2 >= 1 in all four patterns
    assert sign_flip_p([3.0, 1.0]) == pytest.approx(0.5)
    rng = [0.3, -0.1, 0.5, 0.2, 0.4, -0.05]
    exact = sps.permutation_test((rng,), lambda x: x.mean(), permutation_type="samples").pvalue
    assert sign_flip_p(rng) == pytest.approx(exact)


def test_holm_matches_the_step_down_definition() -> None:
    # sorted 0.01, 0.02, 0.04 (+NaN ignored): 3*0.01 = 0.03, max(0.03, 2*0.02) = 0.04, max(0.04, 1*0.04) = 0.04
    assert holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_verdicts_on_doctored_seeds() -> None:
    base = {s: 0.6 + 0.01 * s for s in range(3)}
    holds = paired({s: v + 0.05 + 0.002 * s for s, v in base.items()}, base)
    fails = paired({s: v - 0.05 - 0.002 * s for s, v in base.items()}, base)
    noisy = paired({0: 0.70, 1: 0.55, 2: 0.62}, base)
    assert (holds.verdict(), fails.verdict(), noisy.verdict()) == ("holds", "fails", "undecided")
    assert holds.t_p < 0.05 and holds.perm_p == pytest.approx(0.25)  # the t-test decides; the permutation cannot
    single = paired({0: 0.9}, {0: 0.1})
    assert single.n == 1 and single.verdict() == "undecided" and math.isnan(single.mde)
    # identical differences (a metric moving in steps of one test example): the t statistic is undefined, the exact
    # test stands in: 2/2^n, undecided at 3 seeds, decided from 6
    same = paired({s: 0.7 + 0.1 * s for s in range(3)}, {s: 0.6 + 0.1 * s for s in range(3)})
    assert same.t_p == pytest.approx(0.25) and same.verdict() == "undecided" and math.isnan(same.mde)
    six = paired({s: 0.7 + 0.1 * s for s in range(6)}, {s: 0.6 + 0.1 * s for s in range(6)})
    assert six.t_p == pytest.approx(2 / 64) and six.verdict() == "holds"
    tie = paired({s: 0.7 for s in range(3)}, {s: 0.7 for s in range(3)})
    assert tie.t_p == 1.0 and tie.verdict() == "undecided"
    # Holm over many comparisons can turn a nominal holds into undecided
    weak = paired({0: 0.62, 1: 0.64, 2: 0.645}, {0: 0.60, 1: 0.61, 2: 0.62})  # d = .02, .03, .025: p = 0.013
    assert weak.t_p < 0.05 and weak.verdict() == "holds"
    corrected = with_holm([weak] + [noisy] * 9)
    assert corrected[0].holm_p == pytest.approx(min(1.0, 10 * weak.t_p)) and corrected[0].verdict() == "undecided"
    assert min_detectable(0.01, 3) > min_detectable(0.01, 10) and math.isnan(min_detectable(0.01, 1))
