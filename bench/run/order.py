"""The order in which a run starts its cells: longest first.

With a pool of workers the run ends when its last cell does. Started in suite order, the longest cells (CoCa's
caption scoring, CoCoOp, L2P) could start last and leave one worker running alone for a minute; started longest
first (LPT, Graham 1969: a makespan within 4/3 of the optimum), the short cells fill the gaps at the end. The
estimates are the mean seconds a cell of the same (scenario, strategy, backbone) took in the tables already in the
leaderboards folder; cells they do not cover start first, since nothing says they are short. Order changes no
number: every cell is a function of its config alone.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:  # the runner imports this module
    from bench.run.runner import CellConfig

Key = tuple[str, str, str]  # (scenario, leaderboard name of the strategy, backbone)


def cell_key(cfg: "CellConfig") -> Key:
    return cfg.scenario, cfg.label or cfg.strategy, cfg.backbone


def past_seconds(leaderboards: Path | str) -> dict[Key, float]:
    """Mean seconds per cell from every leaderboard CSV that has them (`seconds_mean`); rows of unreadable or
    foreign CSVs are skipped: an estimate only orders cells."""
    out: dict[Key, float] = {}
    for path in sorted(Path(leaderboards).glob("*.csv")):
        try:
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    try:
                        seconds = float(row["seconds_mean"])
                        key = (row["scenario"], row["strategy"], row["backbone"])
                    except (KeyError, TypeError, ValueError):
                        break  # not a results table (claims, averages, robustness summaries)
                    if math.isfinite(seconds) and row.get("submitted") != "True":
                        out[key] = max(seconds, out.get(key, 0.0))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return out


def longest_first(cells: Sequence["CellConfig"], estimate: Callable[["CellConfig"], float | None]) -> list[int]:
    """Indices of `cells` in start order: cells without an estimate first (in their order), then by estimated
    seconds, longest first; ties keep their order."""
    estimates = [estimate(cfg) for cfg in cells]
    return sorted(range(len(cells)), key=lambda i: (estimates[i] is not None, -(estimates[i] or 0.0)))


def by_past_seconds(leaderboards: Path | str) -> Callable[["CellConfig"], float | None]:
    """`estimate` for `longest_first` from the tables in `leaderboards`."""
    seconds = past_seconds(leaderboards)
    return lambda cfg: seconds.get(cell_key(cfg))
