"""Up-front checks of the folders a command writes to, so a wrong path fails before any work, not after it."""
from __future__ import annotations

import tempfile
from pathlib import Path


def check_output_dir(path: Path | str, option: str) -> Path:
    """Refuse a path that is a file, or a folder (or its nearest existing parent) that cannot be written.

    `option` names the command-line option in the message (e.g. "--results")."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path} is a file, not a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not _writable(probe):
        raise PermissionError(f"{option} {path}: {probe} is not writable")
    return path


def _writable(folder: Path) -> bool:
    # os.access is wrong under root and on some network file systems; creating a file is the real test.
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
