"""Scenario sections of the HTML page, kept on disk under the hash of everything they are drawn from.

Drawing the figures is most of a leaderboard rebuild (about 16 CPU-seconds for the default suite on a 2-core
machine; the tables, CSVs and claims take about 2). A section is a pure function of the scenario's finished
records, its failing sanity checks, the report code and the plotting libraries' versions, so a rebuild whose
records did not change reads every section back instead of drawing it again, and any change to an input, to a file
of the `bench` package or to a library version gives a new key and a fresh drawing. Nothing here is trusted beyond
its key: a file that cannot be read is drawn again. Files are HTML text (no pickle).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["MAX_SECTIONS", "read_section", "section_key", "sections_dir", "write_section"]

# Sections kept (the newest by modification time; a section is about 1 MB of HTML with its PNGs): enough for several
# suites' pages, bounded however many runs rebuild them.
MAX_SECTIONS = 256


def sections_dir() -> Path:
    """`<the project's cache folder>/report_sections` (scenarios.cache.cache_dir: $PROMPTSHIFT_CACHE, XDG, ~)."""
    from scenarios.cache import cache_dir

    return cache_dir() / "report_sections"


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """The sha256 of every Python file of the `bench` package (a section's code may live in any of its rooms:
    columns, metrics, robustness tables), and of the versions of the libraries that draw and format it."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for package in ("matplotlib", "pandas", "numpy", "adjustText"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            digest.update(f"{package}=absent".encode())
    return digest.hexdigest()


def section_key(scenario: str, records: Sequence[Mapping[str, Any]], checks: Sequence[str]) -> str:
    """The key of one scenario's section: its name, its finished records (the aggregated rows are computed from
    them), its failing checks and the code digest."""
    payload = json.dumps({"scenario": scenario, "records": list(records), "checks": list(checks),
                          "code": _code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def read_section(key: str) -> str | None:
    """The stored section for `key`, or None (not stored, or unreadable: it is drawn again)."""
    try:
        return (sections_dir() / f"{key}.html").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_section(key: str, html: str) -> None:
    """Store a section (written to a temporary file and moved into place, so a concurrent reader sees all or
    nothing); a folder that cannot be written leaves the page as it is, only slower next time."""
    folder = sections_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".html", dir=folder)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html)
        os.replace(tmp, folder / f"{key}.html")
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return
    _prune(folder)


def _prune(folder: Path) -> None:
    """Delete all but the MAX_SECTIONS newest sections (one another process removed first is fine)."""
    try:
        stored = sorted(folder.glob("*.html"), key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return
    for path in stored[MAX_SECTIONS:]:
        path.unlink(missing_ok=True)
