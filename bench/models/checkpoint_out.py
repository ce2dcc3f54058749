"""Where `promptshift pretrain` writes: a folder of the user's (default ./checkpoints), never the installed package.

The folder is made complete first (the shipped files it lacks are copied in: the CoCa recipe warm-starts from the
CLIP checkpoint), and `$PROMPTSHIFT_CHECKPOINTS` names it, which `bench.models.checkpoints` reads when it is first
imported: every backbone loaded afterwards, in this process and in the workers of a later run with the variable
set, loads from it. Kept apart from `checkpoints` so that choosing the folder happens before that import."""
from __future__ import annotations

import os
import sys
import shutil
from pathlib import Path

from bench.core.resources import package_folder

ENV = "PROMPTSHIFT_CHECKPOINTS"
REPO = Path(__file__).resolve().parents[2]


def prepare_output(out: Path | str) -> Path:
    """Create `out`, copy in the shipped checkpoint files it lacks, point $PROMPTSHIFT_CHECKPOINTS at it. Refuses
    the installed package's own folder (only a checkout may rewrite its committed checkpoints)."""
    out = Path(out).resolve()
    shipped = package_folder("bench.models", "checkpoints_data").resolve()
    if out == shipped and not (REPO / ".git").exists():
        raise PermissionError(f"--out {out} is the installed package's data folder: pretrain into a folder of "
                              f"yours (the default ./checkpoints), then run with {ENV}=<that folder>")
    if "bench.models.checkpoints" in sys.modules:  # a library caller imported it earlier
        raise RuntimeError(f"choose the checkpoint folder before importing bench.models.checkpoints (set {ENV})")
    out.mkdir(parents=True, exist_ok=True)
    if out != shipped:
        for path in shipped.iterdir():
            if path.is_file() and not (out / path.name).exists():
                shutil.copyfile(path, out / path.name)
    os.environ[ENV] = str(out)
    return out
