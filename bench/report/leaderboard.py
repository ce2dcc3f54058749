"""Leaderboards: every stored result -> Markdown and CSV tables and one HTML page under `leaderboards/`."""
from __future__ import annotations

from pathlib import Path

from bench.core.store import ResultStore
from bench.report.html_report import write_html
from bench.report.robustness_tables import write_robustness_tables
from bench.report.tables import write_tables


def build_leaderboards(results_dir: Path, out_dir: Path) -> list[Path]:
    """Rebuild every table and the HTML page from the result files alone (nothing is trained or re-evaluated)."""
    records = ResultStore(results_dir).records() if results_dir.exists() else []
    out_dir.mkdir(parents=True, exist_ok=True)
    robustness = write_robustness_tables(records, out_dir)
    notes = [f"Robustness of every trained model (adversarial and corruption accuracy): "
             f"[{robustness[0].name}]({robustness[0].name}) ([csv]({robustness[1].name}))."] if robustness else []
    tables = write_tables(records, out_dir, index_notes=notes)
    return [*tables, *robustness, write_html(records, out_dir / "index.html")]
