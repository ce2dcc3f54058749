"""Spread over seeds: t-based 95% intervals and "within noise of the best" marks, one rule for every table.

The rule (stated in every legend as NOISE_RULE): a row's interval is mean ± t(0.975, n-1) · std / sqrt(n) over its
n seeds; a row is within noise of the best when its interval overlaps the best row's. A row with one seed has no
interval, so it ties with the best only when its mean equals the best mean. Overlapping intervals are a lenient
test (two rows can differ significantly and still overlap a little): a mark means "not shown to be worse", never
"equal".
"""
from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["NOISE_RULE", "LEVEL", "half_width", "interval", "within_noise_of_best", "compare"]

LEVEL = 0.95
NOISE_RULE = ("95% interval = mean ± t(0.975, n−1)·std/√n over the n seeds; rows whose interval overlaps the best "
              "row's are marked as within noise of the best (≈). With one seed there is no interval: only an exact "
              "tie with the best is marked.")


def half_width(std: float, n: int, level: float = LEVEL) -> float:
    """Half the width of the t-based confidence interval of a mean over `n` seeds; NaN when n < 2 or std is NaN."""
    if n < 2 or std is None or math.isnan(std):
        return math.nan
    # stdtrit(df, q) is t.ppf(q, df): scipy.special loads in a third of scipy.stats' time, here, not at the top
    from scipy.special import stdtrit

    return float(stdtrit(n - 1, 0.5 + level / 2) * std / math.sqrt(n))


def interval(mean: float, std: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """(low, high) of the mean's interval; (mean, mean) for a single seed (no spread to speak of)."""
    h = half_width(std, n, level)
    h = 0.0 if math.isnan(h) else h
    return mean - h, mean + h


def within_noise_of_best(means: Sequence[float], stds: Sequence[float], ns: Sequence[int],
                         higher_is_better: bool = True, eligible: Sequence[bool] | None = None) -> list[bool]:
    """For each row: does its interval overlap the best row's? NaN means are never marked. `eligible`: rows that
    may be the best (e.g. not the joint upper bound); every row is still compared with that best."""
    sign = 1.0 if higher_is_better else -1.0
    eligible = [True] * len(means) if eligible is None else list(eligible)
    scored = [(sign * m, i) for i, m in enumerate(means) if m is not None and not math.isnan(m) and eligible[i]]
    if not scored:
        return [False] * len(means)
    best = max(scored)[1]
    best_low, best_high = interval(means[best], stds[best], int(ns[best]))
    marks = []
    for m, s, n in zip(means, stds, ns):
        if m is None or math.isnan(m):
            marks.append(False)
            continue
        low, high = interval(m, s, int(n))
        marks.append(high >= best_low if higher_is_better else low <= best_high)
    return marks


def compare(a_mean: float, a_std: float, a_n: int, b_mean: float, b_std: float, b_n: int) -> str:
    """"greater" when a's interval lies wholly above b's, "less" when wholly below, "within noise" when they overlap.

    Two single-seed rows have no intervals: they compare by their means (a strict order of one sample each), and
    the caller should say that n = 1. NaN on either side: "missing".
    """
    if any(v is None or math.isnan(v) for v in (a_mean, b_mean)):
        return "missing"
    a_low, a_high = interval(a_mean, a_std, a_n)
    b_low, b_high = interval(b_mean, b_std, b_n)
    if a_low > b_high:
        return "greater"
    if a_high < b_low:
        return "less"
    return "within noise"
