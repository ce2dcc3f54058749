"""Attack budgets as written in suites and tables (`"8/255"`): parsing only, no torch, so the report commands
can order budget columns without loading the attack code."""
from __future__ import annotations

from fractions import Fraction


def parse_budget(text: str | float) -> float:
    """`"8/255"`, `"0.03"` or `0.03` -> a float budget in pixel units (pixels lie in [0, 1])."""
    try:
        value = float(Fraction(str(text).replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"budget {text!r} is not a number or fraction such as '8/255'") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"budget {text!r} is outside [0, 1]")
    return value
