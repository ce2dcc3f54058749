"""`run` from a user's seat: a rerun with nothing left to compute loads no torch and starts no workers; a run whose
tables the existing leaderboards/ would lose rows to (the README's plugin walk-through in a checkout) ends with its
tables written beside the results and a pointer to them, and a compact summary table, never an error."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import cli
from bench.core.store import ResultStore
from test_html_report import synthetic_records

ROOT = Path(__file__).resolve().parent.parent
SUITE = """
name: paths-test
version: 1
seeds: [0]
backbones: {vit: vit_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 4, train_per_font: 1, test_per_font: 1}}
strategies: [{name: linear_probe, config: {epochs: 1}}]
"""


def test_a_run_beside_fuller_leaderboards_points_to_its_tables_and_a_rerun_loads_no_torch(tmp_path, monkeypatch,
                                                                                           capsys):
    monkeypatch.chdir(tmp_path)
    committed = ResultStore(tmp_path / "committed")
    for rec in synthetic_records():
        committed.write(rec)
    cli.main(["leaderboard", "--results", "committed"])  # ./leaderboards: the whole suite, as in a checkout
    before = {p.name: p.read_bytes() for p in (tmp_path / "leaderboards").iterdir()}
    (tmp_path / "suite.yaml").write_text(SUITE)
    args = ["run", "--suite", "suite.yaml", "--workers", "0", "--no-progress"]

    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "results-leaderboards/" in out and "left as it is" in out
    assert (tmp_path / "results-leaderboards" / "ci5_glyphs.md").is_file()
    assert {p.name: p.read_bytes() for p in (tmp_path / "leaderboards").iterdir()} == before
    summary = [line for line in out.splitlines() if line.startswith("| ci5_glyphs")]
    assert len(summary) == 1 and "linear_probe" in summary[0] and "final acc" in summary[0]

    code = (f"import json, sys\nfrom bench.cli import main\nrc = main({args!r})\n"
            "import multiprocessing.forkserver as fs\n"
            "print(json.dumps([rc, 'torch' in sys.modules, fs._forkserver._forkserver_pid]))")
    rerun = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "nothing to compute" in rerun.stdout
    assert json.loads(rerun.stdout.strip().splitlines()[-1]) == [0, False, None]


def test_a_named_leaderboards_folder_still_refuses_without_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    committed = ResultStore(tmp_path / "committed")
    for rec in synthetic_records():
        committed.write(rec)
    cli.main(["leaderboard", "--results", "committed", "--leaderboards", "mine"])
    (tmp_path / "suite.yaml").write_text(SUITE)
    assert cli.main(["run", "--suite", "suite.yaml", "--workers", "0", "--no-progress",
                     "--leaderboards", "mine"]) == 2
    assert "refusing to rebuild" in capsys.readouterr().err
