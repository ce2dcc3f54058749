"""Flush-to-zero in every process that computes a cell (bench.core.device.flush_denormals): a pool worker, and this
process when a cell runs serially. Subnormal float32 values (below 1.18e-38) read as zero there, so Intel cores do
not pay their slow path. The speed itself is measured side by side by `python -m bench.perf` (subnormal row)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.run.executors import PoolExecutor

ROOT = Path(__file__).resolve().parent.parent
SUBNORMAL = 1e-39  # representable in float32 only as a subnormal
PROBE = f"import torch\nprobe = lambda: float(torch.full((4,), {SUBNORMAL}, dtype=torch.float32).mul(1.0)[0])\n"


def subnormal_product() -> float:
    """A subnormal float32 times one: itself without flush-to-zero, 0.0 with it."""
    import torch

    return float(torch.full((4,), SUBNORMAL, dtype=torch.float32).mul(1.0)[0])


class _Probe:
    """A task that reports what its worker computes for a subnormal input."""

    def __call__(self) -> dict:
        return {"status": "ok", "value": subnormal_product()}


def test_a_subnormal_reads_as_itself_in_a_process_that_runs_no_cell():
    code = PROBE + "print(probe())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert float(out.stdout) > 0  # the probe can see the difference


def test_a_pool_worker_flushes_subnormals_to_zero():
    assert [r["value"] for _, r in PoolExecutor(1).map([_Probe()])] == [0.0]


def test_a_serial_cell_flushes_subnormals_to_zero_in_its_process(tmp_path):
    code = (PROBE + "import sys, strategies\n"
            "from bench.run.runner import CellConfig, run_cell\n"
            "tiny = {'num_tasks': 2, 'num_classes': 4, 'train_per_font': 1, 'test_per_font': 1}\n"
            "cfg = CellConfig('ci5_glyphs', 'linear_probe', 'vit_test_micro', 0, {'epochs': 1}, tiny)\n"
            "assert probe() > 0\n"
            "assert run_cell(cfg, sys.argv[1], 'cpu', False)['status'] == 'ok'\n"
            "print(probe())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == 0.0
