"""Published numbers beside ours: for a scenario that reproduces a paper's protocol on the paper's backbone, the
paper's number, our mean over seeds on the same strategy and backbone, and the difference.

A reference says which of our scenarios and backbones reproduce its setting (`scenario:`, `backbone_name:` in
`references.yaml`); without both it stays in the labelled references section only, since a number measured on
other data or another backbone is not comparable. The published value is always labelled with its paper.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from bench.report.references import Reference


def matching(scenario: str, references: Sequence[Reference]) -> list[Reference]:
    """The references that name `scenario` as their setting and a backbone of ours to compare on."""
    return [r for r in references if r.scenario == scenario and r.backbone_name and r.strategy]


def _ours(agg: pd.DataFrame, ref: Reference) -> tuple[float, float, int] | None:
    """Our mean, std (percent) and seed count of `ref.metric` on the reference's strategy and backbone."""
    column = f"{ref.metric}_mean"
    rows = agg[(agg["strategy"].astype(str) == ref.strategy) & (agg["backbone"].astype(str) == ref.backbone_name)
               & ~agg["submitted"].astype(bool)]
    if rows.empty or column not in rows:
        return None
    row = rows.iloc[0]  # the suite's own row; variants of one strategy would each need their own reference
    mean = float(row[column])
    if math.isnan(mean):
        return None
    return 100 * mean, 100 * float(row.get(f"{ref.metric}_std", math.nan)), int(row["n_seeds"])


def published_markdown(scenario: str, agg: pd.DataFrame, references: Sequence[Reference]) -> list[str]:
    """Markdown lines (empty when no reference names this scenario): one table row per published number."""
    refs = matching(scenario, references)
    if not refs:
        return []
    rows = []
    for ref in refs:
        ours = _ours(agg, ref)
        value = float(ref.value) if isinstance(ref.value, (int, float)) else math.nan
        if ours is None:
            ours_text, diff = "not run", "—"
        else:
            mean, std, n = ours
            ours_text = f"{mean:.1f} ± {std:.1f} (n={n})"
            diff = f"{mean - value:+.1f}" if not math.isnan(value) else "—"
        rows.append(f"| {ref.method} | `{ref.strategy}` on `{ref.backbone_name}` | {ref.metric} | {ref.value} "
                    f"| {ours_text} | {diff} | {ref.paper} |")
    return ["## Published numbers beside ours", "",
            "The paper's number (labelled with its paper; not measured here), our mean ± std over seeds on the same "
            "strategy and backbone, and ours minus the paper's (points).", "",
            "| method (paper) | ours | metric | published | ours | difference | source |",
            "|---|---|---|---:|---:|---:|---|", *rows, ""]
