"""Spread over seeds: t-based 95% intervals and "within noise of the best" marks, one rule for every table; and
paired comparisons of two methods over the seeds they share, the rule of the claims page (`PAIRED_RULE`).

The rule (stated in every legend as NOISE_RULE): a row's interval is mean ± t(0.975, n-1) · std / sqrt(n) over its
n seeds; a row is within noise of the best when its interval overlaps the best row's. A row with one seed has no
interval, so it ties with the best only when its mean equals the best mean. Overlapping intervals are a lenient
test (two rows can differ significantly and still overlap a little): a mark means "not shown to be worse", never
"equal".
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["NOISE_RULE", "PAIRED_RULE", "LEVEL", "half_width", "interval", "within_noise_of_best", "compare",
           "Paired", "paired", "sign_flip_p", "min_detectable", "holm", "with_holm"]

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


# ------------------------------------------------------------------------------------------ paired comparisons
PAIRED_RULE = (
    "Two methods are compared on the seeds they share (same class order, same data): d = claimed-better − "
    "claimed-worse per seed. Shown: the mean of d with its 95% t-interval, the paired t-test's p (two-sided), the "
    "exact sign-flip permutation p (two-sided), seeds won, and the smallest detectable difference (80% power, "
    "α = 0.05: (t(0.975, n−1) + t(0.8, n−1))·sd(d)/√n). The verdict comes from the paired t-test, Holm-corrected "
    "across every comparison on the page: holds = p_Holm < 0.05 with d > 0, fails = p_Holm < 0.05 with d < 0, "
    "otherwise undecided. A \"matches or beats\" claim is a non-inferiority claim: its test is the same paired "
    "t-test of d against −1 pt instead of 0 (p and p_Holm in its rows are that test's, in the same Holm family): "
    "holds = p_Holm < 0.05 with mean d > −1 pt, fails = p_Holm < 0.05 with mean d < −1 pt. The exact permutation "
    "test is shown beside it as the assumption-free check, but cannot "
    "decide at these seed counts: with n seeds its smallest two-sided p is 2/2^n (0.25 at n = 3, 0.0625 at n = 5), "
    "so a verdict at n < 6 rests on the t-test's normality assumption. Where every seed gives the same difference "
    "(sd 0, e.g. a metric moving in steps of one test example) the t statistic is undefined and the exact test's p "
    "stands in for it.")
ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Paired:
    """A paired comparison of a (claimed better) against b over their shared seeds; differences are a − b, oriented
    so that a positive difference favours a (for lower-is-better metrics the caller negates)."""

    n: int
    mean_diff: float
    sd_diff: float
    ci: tuple[float, float]
    t_p: float  # two-sided paired t-test
    perm_p: float  # two-sided exact sign-flip permutation test
    wins: int  # seeds with d > 0
    losses: int  # seeds with d < 0
    mde: float  # smallest difference detectable at this n (80% power, alpha 0.05)
    holm_p: float = math.nan  # filled by `holm` over a page of comparisons
    null: float = 0.0  # the difference the tests are against: 0, or -margin for a non-inferiority claim

    @property
    def seeds_won(self) -> str:
        return f"{self.wins}/{self.n}"

    def verdict(self, alpha: float = ALPHA) -> str:
        """holds / fails / undecided from the Holm-corrected t-test (the uncorrected one if `holm` was not run):
        the mean difference significantly above / below `null`."""
        p = self.t_p if math.isnan(self.holm_p) else self.holm_p
        if self.n < 2 or math.isnan(p) or p >= alpha:
            return "undecided"
        return "holds" if self.mean_diff > self.null else "fails"


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p of the mean difference: the share of the 2^n sign patterns whose
    |mean| is at least the observed one (the observed pattern included). Enumerated, not sampled: n is a seed
    count. Equal to scipy.stats.permutation_test(..., permutation_type='samples') on the paired values."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return math.nan
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    means = np.abs(signs @ d) / d.size
    observed = abs(d.mean())
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def min_detectable(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The true mean difference a two-sided paired t-test at `alpha` detects with probability `power` at n seeds
    (the usual approximation (t(1−α/2, n−1) + t(power, n−1))·sd/√n); NaN below two seeds."""
    if n < 2 or math.isnan(sd):
        return math.nan
    from scipy.special import stdtrit  # t.ppf without scipy.stats' import time (the report commands load this)

    return float((stdtrit(n - 1, 1 - alpha / 2) + stdtrit(n - 1, power)) * sd / math.sqrt(n))


def paired(a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL, null: float = 0.0) -> Paired:
    """Compare per-seed values `a` and `b` (seed -> value) on the seeds both have (NaN values are dropped). The
    t-test and the sign-flip test are of the mean difference against `null` (0: a difference at all; -margin: the
    non-inferiority test "not worse by the margin or more", two-sided so that it can also fail); the interval, seeds
    won and the detectable difference describe d itself."""
    seeds = sorted(s for s in set(a) & set(b) if not (math.isnan(a[s]) or math.isnan(b[s])))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    n = int(d.size)
    if n == 0:
        return Paired(0, math.nan, math.nan, (math.nan, math.nan), math.nan, math.nan, 0, 0, math.nan, null=null)
    mean = float(d.mean())
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    if n == 1:
        return Paired(1, mean, math.nan, (math.nan, math.nan), math.nan, math.nan, wins, losses, math.nan, null=null)
    sd = float(d.std(ddof=1))
    if sd < 1e-12:  # every seed differs by the same amount (up to rounding): the t statistic is infinite or 0/0
        sd = 0.0
    h = half_width(sd, n, level)
    shifted = mean - null
    exact_p = sign_flip_p(d - null)
    if sd == 0.0:
        # The t statistic is undefined (every seed gives the same difference: common when a small test set makes the
        # metric move in steps). Reading it as infinitely significant would decide a claim on 3 ties; the exact
        # sign-flip test stands in: 1 when the difference equals `null`, else 2/2^n (0.25 at 3 seeds, undecided).
        t_p = exact_p
    else:
        from scipy.special import stdtr  # the t distribution's CDF: scipy.stats.ttest_rel's p, without its import

        t_p = float(2.0 * stdtr(n - 1, -abs(shifted) / (sd / math.sqrt(n))))
    # with no spread the detectable difference is not defined (the exact test decides on signs, not on sizes)
    mde = math.nan if sd == 0.0 else min_detectable(sd, n)
    return Paired(n, mean, sd, (mean - h, mean + h), t_p, exact_p, wins, losses, mde, null=null)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count as a test). By hand: five lines, and
    statsmodels (which has it) is not a dependency of this project for one function."""
    index = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(index, key=lambda i: pvalues[i])
    m, running, out = len(order), 0.0, [math.nan] * len(pvalues)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def with_holm(comparisons: Sequence[Paired]) -> list[Paired]:
    """The comparisons with `holm_p` set, corrected together (one family: the page)."""
    adjusted = holm([c.t_p for c in comparisons])
    return [dataclasses.replace(c, holm_p=p) for c, p in zip(comparisons, adjusted)]
