"""Every image a source lists, decoded once before any cell trains.

A truncated JPEG in the last task of a stream would otherwise fail its cell after the earlier tasks trained (hours
on a GPU). Decoding is parallel (threads: PIL releases the GIL while it decodes) and remembered per data
fingerprint and root (`<cache>/verified/`), so a rerun on the same data decodes nothing. The error names every bad
file, not only the first.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from scenarios.cache import cache_dir
from scenarios.sources.base import DataSourceError, FileRecords, Source, open_image

SHOWN = 20  # bad files named in the message (the count says how many more)


def _decode_problem(path: Path) -> str | None:
    try:
        open_image(path)
    except Exception as error:  # noqa: BLE001 - PIL raises many types for a bad file; each is a finding
        return f"{path}: {type(error).__name__}: {error}"
    return None


def bad_images(source: Source, workers: int | None = None) -> list[str]:
    """"path: error" for every listed file of `source` that does not decode (array sources have none)."""
    files = sorted({records.path(i) for records in source.splits.values() if isinstance(records, FileRecords)
                    for i in range(len(records))})
    if not files:
        return []
    workers = workers or min(16, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [p for p in pool.map(_decode_problem, files, chunksize=64) if p is not None]


def _marker(fingerprint: str, root: str) -> Path:
    where = hashlib.sha256(root.encode()).hexdigest()[:12]
    return cache_dir() / "verified" / f"{fingerprint}-{where}.ok"


def verify_images(source: Source, fingerprint: str, root: str) -> None:
    """Raise `DataSourceError` naming every image of `source` that does not decode; remember a clean pass."""
    marker = _marker(fingerprint, root)
    if marker.is_file():
        return
    problems = bad_images(source)
    if problems:
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise DataSourceError(f"{source.name}: {len(problems)} image(s) under {root} do not decode (nothing was "
                              f"trained):\n  " + "\n  ".join(problems[:SHOWN]) + more)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("ok\n")
    except OSError:
        pass  # best effort: the next run decodes again
