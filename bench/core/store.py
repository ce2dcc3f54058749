"""One JSON result file per benchmark cell, written atomically.

A cell is one (suite, scenario, strategy, config, seed) run. Its record lives at
``<root>/<cell_id>.json`` and its log at ``<root>/logs/<cell_id>.log``. Records
are replaced whole via ``os.replace`` so a crash or a concurrent reader never
sees half a file, and a rerun can trust ``is_done`` to skip finished cells.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "config_hash", "canonical_json", "to_strict_json"]

_TMP_SUFFIX = ".tmp"
MAX_RECORD_BYTES = 5 * 2**20  # one cell's record is a few kB (robustness adds a few more); larger is not a record
_UMASK = os.umask(0o022)  # read the process umask (os has no getter) and put it straight back
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def canonical_json(obj: Any) -> str:
    """JSON text that is identical for equal dicts regardless of key order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def to_strict_json(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None, so the text is JSON (which has no NaN) and any
    JSON reader can load it; readers that compute treat None as a missing number."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: to_strict_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_strict_json(value) for value in obj]
    return obj


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice (json.loads would silently keep the last value)."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads that refuses duplicate keys: a doctored record must not be able to
    show one value to a reader that keeps the first and another to one that keeps the last."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def read_bounded_text(path: Path, limit: int = MAX_RECORD_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; OSError otherwise (a symlink to /dev/zero, a
    FIFO or a huge file in a results folder must not make a reader hang or fill memory)."""
    import stat

    # Non-blocking open: a FIFO would otherwise block here, before its type could be checked.
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        if info.st_size > limit:
            raise OSError(f"{info.st_size} bytes, more than the {limit} a record may have")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"more than the {limit} bytes a record may have")
    return data.decode("utf-8")


def config_hash(config: dict[str, Any]) -> str:
    """First 16 hex chars of the sha256 of the config's canonical JSON.

    Keys are sorted at every nesting level, so dict order never changes the
    hash; any changed value does. Raises TypeError for non-JSON values.
    """
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()[:16]


def _check_cell_id(cell_id: object) -> str:
    """Reject ids that are not plain file names, so no record escapes the root."""
    if not isinstance(cell_id, str) or not cell_id:
        raise ValueError(f"cell_id must be a non-empty string, got {cell_id!r}")
    if (
        cell_id.startswith(".")
        or any(sep in cell_id for sep in ("/", "\\", "\0"))
        or cell_id != cell_id.strip()
    ):
        raise ValueError(f"cell_id {cell_id!r} is not a safe file name")
    return cell_id


class ResultStore:
    """Directory of per-cell JSON records plus their logs."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, cell_id: str) -> Path:
        """Where the record of ``cell_id`` lives: ``root/<cell_id>.json``."""
        return self.root / f"{_check_cell_id(cell_id)}.json"

    def log_path(self, cell_id: str) -> Path:
        """Where the log of ``cell_id`` lives: ``root/logs/<cell_id>.log``.

        The logs folder is created so the caller can open the file straight away.
        """
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return logs / f"{_check_cell_id(cell_id)}.log"

    def write(self, record: dict[str, Any]) -> Path:
        """Atomically write ``record`` (which must hold a "cell_id") and return its path.

        The JSON is serialised before touching the disk, written to a hidden temp
        file in the same folder, fsynced, then renamed over the target, so the
        target is always either the old complete record or the new one.
        """
        if not isinstance(record, dict) or "cell_id" not in record:
            raise ValueError("a result record must be a dict with a 'cell_id' key")
        target = self.path_for(record["cell_id"])
        # Serialise first: a non-JSON value must fail before any file exists. Strict JSON: NaN/inf become null.
        text = json.dumps(to_strict_json(record), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            dir=self.root, prefix=f".{target.stem}.", suffix=_TMP_SUFFIX
        )
        try:
            os.chmod(tmp_name, _FILE_MODE)  # mkstemp makes 0600; a record is as readable as any other file
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        self._fsync_dir()
        return target

    def write_unless_ok(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` unless an "ok" record of that cell is already stored; return the record that stands.

        An ok result is never replaced by run_cell: not by a late failure of another worker, nor by a second
        computation of the same (deterministic) cell. Checked here, at write time, and not only before the
        cell ran, since the cell may have been finished elsewhere meanwhile.
        """
        existing = self.read(record["cell_id"])
        if existing is not None and existing.get("status") == "ok":
            return existing
        self.write(record)
        return record

    def _fsync_dir(self) -> None:
        """Persist the rename itself; best effort because not every OS/FS allows it."""
        try:
            dir_fd = os.open(self.root, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def _load(self, path: Path) -> dict[str, Any] | None:
        """Parse one record file; warn and return None if it is not a valid record."""
        try:
            data = json.loads(read_bounded_text(path), object_pairs_hook=unique_keys)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            warnings.warn(f"skipping unreadable result file {path}: {exc}", stacklevel=3)
            return None
        if not isinstance(data, dict):
            warnings.warn(f"skipping result file {path}: not a JSON object", stacklevel=3)
            return None
        if data.get("cell_id") != path.stem:
            warnings.warn(
                f"skipping result file {path}: its cell_id {data.get('cell_id')!r} "
                f"does not match the file name",
                stacklevel=3,
            )
            return None
        return data

    def read(self, cell_id: str) -> dict[str, Any] | None:
        """The record of ``cell_id``, or None if absent or corrupt (corrupt warns)."""
        path = self.path_for(cell_id)
        if not path.is_file():
            return None
        return self._load(path)

    def is_done(self, cell_id: str) -> bool:
        """True only for a readable record with status "ok"; failed cells get retried."""
        record = self.read(cell_id)
        return record is not None and record.get("status") == "ok"

    def records(self) -> list[dict[str, Any]]:
        """All valid records sorted by cell_id; corrupt files are skipped with a warning."""
        if not self.root.is_dir():
            return []
        # Temp files are hidden and end in .tmp, so "*.json" never matches them.
        loaded = (self._load(path) for path in sorted(self.root.glob("*.json")))
        valid = [record for record in loaded if record is not None]
        return sorted(valid, key=lambda record: record["cell_id"])
