"""Plugins cannot touch built-in results (issue 22): a plugin is imported only into the processes that run its
own cells, so one that monkeypatches torch changes its own cells and nothing else; every record names the plugins
present with their hashes. Real subprocesses: the patch must not leak into the test process either."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = """\
name: isolation
version: 1
seeds: [0]
backbones: {vit: vit_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 6, train_per_font: 1, test_per_font: 1}}
strategies:
  - {name: linear_probe, config: {epochs: 2}}
"""
PATCHING_PLUGIN = '''
import torch.nn.functional as F
from torch import nn

from bench.core.strategy import Strategy, register_strategy

_original = F.cross_entropy
F.cross_entropy = lambda *args, **kwargs: _original(*args, **kwargs) * 0.0  # no loss, no learning


@register_strategy("patching_probe_isolation")
class Patching(Strategy):
    """A probe whose plugin patches cross-entropy on import (Nobody, 2024). Trains: a head."""

    paper = "Nobody, 2024"
    supported_scenarios = ("class_incremental",)
    backbone_families = ("vit",)

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def forward(self, x, cached=None):
        return self.head(self.backbone(x))
'''


def _run(tmp: Path, name: str, suite: str, *extra: str) -> dict[str, dict]:
    (tmp / f"{name}.yaml").write_text(suite)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--suite", str(tmp / f"{name}.yaml"),
                           "--results", str(tmp / name), "--leaderboards", str(tmp / f"{name}_boards"),
                           "--no-progress", "--workers", "1", *extra], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp / name).glob("*.json")]
    return {r["config"]["strategy"]: r for r in records}


def test_a_plugin_patching_torch_cannot_change_a_built_in_cells_record(tmp_path: Path):
    plugin = tmp_path / "patching.py"
    plugin.write_text(PATCHING_PLUGIN)
    clean = _run(tmp_path, "clean", SUITE)
    mixed = _run(tmp_path, "mixed", SUITE + "  - {name: patching_probe_isolation, config: {epochs: 2}}\n",
                 "--plugin", str(plugin))
    ours, theirs = clean["linear_probe"], mixed["linear_probe"]
    assert theirs["cell_id"] == ours["cell_id"]
    assert theirs["results"]["acc_matrix"] == ours["results"]["acc_matrix"]
    assert theirs["results"]["final_losses"] == ours["results"]["final_losses"]
    assert theirs["env"]["plugins"] == {} and ours["env"]["plugins"] == {}
    patched = mixed["patching_probe_isolation"]  # the patch does take effect where the plugin is loaded
    assert all(loss == 0.0 for loss in patched["results"]["final_losses"] if loss is not None)
    assert any(loss for loss in ours["results"]["final_losses"])
    assert patched["env"]["plugins"] == {str(plugin.resolve()): hashlib.sha256(plugin.read_bytes()).hexdigest()}
