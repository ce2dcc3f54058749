"""A tiny content-addressed disk cache for generated numpy arrays.

An entry is keyed by the sha256 of the canonical JSON of a caller's key (plus
``DATA_VERSION``) and stored as one ``.npz`` file. Files are written to a
temporary name in the cache folder and moved into place with ``os.replace``,
so a concurrent reader sees either no file or a whole one. A file that fails
to load is rebuilt rather than raising.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATA_VERSION", "cache_dir", "cache_path", "cached_arrays"]

# Bump whenever scenarios/glyphs.py or scenarios/digits.py would produce
# different bytes for the same arguments: old entries then simply stop matching.
DATA_VERSION: int = 2

# What a damaged or half-foreign file can raise from np.load / reading members.
_LOAD_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


def cache_dir() -> Path:
    """The one cache folder of PromptShift (everything cached on disk goes under it).

    ``$PROMPTSHIFT_CACHE`` if set, else ``$XDG_CACHE_HOME/promptshift``, else ``~/.cache/promptshift``: the
    user's cache home, never a folder of the source tree, so an installed package works from any directory.
    Read on every call, so a test or a job can point it elsewhere by setting the variable.
    """
    override = os.environ.get("PROMPTSHIFT_CACHE")
    if override:
        return Path(override).expanduser()
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home).expanduser() / "promptshift"


def _digest(key: Mapping[str, Any]) -> str:
    payload = {"data_version": DATA_VERSION, "key": key}
    # allow_nan=False: NaN has no canonical JSON spelling, so refuse it.
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def cache_path(key: Mapping[str, Any]) -> Path:
    """Where the entry for ``key`` lives (whether or not it exists yet)."""
    return cache_dir() / f"{_digest(key)}.npz"


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            # Read every member now: a truncated member only fails on access.
            return {name: npz[name] for name in npz.files}
    except _LOAD_ERRORS:  # includes FileNotFoundError: a plain miss
        return None


def _store(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Never leave stray temporaries behind, whatever interrupted us.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def cached_arrays(
    key: Mapping[str, Any], build: Callable[[], Mapping[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Return the arrays stored under ``key``, calling ``build`` on a miss.

    ``key`` must be JSON-serialisable (it is hashed, never stored). ``build``
    returns a mapping of names to arrays; object arrays are refused because
    the cache never unpickles. A corrupt entry is rebuilt and overwritten.
    """
    path = cache_path(key)
    hit = _load(path)
    if hit is not None:
        return hit
    arrays = {str(name): np.asarray(value) for name, value in build().items()}
    for name, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"cached_arrays: array {name!r} has dtype object, which cannot be cached")
    _store(path, arrays)
    return arrays
