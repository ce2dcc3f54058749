"""`promptshift pretrain` writes to a folder of the user's, complete and then loaded from, never into the
installed package (bench.models.checkpoint_out)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "bench" / "models" / "checkpoints_data"


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PROMPTSHIFT_CHECKPOINTS"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})


def test_the_output_folder_is_completed_and_then_loaded_from(tmp_path):
    code = ("from bench.models.checkpoint_out import prepare_output\n"
            "out = prepare_output('mine')\n"
            "from bench.models import checkpoints\n"
            "from bench.models.checkpoints import verified_checkpoint\n"
            "print(checkpoints.CHECKPOINT_DIR == out, verified_checkpoint('clip_glyph_tiny').parent == out)")
    done = _python(code, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True"]
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == sorted(p.name for p in SHIPPED.iterdir())


def test_the_installed_packages_folder_is_refused_outside_a_checkout(tmp_path):
    code = ("import bench.models.checkpoint_out as c\n"
            f"c.REPO = __import__('pathlib').Path({str(tmp_path)!r})  # as in site-packages: no .git above\n"
            f"from bench.cli import main\nraise SystemExit(main(['pretrain', '--out', {str(SHIPPED)!r}]))")
    done = _python(code, tmp_path)
    assert done.returncode == 2 and "installed package's data folder" in done.stderr
