"""Process-level tests of `bench.run.lifetime`: real `run` subprocesses stopped by signals, and cells past their
time limit. Each starts a fresh interpreter (torch import included), so these are the slow rows of the bad-input
table: the ones where signals, exits and processes matter."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.run.lifetime import CellTimeout, Terminated, cell_time_limit, stop_signals_interrupt

ROOT = Path(__file__).resolve().parents[1]
SUITE = """\
name: lifetime
version: 1
seeds: [0]
backbones: {vit: vit_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 6, train_per_font: 1, test_per_font: 1}}
strategies:
"""
SLOW_PLUGIN = '''
import os
import time

from torch import nn

from bench.core.strategy import Strategy, register_strategy


@register_strategy("slow_probe_lifetime")
class Slow(Strategy):
    """A probe that sleeps PROMPTSHIFT_TEST_SLEEP seconds when built (Nobody, 2024). Trains: a head."""

    paper = "Nobody, 2024"
    supported_scenarios = ("class_incremental",)
    backbone_families = ("vit",)

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.head = nn.Linear(backbone.num_features, info.num_classes)
        time.sleep(float(os.environ.get("PROMPTSHIFT_TEST_SLEEP", "0")))

    def forward(self, x, cached=None):
        return self.head(self.backbone(x))
'''


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMPTSHIFT_TEST_SLEEP"}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra})
    return env


def _run_argv(tmp: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "run", "--suite", str(tmp / "suite.yaml"), "--results",
            str(tmp / "results"), "--leaderboards", str(tmp / "boards"), "--no-progress", "--workers", "1",
            "--plugin", str(tmp / "slow.py"), *extra]


def _setup(tmp: Path, entries: str) -> None:
    (tmp / "suite.yaml").write_text(SUITE + entries)
    (tmp / "slow.py").write_text(SLOW_PLUGIN)


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for_claim(results: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list((results / "claims").glob("*.claim")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no cell was claimed"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_run_leaves_no_process_and_the_next_run_starts_at_once(tmp_path: Path, signum: int):
    _setup(tmp_path, "  - {name: slow_probe_lifetime, config: {epochs: 1}}\n")
    proc = subprocess.Popen(_run_argv(tmp_path), cwd=tmp_path, env=_env(PROMPTSHIFT_TEST_SLEEP="600"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_claim(tmp_path / "results", proc)
        family = psutil.Process(proc.pid).children(recursive=True)  # worker, fork server, resource tracker
        assert family, "the run started no worker"
        stopped = time.monotonic()
        os.kill(proc.pid, signum)
        proc.wait(timeout=10)
        # 30 s: on a machine loaded 15 deep (`make test` beside other sessions), a fork server holding torch took
        # over 10 s to exit; a process left behind for good fails either way.
        _, alive = psutil.wait_procs(family, timeout=max(0.1, 30 - (time.monotonic() - stopped)))
        running = [p for p in alive if _running(p)]  # a zombie has exited; only its reaper is late
        assert not running, f"left behind: {[(p.pid, p.cmdline()) for p in running]}"
        out, err = proc.communicate(timeout=5)  # EOF only once every process holding the pipes is gone
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list((tmp_path / "results" / "claims").glob("*.claim"))  # released (or its owner is dead)
    if signum == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, err
        assert "stopped by signal 15" in err and "Resume (finished cells are skipped) with:" in err
        assert "Traceback" not in err
    assert not list((tmp_path / "results").glob("*.json"))  # the interrupted cell recorded nothing
    again = subprocess.run(_run_argv(tmp_path), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "waiting for" not in again.stdout + again.stderr  # nothing left holding the cell
    assert "1 cells ok, 0 failed" in again.stdout


def test_a_cell_past_its_time_limit_is_recorded_as_timed_out_and_the_run_goes_on(tmp_path: Path):
    _setup(tmp_path, "  - {name: slow_probe_lifetime, config: {epochs: 1}}\n"
                     "  - {name: linear_probe, config: {epochs: 1}}\n")
    started = time.monotonic()
    done = subprocess.run(_run_argv(tmp_path, "--time-limit", "20"), cwd=tmp_path,
                          env=_env(PROMPTSHIFT_TEST_SLEEP="600"), capture_output=True, text=True, timeout=500)
    assert time.monotonic() - started < 400  # far less than the 600 s the slow cell asks for
    assert done.returncode == 1, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    by_strategy = {r["config"]["strategy"]: r for r in records}
    slow = by_strategy["slow_probe_lifetime"]
    assert slow["status"] == "failed" and slow["timed_out"] is True
    assert "time limit of 20 s" in slow["error"]
    assert by_strategy["linear_probe"]["status"] == "ok"  # the run went on
    assert "1 cells ok, 1 failed" in done.stdout
    assert not list((tmp_path / "results" / "claims").glob("*.claim"))


def test_stop_signals_raise_a_keyboard_interrupt_that_names_them_and_restore_the_handlers():
    # SIGHUP as in a terminal: under `nohup` (or a runner that ignores it) it is SIG_IGN, which the block keeps.
    outer = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        with pytest.raises(Terminated) as stop, stop_signals_interrupt():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(5)
        assert isinstance(stop.value, KeyboardInterrupt) and stop.value.signum == signal.SIGHUP
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, outer)


def test_the_time_limit_interrupts_python_code_and_is_disarmed_after():
    started = time.monotonic()
    with pytest.raises(CellTimeout, match="time limit of 0.2 s"), cell_time_limit(0.2):
        time.sleep(5)
    assert time.monotonic() - started < 2
    with cell_time_limit(0.2):
        pass
    time.sleep(0.4)  # the timer was disarmed: nothing fires here


def test_a_signal_ignored_on_entry_stays_ignored_as_under_nohup():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_signals_interrupt():
            os.kill(os.getpid(), signal.SIGHUP)  # would raise Terminated if the handler had been replaced
            time.sleep(0.1)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
