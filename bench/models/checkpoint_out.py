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
FAMILIES = ("vit", "clip", "coca", "scene_coca")  # scene_coca: bench.multimodal.pretrain
REPO = Path(__file__).resolve().parents[2]


def prepare_output(out: Path | str) -> Path:
    """Create `out`, copy in the shipped checkpoint files it lacks, point $PROMPTSHIFT_CHECKPOINTS at it. Refuses
    the installed package's own folder (only a checkout may rewrite its committed checkpoints)."""
    out = Path(out).resolve()
    shipped = package_folder("bench.models", "checkpoints_data").resolve()
    if out == shipped and not (REPO / ".git").exists():
        raise PermissionError(f"--out {out} is the installed package's data folder: pretrain into a folder of "
                              f"yours (the default ./checkpoints), then run with {ENV}=<that folder>")
    loaded = sys.modules.get("bench.models.checkpoints")
    if loaded is not None and Path(loaded.CHECKPOINT_DIR).resolve() != out:  # a caller imported it earlier
        raise RuntimeError(f"choose the checkpoint folder before importing bench.models.checkpoints (set {ENV})")
    out.mkdir(parents=True, exist_ok=True)
    if out != shipped:
        for path in shipped.iterdir():
            if path.is_file() and not (out / path.name).exists():
                shutil.copyfile(path, out / path.name)
    os.environ[ENV] = str(out)
    return out


def check_families(only: list[str] | None) -> set[str]:
    """The backbone families to pretrain (None: all); a misspelt one is an error naming the valid ones."""
    import difflib

    wanted = set(FAMILIES if only is None else only)
    unknown = sorted(wanted - set(FAMILIES))
    if unknown or not wanted:
        hints = [f"{name!r}" + (f" (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
            name, FAMILIES, n=1)) else "") for name in unknown]
        raise ValueError(f"--only: {', '.join(hints) or 'nothing'} is not a backbone family to pretrain; "
                         f"valid: {', '.join(FAMILIES)}")
    return wanted
