"""The compact table `run` prints at its end (as lm-eval does): one line per (scenario, strategy, backbone), the
headline metric's mean and spread over seeds and the seconds a cell took. The full tables are in leaderboards/."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

# The number a scenario kind is ranked by (bench.report.columns.HEADLINE_METRIC, without loading pandas here).
HEADLINE = {"class_incremental": ("final_accuracy", "final acc"), "domain_incremental": ("final_accuracy", "final acc"),
            "base_to_new": ("harmonic_mean", "HM"), "domain_adaptation": ("target_acc", "target acc"),
            "joint": ("final_accuracy", "final acc"),
            "multimodal_task_incremental": ("final_score", "final score"),
            "multimodal_domain_incremental": ("final_score", "final score")}


def _headline(record: Mapping[str, Any]) -> tuple[str, float | None]:
    kind = (record.get("scenario") or {}).get("kind", "")
    key, label = HEADLINE.get(kind, ("final_accuracy", "final acc"))
    value = (record.get("metrics") or {}).get(key)
    return label, value if isinstance(value, (int, float)) and not math.isnan(value) else None


def summary_table(records: Iterable[Mapping[str, Any]]) -> str:
    """A Markdown table of the finished records, grouped over seeds; failed cells counted per group."""
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    failed: dict[tuple[str, str, str], int] = defaultdict(int)
    for record in records:
        config = record.get("config") or {}
        key = (config.get("scenario", "?"), config.get("label") or config.get("strategy", "?"),
               config.get("backbone", "?"))
        if record.get("status") == "ok":
            groups[key].append(record)
        else:
            failed[key] += 1
    header = ("scenario", "strategy", "backbone", "seeds", "metric", "mean %", "± std", "s/cell", "failed")
    rows = []
    for key in sorted(set(groups) | set(failed)):
        done = groups.get(key, [])
        values = [v for v in (_headline(r)[1] for r in done) if v is not None]
        label = _headline(done[0])[0] if done else "—"
        seconds = [r.get("timing", {}).get("total_seconds") for r in done]
        seconds = [s for s in seconds if isinstance(s, (int, float))]
        rows.append((*key, str(len(done)), label,
                     f"{100 * statistics.fmean(values):.1f}" if values else "—",
                     f"{100 * statistics.stdev(values):.1f}" if len(values) > 1 else "—",
                     f"{statistics.fmean(seconds):.0f}" if seconds else "—", str(failed.get(key, 0) or "")))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    numeric = {3, 5, 6, 7, 8}

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i in numeric else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in numeric else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
