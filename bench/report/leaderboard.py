"""Leaderboards: every stored result -> Markdown and CSV tables, sanity checks, the claims page and one HTML page
under `leaderboards/`.

A rebuild first renders into a scratch folder and compares it with the tables already there: a rebuild that would
drop a table or a row the current leaderboards have (a fresh clone without `results/`, a results folder of another
suite, a run whose cells all failed) is refused with a message naming what would be lost, unless `force`.
"""
from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.core.paths import check_output_dir
from bench.core.store import ResultStore
from bench.report.claims import CLAIMS, claims_html, evaluate_claims, provenance, seed_cost, suite_pages, write_claims
from bench.report.html_report import write_html
from bench.report.intake import intake
from bench.report.multimodal import (index_note, multimodal_findings, multimodal_html, split_records,
                                     write_multimodal_tables)
from bench.report.robustness_tables import write_robustness_tables
from bench.report.sanity import failures_by_scenario, run_checks, write_sanity
from bench.report.tables import write_tables

# Columns that name a row (the rest are numbers that may change with new results).
KEY_COLUMNS = ("scenario", "strategy", "submitted", "backbone", "variant")
SHOWN = 3  # rows named per table in the refusal message


class LeaderboardLossError(RuntimeError):
    """A rebuild would drop tables or rows that the current leaderboards have."""


def _row_keys(path: Path) -> set[tuple[str, ...]]:
    """The names of the rows of one CSV table (its key columns), or the first column when it has none."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
    if not rows:
        return set()
    header = rows[0]
    keys = [i for i, name in enumerate(header) if name in KEY_COLUMNS] or [0]
    return {tuple(row[i] for i in keys if i < len(row)) for row in rows[1:] if row}


def losses(current: Path, rebuilt: Path) -> list[str]:
    """What the tables in `rebuilt` would lose against those in `current`: one line per table or row set."""
    lost = []
    for old in sorted(current.glob("*.csv")):
        new = rebuilt / old.name
        if not new.is_file():
            lost.append(f"table {old.name} ({len(_row_keys(old))} rows)")
            continue
        gone = sorted(_row_keys(old) - _row_keys(new))
        if gone:
            names = ", ".join("/".join(k) for k in gone[:SHOWN]) + (" ..." if len(gone) > SHOWN else "")
            lost.append(f"{len(gone)} row(s) of {old.name}: {names}")
    return lost


def _render(records: list, out_dir: Path, related: list[str] | None = None, pages: dict[str, str] | None = None
            ) -> tuple[list[Path], dict[str, list[str]]]:
    """Write every table into `out_dir`; returns the files and the failing sanity checks by scenario. `pages`:
    where the suites that decide some claims have their pages, relative to the real leaderboards folder."""
    verdicts = evaluate_claims(records)
    records, multimodal = split_records(records)  # the multimodal kinds have tables of their own
    findings = run_checks(records) + multimodal_findings(multimodal)
    checks = failures_by_scenario(findings)
    robustness = write_robustness_tables(records, out_dir)
    mm_tables = write_multimodal_tables(multimodal, out_dir)
    notes = [f"Robustness of every trained model (adversarial and corruption accuracy): "
             f"[{robustness[0].name}]({robustness[0].name}) ([csv]({robustness[1].name}))."] if robustness else []
    failing = sum(len(lines) for lines in checks.values())
    notes += index_note(mm_tables)
    notes += ["Claims of the seed papers, checked on these results: [claims.md](claims.md).",
              f"Sanity checks: [sanity.md](sanity.md) ({failing} failing)."]
    tables = write_tables(records, out_dir, index_notes=notes, checks=checks,
                          elsewhere=sum(r.get("status") == "ok" for r in multimodal))
    source = f"{provenance(records + multimodal)} {seed_cost(records, verdicts)}".strip()
    extra = [write_sanity(findings, out_dir), write_claims(verdicts, out_dir, source, pages)]
    page = write_html(records, out_dir / "index.html", checks=checks,
                      claims=claims_html(verdicts, pages) + multimodal_html(multimodal), related=related)
    return [*tables, *robustness, *mm_tables, *extra, page], checks


def build_leaderboards(results_dir: Path, out_dir: Path, force: bool = False,
                       echo: Callable[[str], None] | None = None) -> list[Path]:
    """Rebuild every table and the HTML page from the result files alone (nothing is trained or re-evaluated).

    Raises LeaderboardLossError (nothing written) when the rebuild would drop tables or rows, unless `force`.
    `echo` receives one line per failing sanity check (the CLI prints them); they also head the tables they concern.
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise NotADirectoryError(f"--results {results_dir} is a file, not a folder of result files")
    check_output_dir(out_dir, "--leaderboards")
    records = ResultStore(results_dir).records() if results_dir.exists() else []
    records, problems = intake(records)  # metrics recomputed from the matrices, labels neutralised
    for line in problems if echo is not None else ():
        echo(f"warning: {line}")
    with tempfile.TemporaryDirectory(prefix="promptshift-leaderboards-") as scratch:
        related = sorted(p.parent.name for p in out_dir.glob("*/index.html"))  # other suites' pages: linked
        pages = suite_pages(out_dir, {c.decided_by for c in CLAIMS if c.decided_by})  # the real folder's
        rendered, checks = _render(records, Path(scratch), related, pages)
        lost = losses(out_dir, Path(scratch)) if out_dir.is_dir() else []
        if lost and not force:
            found = f"{len(records)} result record(s) in {results_dir}" if results_dir.exists() else \
                f"no results folder {results_dir}"
            raise LeaderboardLossError(
                f"refusing to rebuild {out_dir}: from {found} the rebuild would drop " + "; ".join(lost)
                + ". Point --results at the results these tables came from, write elsewhere with --leaderboards, "
                  "or pass --force to rebuild anyway")
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(p for p in Path(scratch).rglob("*") if p.is_file()):
            target = out_dir / path.relative_to(scratch)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        if echo is not None:
            for lines in checks.values():
                for line in lines:
                    echo(f"sanity check FAILED {line}")
        return [out_dir / path.relative_to(scratch) for path in rendered]
