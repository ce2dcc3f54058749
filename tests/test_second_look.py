"""Tests for scripts/second_look.py: the simulated pass rates the README quotes for the multimodal suite's ten seeds."""
from __future__ import annotations

import pytest

from scripts.second_look import pass_rates


def test_one_look_passes_a_null_row_at_the_intervals_one_sided_rate_and_two_looks_at_more() -> None:
    """A 95% two-sided interval above 0 passes a true gain of 0 with probability 2.5%, at any seed count; the
    second look adds the rows that pass only at ten seeds (README: 4.4%). A rule at another level, or a look that
    drew its ten seeds apart from its five, moves these numbers out of the bands."""
    rates = pass_rates(5, 10, 0.0, draws=60_000)
    assert rates["first"] == pytest.approx(0.025, abs=0.004) and rates["second"] == pytest.approx(0.025, abs=0.004)
    assert rates["either"] == pytest.approx(0.044, abs=0.003)
    # a real gain of one sd: ten seeds detect it far more often than five
    powered = pass_rates(5, 10, 1.0, draws=20_000)
    assert powered["first"] < 0.5 < 0.75 < powered["second"] <= powered["either"]
