"""Files shipped inside the package (suites, schema, references, checkpoints), found through importlib.resources.

Found by package, not by walking up from a source file, so the same lookup works in a checkout, an editable
install and an installed wheel.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def package_folder(package: str, name: str) -> Path:
    """The folder or file `name` inside `package` (e.g. `package_folder("bench", "suites")`), as a real path.

    Wheels install unzipped, so this is a plain path; a zipped install (zipimport) is refused with a clear error,
    because safetensors and the pretrain writer need real files.
    """
    found = resources.files(package) / name
    if not isinstance(found, Path):
        raise RuntimeError(f"promptshift must be installed as files, not zipped: {package}/{name} is {found!r}")
    return found
