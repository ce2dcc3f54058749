"""Leaderboards: every stored result -> Markdown and CSV tables, sanity checks, the claims page and one HTML page
under `leaderboards/`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.core.store import ResultStore
from bench.report.claims import claims_html, evaluate_claims, write_claims
from bench.report.html_report import write_html
from bench.report.robustness_tables import write_robustness_tables
from bench.report.sanity import failures_by_scenario, run_checks, write_sanity
from bench.report.tables import write_tables


def build_leaderboards(results_dir: Path, out_dir: Path, echo: Callable[[str], None] | None = None) -> list[Path]:
    """Rebuild every table and the HTML page from the result files alone (nothing is trained or re-evaluated).

    `echo` receives one line per failing sanity check (the CLI prints them); they also head the tables they concern.
    """
    records = ResultStore(results_dir).records() if results_dir.exists() else []
    out_dir.mkdir(parents=True, exist_ok=True)
    findings = run_checks(records)
    checks = failures_by_scenario(findings)
    verdicts = evaluate_claims(records)
    robustness = write_robustness_tables(records, out_dir)
    notes = [f"Robustness of every trained model (adversarial and corruption accuracy): "
             f"[{robustness[0].name}]({robustness[0].name}) ([csv]({robustness[1].name}))."] if robustness else []
    failing = sum(len(lines) for lines in checks.values())
    notes += ["Claims of the seed papers, checked on these results: [claims.md](claims.md).",
              f"Sanity checks: [sanity.md](sanity.md) ({failing} failing)."]
    tables = write_tables(records, out_dir, index_notes=notes, checks=checks)
    extra = [write_sanity(findings, out_dir), write_claims(verdicts, out_dir)]
    if echo is not None:
        for lines in checks.values():
            for line in lines:
                echo(f"sanity check FAILED {line}")
    return [*tables, *robustness, *extra,
            write_html(records, out_dir / "index.html", checks=checks, claims=claims_html(verdicts))]
