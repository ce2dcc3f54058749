"""The reporting commands start fast: `leaderboard`, `submit` and `list`, and importing their modules, load neither
torch nor scipy.stats (seconds on a busy machine). Checked in a fresh interpreter, whose sys.modules is its own.
The time itself is a `python -m bench.perf` row (leaderboard start-up against --help), never a timed test."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.core.store import ResultStore
from test_html_report import synthetic_records

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "scipy.stats", "avalanche", "timm", "open_clip")


def _heavy_after(code: str, cwd: Path) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_reporting_entry_points_loads_no_torch(tmp_path):
    code = "import bench.cli, bench.report.leaderboard, bench.run.submit, bench.run.listing, bench.report.stats"
    assert _heavy_after(code, tmp_path) == []


def test_a_leaderboard_rebuild_loads_no_torch(tmp_path):
    store = ResultStore(tmp_path / "results")
    for rec in synthetic_records():  # several seeds' worth of rows: intervals need a t quantile
        store.write(rec)
        store.write({**rec, "cell_id": rec["cell_id"] + "-s1", "config": {**rec["config"], "seed": 1}})
    code = ("from bench.cli import main\n"
            "assert main(['leaderboard', '--results', 'results', '--leaderboards', 'boards']) == 0")
    assert _heavy_after(code, tmp_path) == []
    assert (tmp_path / "boards" / "index.html").is_file()
