"""Leaderboards: every stored result -> Markdown and CSV tables and one HTML page under `leaderboards/`."""
from __future__ import annotations

from pathlib import Path

from bench.html_report import write_html
from bench.robustness_tables import write_robustness_tables
from bench.store import ResultStore
from bench.tables import write_tables


def build_leaderboards(results_dir: Path, out_dir: Path) -> list[Path]:
    """Rebuild every table and the HTML page from the result files alone (nothing is trained or re-evaluated)."""
    records = ResultStore(results_dir).records() if results_dir.exists() else []
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = write_tables(records, out_dir)
    robustness = write_robustness_tables(records, out_dir)
    if robustness:  # the index written by write_tables points at every table, these included
        index = out_dir / "index.md"
        index.write_text(index.read_text(encoding="utf-8") + f"Robustness of every trained model (adversarial and "
                         f"corruption accuracy): [{robustness[0].name}]({robustness[0].name}) "
                         f"([csv]({robustness[1].name})).\n", encoding="utf-8")
    return [*tables, *robustness, write_html(records, out_dir / "index.html")]
