"""A rerun of a suite whose cells are all finished, answered without loading torch or starting workers.

Expanding a suite into cells (their ids fill in each strategy's defaults) imports every strategy, hence torch:
seconds on a busy machine for a rerun that has nothing to compute. So after each run the ids of its cells are
remembered in the user's cache directory under a key of everything the expansion depends on: the project's source
files and plugins (`bench.run.listing.fingerprint`), the suite file's bytes, the options that pick cells, and the
data root. A rerun with the same key whose cells are all in the results folder skips straight to the tables; any
edit changes the key and the rerun expands the suite as usual.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.core.resources import package_folder
from bench.core.store import ResultStore
from bench.run.listing import fingerprint
from scenarios.cache import cache_dir


def suite_file(name_or_path: str) -> Path | None:
    """The suite's YAML file as `bench.run.suite.suite_path` finds it, or None (that function then says why)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = package_folder("bench", "suites") / f"{name_or_path}.yaml"
    return path if path.is_file() else None


def run_key(suite: str, options: dict[str, Any], plugins: Sequence[str]) -> str | None:
    """The key of a run's cell list, or None when the suite file is not found."""
    path = suite_file(suite)
    if path is None:
        return None
    digest = hashlib.sha256(fingerprint(list(plugins)).encode())
    digest.update(path.read_bytes())
    digest.update(json.dumps({**options, "data": os.environ.get("PROMPTSHIFT_DATA")}, sort_keys=True).encode())
    return digest.hexdigest()[:24]


def _manifest(key: str) -> Path:
    return cache_dir() / f"run-cells-{key}.json"


def remember(key: str | None, cell_ids: Iterable[str]) -> None:
    """Store the cell ids of a run (best effort: an unwritable cache only makes the next rerun slower)."""
    if key is None:
        return
    path = _manifest(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".run-cells-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(sorted(cell_ids), handle)
        os.replace(tmp, path)
    except OSError:
        pass


def finished_records(key: str | None, results_dir: Path | str) -> list[dict[str, Any]] | None:
    """The records of the remembered cells when every one is finished ("ok") in `results_dir`, else None."""
    if key is None:
        return None
    try:
        ids = json.loads(_manifest(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    store = ResultStore(Path(results_dir))
    records = [store.read(cell_id) for cell_id in ids] if isinstance(ids, list) and ids else [None]
    return records if all(r is not None and r.get("status") == "ok" for r in records) else None
