"""Entry-point plugins (issue 22): a strategy an installed package registers under the `promptshift.strategies`
group runs in a grid, and `submit` accepts its record (the maintainer installed the package, so its strategy counts
as registered). Real subprocesses: the fake installed distribution is found on PYTHONPATH, as pip would leave it
in site-packages, and must not leak into the test process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.contract.plugins import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parents[1]
SUITE = """\
name: entry_points
version: 1
seeds: [0]
backbones: {vit: vit_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 6, train_per_font: 1, test_per_font: 1}}
strategies:
  - {name: entry_probe, config: {epochs: 1}}
"""
MODULE = '''
from torch import nn

from bench.core.strategy import Strategy, register_strategy


@register_strategy("entry_probe")
class EntryProbe(Strategy):
    """A linear probe shipped by an installed package (Nobody, 2024). Trains: a head. Freezes: the backbone."""

    paper = "Nobody, 2024"
    supported_scenarios = ("class_incremental",)
    backbone_families = ("vit",)

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def forward(self, x, cached=None):
        return self.head(self.backbone(x))
'''


def _install(site: Path) -> None:
    """What `pip install promptshift-entry-probe` leaves in site-packages: the module and its dist-info."""
    site.mkdir()
    (site / "promptshift_entry_probe.py").write_text(MODULE)
    info = site / "promptshift_entry_probe-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: promptshift-entry-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nentry_probe = promptshift_entry_probe\n")


def _cli(tmp: Path, *argv: str, site: Path | None) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT)] + ([str(site)] if site else []))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bench.cli", *argv], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=600)


def test_an_entry_point_strategys_record_runs_and_is_accepted_by_submit(tmp_path: Path):
    site = tmp_path / "site"
    _install(site)
    (tmp_path / "suite.yaml").write_text(SUITE)
    ran = _cli(tmp_path, "run", "--suite", str(tmp_path / "suite.yaml"), "--results", str(tmp_path / "ran"),
               "--leaderboards", str(tmp_path / "ran_boards"), "--no-progress", "--workers", "1", site=site)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    [record_path] = (tmp_path / "ran").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "ok" and record["config"]["strategy"] == "entry_probe"
    assert any(name.startswith("entry point entry_probe") for name in record["env"]["plugins"])

    # Without the package installed the strategy is unknown: the submission is refused and nothing is stored.
    refused = _cli(tmp_path, "submit", str(record_path), "--results", str(tmp_path / "without"), "--leaderboards",
                   str(tmp_path / "without_boards"), site=None)
    assert refused.returncode != 0 and "unknown strategy 'entry_probe'" in refused.stdout + refused.stderr
    assert not list((tmp_path / "without").glob("*.json"))

    accepted = _cli(tmp_path, "submit", str(record_path), "--results", str(tmp_path / "merged"), "--leaderboards",
                    str(tmp_path / "merged_boards"), site=site)
    assert accepted.returncode == 0, accepted.stdout[-2000:] + accepted.stderr[-3000:]
    [stored] = [json.loads(p.read_text()) for p in (tmp_path / "merged").glob("*.json")]
    assert stored["submitted"] is True and stored["config"]["strategy"] == "entry_probe"
    assert stored["results"]["acc_matrix"] == record["results"]["acc_matrix"]
    assert "entry_probe" in (tmp_path / "merged_boards" / "ci5_glyphs.csv").read_text()
