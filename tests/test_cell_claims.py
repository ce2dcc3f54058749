"""Cell claims: one owner at a time, across processes; stale claims (dead owner, no heartbeat, requeued SLURM task)
are taken over; live ones are reported, never overwritten."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace

import pytest

from bench.run import cell_claims as claims
from bench.run.cell_claims import ClaimHeld, acquire, claim_path, claimed, current_owner, read_owner, release

CELL = "0123456789abcdef"


def _plant(tmp_path, owner: claims.Owner, age_s: float = 0.0) -> None:
    """A claim file as another process would have left it."""
    path = claim_path(tmp_path, CELL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(owner)))
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))


@pytest.fixture
def sleeper():
    """A live process on this host that is not us."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _other(pid: int, host: str | None = None, job: str = "") -> claims.Owner:
    return replace(current_owner(), pid=pid, host=host or socket.gethostname(), proc_start=0.0, job=job,
                   token="theirs")


def test_a_claim_holds_its_owner_and_refuses_a_second_claimant(tmp_path):
    with claimed(tmp_path, CELL) as me:
        stored = read_owner(claim_path(tmp_path, CELL))
        assert stored == me and stored.pid == os.getpid() and stored.host == socket.gethostname()
        with pytest.raises(ClaimHeld, match=f"pid {os.getpid()} on {socket.gethostname()}"):
            acquire(tmp_path, CELL)
    assert not claim_path(tmp_path, CELL).exists()  # released on the way out


def test_the_claim_is_released_when_the_block_is_interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with claimed(tmp_path, CELL):
            raise KeyboardInterrupt
    assert not claim_path(tmp_path, CELL).exists()


def test_a_live_owner_on_this_host_keeps_its_claim(tmp_path, sleeper):
    _plant(tmp_path, _other(sleeper.pid))
    with pytest.raises(ClaimHeld, match=f"pid {sleeper.pid}"):
        acquire(tmp_path, CELL)
    assert read_owner(claim_path(tmp_path, CELL)).token == "theirs"


def test_a_dead_owner_on_this_host_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _plant(tmp_path, _other(int(gone.stdout)))
    me = acquire(tmp_path, CELL)
    assert read_owner(claim_path(tmp_path, CELL)) == me


def test_a_reused_pid_is_not_mistaken_for_the_owner(tmp_path, sleeper):
    # The sleeper's pid, but a process start time that is not the sleeper's: the claimant died, its pid was reused.
    _plant(tmp_path, replace(_other(sleeper.pid), proc_start=1.0))
    assert acquire(tmp_path, CELL).pid == os.getpid()


def test_another_host_is_trusted_until_its_heartbeat_stops(tmp_path):
    _plant(tmp_path, _other(1, host="node-elsewhere"), age_s=10)
    with pytest.raises(ClaimHeld, match="node-elsewhere"):
        acquire(tmp_path, CELL)
    _plant(tmp_path, _other(1, host="node-elsewhere"), age_s=claims.STALE_AFTER_S + 5)
    assert acquire(tmp_path, CELL).pid == os.getpid()


def test_a_requeued_slurm_task_takes_over_its_own_claim(tmp_path, monkeypatch, sleeper):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    _plant(tmp_path, _other(sleeper.pid, host="node-a", job="77_3"))
    assert acquire(tmp_path, CELL).job == "77_3"


def test_the_heartbeat_keeps_a_long_cell_fresh(tmp_path):
    with claimed(tmp_path, CELL, heartbeat=0.05):
        path = claim_path(tmp_path, CELL)
        old = time.time() - 1000
        os.utime(path, (old, old))
        time.sleep(0.5)
        assert time.time() - path.stat().st_mtime < 5


def test_release_leaves_a_claim_that_someone_else_took_over(tmp_path):
    me = acquire(tmp_path, CELL)
    _plant(tmp_path, _other(1, host="node-b"))  # taken over while we were presumed dead
    release(tmp_path, CELL, me)
    assert read_owner(claim_path(tmp_path, CELL)).token == "theirs"


RACE = """
import sys, time
from bench.run.cell_claims import ClaimHeld, acquire
start = float(sys.argv[2])
while time.time() < start:
    pass
try:
    acquire(sys.argv[1], "0123456789abcdef")
    print("won")
    time.sleep(2)  # still alive while the others try: their claims must fail, not take over
except ClaimHeld:
    print("lost")
"""


def test_of_many_processes_racing_for_one_cell_exactly_one_wins(tmp_path):
    start = time.time() + 2
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path), str(start)], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(6)]
    outcomes = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outcomes == ["lost"] * 5 + ["won"]
