"""Executors with real processes: a local pool, two runs on one results directory, a late failure, Ctrl-C, and the
SLURM (submitit's local executor) and Ray adapters, each giving the records a serial run gives."""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.core.store import ResultStore
from bench.run.executors import PoolExecutor, RayExecutor, SerialExecutor, SubmititExecutor
from bench.run.runner import CellConfig, CellTask, run_grid

ROOT = Path(__file__).resolve().parent.parent
TINY_CI = {"num_tasks": 2, "num_classes": 6, "train_per_font": 1, "test_per_font": 1}
CELLS = [CellConfig("ci5_glyphs", "linear_probe", "vit_test_micro", 0, {"epochs": 2}, TINY_CI),
         CellConfig("ci5_glyphs", "linear_probe", "vit_test_micro", 1, {"epochs": 2}, TINY_CI),
         CellConfig("ci5_glyphs", "full_finetune", "vit_test_micro", 0, {"epochs": 2}, TINY_CI)]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def numbers(records: list[dict]) -> dict[str, tuple]:
    """What must not depend on where a cell ran."""
    return {r["cell_id"]: (r["status"], r["results"]["acc_matrix"], r["results"]["final_losses"], r["metrics"])
            for r in records}


def computations(results: Path, cell_id: str) -> int:
    """How many times the cell was computed: each computation logs one start line."""
    log = results / "logs" / f"{cell_id}.log"
    return log.read_text().count(f"INFO cell {cell_id}: ") if log.exists() else 0


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return numbers(run_grid(CELLS, tmp_path_factory.mktemp("serial"), "cpu", False, executor=SerialExecutor()))


def test_a_pool_gives_the_records_of_a_serial_run(tmp_path, serial):
    records = run_grid(CELLS, tmp_path, "cpu", False, executor=PoolExecutor(2))
    assert [r["cell_id"] for r in records] == [c.cell_id() for c in CELLS]  # in the order of the cells
    assert numbers(records) == serial
    assert "1 threads" in records[0]["env"]["device"]  # one torch thread per worker on a 2-worker pool
    assert not list((tmp_path / "claims").glob("*.claim"))


GRID = """
import json, sys
import strategies
from bench.run.executors import PoolExecutor
from bench.run.runner import CellConfig, CellTask, run_grid
cells = [CellConfig(**c) for c in json.loads(sys.argv[1])]
records = run_grid(cells, sys.argv[2], "cpu", False, executor=PoolExecutor(int(sys.argv[3])))
print(json.dumps([r["status"] for r in records]))
"""


def test_two_runs_on_one_directory_compute_each_cell_once(tmp_path, serial):
    # One run with two workers takes the cells in order, a second run with one worker in reverse: they meet.
    forward = json.dumps([asdict(c) for c in CELLS])
    backward = json.dumps([asdict(c) for c in reversed(CELLS)])
    runs = [subprocess.Popen([sys.executable, "-c", GRID, cells, str(tmp_path), workers], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT)
            for cells, workers in ((forward, "2"), (backward, "1"))]
    for run in runs:
        out, err = run.communicate(timeout=540)
        assert run.returncode == 0, err[-2000:]
        assert json.loads(out.splitlines()[-1]) == ["ok"] * len(CELLS)  # each run reports every cell
    assert [computations(tmp_path, c.cell_id()) for c in CELLS] == [1] * len(CELLS)
    assert numbers(ResultStore(tmp_path).records()) == serial


PLUGIN = '''
"""A linear probe that can be held at the start of training, and made to fail then: for worker tests."""
import os
import time
from pathlib import Path

from bench.core.strategy import register_strategy
from strategies.linear_probe import LinearProbe, LinearProbeConfig


@register_strategy("held_probe", config=LinearProbeConfig)
class HeldProbe(LinearProbe):
    """Linear probe, held while $HELD_PROBE_MARKER is set and $HELD_PROBE_MARKER.go does not exist.
    Trains: a linear head. Freezes: the backbone."""

    def before_task(self, ctx):
        marker = os.environ.get("HELD_PROBE_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))
            while not Path(marker + ".go").exists():
                time.sleep(0.05)
            if os.environ.get("HELD_PROBE_FAIL"):
                raise RuntimeError("late failure")
        super().before_task(ctx)
'''
SUITE = """
name: workers-test
version: 1
seeds: [0]
backbones: {vit: vit_test_micro, clip: clip_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 6, train_per_font: 1, test_per_font: 1}}
strategies: [%s]
"""


def _cli_args(tmp_path: Path, strategies: str, *extra: str) -> list[str]:
    (tmp_path / "held_probe.py").write_text(PLUGIN)
    (tmp_path / "suite.yaml").write_text(SUITE % strategies)
    return [sys.executable, str(ROOT / "run_bench.py"), "run", "--suite", str(tmp_path / "suite.yaml"),
            "--plugin", str(tmp_path / "held_probe.py"), "--device", "cpu", "--no-progress",
            "--results", str(tmp_path / "results"), "--leaderboards", str(tmp_path / "lb"), *extra]


def _wait_for(condition, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_late_failure_never_replaces_an_ok_result(tmp_path):
    args = _cli_args(tmp_path, "{name: held_probe, config: {epochs: 1}}", "--workers", "1")
    marker = tmp_path / "held"
    late = subprocess.Popen(args, env={**ENV, "HELD_PROBE_MARKER": str(marker), "HELD_PROBE_FAIL": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _wait_for(marker.exists, "the first run to start its cell")
    results = tmp_path / "results"
    # As if the first worker had been presumed dead: its claim is taken over and a second run finishes the cell.
    for claim in (results / "claims").glob("*.claim"):
        claim.unlink()
    second = subprocess.run(args, env=ENV, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    (ok,) = ResultStore(results).records()
    assert ok["status"] == "ok"
    Path(str(marker) + ".go").touch()  # now the first run fails, late
    out, err = late.communicate(timeout=300)
    assert late.returncode == 0 and "ok" in out  # it reports the ok record that stands, not its own failure
    assert "late failure" in (results / "logs" / f"{ok['cell_id']}.log").read_text()
    assert ResultStore(results).records() == [ok]


def _sigint_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("whom", ["the run", "the process group"])
def test_ctrl_c_keeps_finished_cells_releases_claims_and_prints_the_resume_command(tmp_path, whom):
    args = _cli_args(tmp_path, "{name: linear_probe, config: {epochs: 1}}, {name: held_probe, config: {epochs: 1}}",
                     "--workers", "2")
    marker = tmp_path / "held"
    # As a terminal's foreground job: SIGINT at its default. A test run started in the background (`make test &`,
    # a CI step, an agent's shell) has SIGINT ignored, the child inherits that, and Python then installs no
    # KeyboardInterrupt handler: the run rightly ignores Ctrl-C and this test hung 120 s (found by `trap '' INT`).
    run = subprocess.Popen(args, env={**ENV, "HELD_PROBE_MARKER": str(marker)}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
                           preexec_fn=_sigint_at_default)
    results = tmp_path / "results"
    _wait_for(lambda: marker.exists() and len(list(results.glob("*.json"))) == 1, "one finished cell, one held")
    started = time.time()
    if whom == "the run":
        run.send_signal(signal.SIGINT)
    else:  # what a terminal's Ctrl-C does: every process of the foreground group gets SIGINT
        os.killpg(run.pid, signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 130, err[-2000:]
    assert time.time() - started < 60
    assert "Traceback" not in out + err
    assert not list((results / "claims").glob("*.claim")), "an interrupted cell kept its claim"
    (finished,) = ResultStore(results).records()
    assert finished["strategy"]["name"] == "linear_probe" and finished["status"] == "ok"
    resume = err.split("Resume (finished cells are skipped) with:\n")[1].strip().splitlines()[0]
    assert shlex.split(resume) == args
    again = subprocess.run(shlex.split(resume), env=ENV, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(ResultStore(results).records()) == 2
    assert computations(results, finished["cell_id"]) == 1  # not recomputed


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None,
                    reason="submitit is not installed (pip install '.[cluster]'): the SLURM executor is untested")
def test_submitit_local_array_gives_the_records_of_a_serial_run(tmp_path, serial):
    executor = SubmititExecutor(tmp_path / "submitit", cluster="local", chunk=2, poll=0.2)
    records = run_grid(CELLS, tmp_path / "results", "cpu", False, executor=executor)
    assert numbers(records) == serial
    assert len(list((tmp_path / "submitit").glob("*/*_log.out"))) == 2  # one log per array task (2 chunks)


@pytest.mark.skipif(importlib.util.find_spec("submitit") is None, reason="submitit is not installed")
def test_a_preempted_slurm_task_requeues_its_chunk_which_skips_finished_cells(tmp_path):
    from bench.run.executors import _Chunk

    tasks = [CellTask(c, str(tmp_path), "cpu") for c in CELLS[:2]]
    chunk = _Chunk(tasks, threads=1)
    tasks[0]()  # finished before the preemption
    requeued = chunk.checkpoint()  # what submitit calls on SIGUSR2 / preemption
    assert requeued.function.tasks == chunk.tasks and requeued.function is not chunk
    records = requeued.function()
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert [computations(tmp_path, t.config.cell_id()) for t in tasks] == [1, 1]


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray is not installed (pip install '.[cluster]'): the Ray executor is untested")
def test_ray_gives_the_records_of_a_serial_run(tmp_path, serial):
    records = run_grid(CELLS, tmp_path, "cpu", False, executor=RayExecutor(num_cpus=2))
    assert numbers(records) == serial


class _ReadEnv:
    """A task that reports a variable of its worker's environment."""

    def __call__(self) -> dict:
        return {"status": "ok", "value": os.environ.get("PROMPTSHIFT_TEST_VALUE")}


def test_a_worker_sees_the_environment_of_the_run_not_of_the_fork_servers_start(monkeypatch):
    pool = PoolExecutor(1)
    list(pool.map([_ReadEnv()]))  # the fork server is running from here on
    monkeypatch.setenv("PROMPTSHIFT_TEST_VALUE", "set-later")  # as --data-root sets PROMPTSHIFT_DATA
    assert [r["value"] for _, r in pool.map([_ReadEnv()])] == ["set-later"]


def test_a_second_stop_signal_does_not_cut_a_workers_claim_release_short(tmp_path, monkeypatch):
    """Ctrl-C reaches every process of the group, then the run terminates its workers: a worker in a cell gets
    SIGINT, then SIGTERM while its cell unwinds. The second must not interrupt the claim's release (`_STOPPING`)."""
    from bench.run import cell_claims, executors

    monkeypatch.setattr(executors, "_STOPPING", False)
    handled: list[int] = []

    def handler(signum, frame):  # the worker's handler, counted
        handled.append(signum)
        executors._on_signal(signum, frame)

    real_release = cell_claims.release

    def release_under_a_second_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, before the claim file is removed
        real_release(*args, **kwargs)

    monkeypatch.setattr(cell_claims, "release", release_under_a_second_signal)

    def cell():
        with cell_claims.claimed(tmp_path, "cell"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)  # never reached in full: the first signal interrupts the cell

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            executors._in_worker(cell)
        assert handled == [signal.SIGINT, signal.SIGTERM]  # both arrived, the second during the release
        assert not cell_claims.claim_path(tmp_path, "cell").exists(), "the second signal left the claim behind"
        assert executors._IN_CELL is False
        executors._on_signal(signal.SIGTERM, None)  # a third, now idle: still ignored, no SystemExit
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def test_a_stop_signal_to_an_idle_worker_ends_it_quietly(monkeypatch):
    from bench.run import executors

    monkeypatch.setattr(executors, "_STOPPING", False)
    with pytest.raises(SystemExit) as leave:
        executors._on_signal(signal.SIGTERM, None)
    assert leave.value.code == 130
    assert executors._STOPPING is True
