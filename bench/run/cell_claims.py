"""Atomic cell claims in a results directory: one computation per cell, across workers, runs and hosts.

A claim is the file ``<results>/claims/<cell_id>.claim`` holding its owner (pid, host, process start time, SLURM
job, a random token). It is created by hard-linking a fully written temp file to that name: `os.link` fails if the
name exists, atomically, also on NFS, where ``O_EXCL`` was historically unreliable, so a reader never sees a
half-written claim. The owner touches the file every `HEARTBEAT_S` seconds while the cell runs.

A claim is stale, and taken over, when its owner is gone: a dead pid (or a reused pid with another start time) on
this host, the same SLURM job requeued, or no heartbeat for `STALE_AFTER_S` seconds (any host).

Why by hand: `filelock` locks are advisory locks on an open file, released when the process dies, which is what
we want on one host, but they carry no owner to report ("claimed by pid 123 on node7 since 12:00") and their
behaviour on network file systems varies; a claim file works the same on a laptop and on a cluster's shared disk.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import psutil

HEARTBEAT_S = 30.0  # how often a running cell touches its claim
STALE_AFTER_S = 300.0  # a claim without a heartbeat for this long is abandoned (its host may be gone)
CLAIMS_DIR = "claims"


@dataclass(frozen=True)
class Owner:
    """Who holds a claim."""

    pid: int
    host: str
    started: float  # wall-clock time of the claim
    proc_start: float  # the process's start time: tells a live owner from a reused pid
    job: str  # "<SLURM_JOB_ID>_<SLURM_ARRAY_TASK_ID>" or "" outside SLURM
    token: str

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        job = f", SLURM job {self.job}" if self.job else ""
        return f"pid {self.pid} on {self.host}{job} since {since}"


class ClaimHeld(RuntimeError):
    """The cell is being computed by a live owner."""

    def __init__(self, cell_id: str, owner: Owner) -> None:
        super().__init__(f"cell {cell_id} is claimed by {owner.describe()}")
        self.owner = owner


def _slurm_job() -> str:
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID") or ""
    task = os.environ.get("SLURM_ARRAY_TASK_ID", "")
    return f"{job}_{task}" if job and task else job


def _proc_start(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def current_owner() -> Owner:
    """An owner record for this process (with a fresh token)."""
    pid = os.getpid()
    return Owner(pid, socket.gethostname(), time.time(), _proc_start(pid), _slurm_job(), secrets.token_hex(8))


def claim_path(results_dir: Path | str, cell_id: str) -> Path:
    return Path(results_dir) / CLAIMS_DIR / f"{cell_id}.claim"


def read_owner(path: Path) -> Owner | None:
    """The claim's owner; None if there is no claim file (or it is unreadable: treated as abandoned)."""
    try:
        from bench.core.store import read_bounded_text

        return Owner(**json.loads(read_bounded_text(path, 2**16)))  # bounded: a claim file is ~200 bytes
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return Owner(0, "", 0.0, 0.0, "", "unreadable")


def is_stale(path: Path, owner: Owner, now: float | None = None, stale_after: float = STALE_AFTER_S) -> bool:
    """True when the claim's owner can no longer finish the cell (see the module docstring)."""
    now = time.time() if now is None else now
    try:
        beat = path.stat().st_mtime
    except FileNotFoundError:
        return True
    if now - beat > stale_after or owner.token == "unreadable":
        return True  # claims are written whole (see _try_create), so an unreadable one is not a live owner's
    me = current_owner()
    if owner.job and owner.job == me.job and owner.pid != me.pid:
        return True  # the same SLURM task, requeued: its earlier run was preempted
    if owner.host == me.host:
        if not psutil.pid_exists(owner.pid):
            return True
        started = _proc_start(owner.pid)
        return bool(owner.proc_start) and abs(started - owner.proc_start) > 1.0  # the pid was reused
    return False


def _try_create(path: Path, owner: Owner) -> bool:
    """Create the claim atomically with its full content; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{owner.token}.tmp")
    tmp.write_text(json.dumps(asdict(owner)), encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(path: Path, stale: Owner) -> None:
    """Remove a stale claim, unless someone else replaced it meanwhile (then it is put back)."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}.stale")
    try:
        os.rename(path, aside)  # atomic: of several takers, exactly one moves the file
    except FileNotFoundError:
        return
    if (read_owner(aside) or stale).token != stale.token:
        # Another taker already replaced the stale claim with a live one, which we just moved: restore it.
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def acquire(results_dir: Path | str, cell_id: str, stale_after: float = STALE_AFTER_S) -> Owner:
    """Claim a cell; raises `ClaimHeld` if a live owner has it. Stale claims are taken over."""
    path = claim_path(results_dir, cell_id)
    me = current_owner()
    for _ in range(20):  # each round either creates the claim, finds a live owner, or removes a stale one
        if _try_create(path, me):
            return me
        owner = read_owner(path)
        if owner is None:
            continue
        if not is_stale(path, owner, stale_after=stale_after):
            raise ClaimHeld(cell_id, owner)
        _take_over(path, owner)
    raise RuntimeError(f"could not claim cell {cell_id}: its claim file {path} keeps changing")


def release(results_dir: Path | str, cell_id: str, owner: Owner) -> None:
    """Remove the claim if it is still ours (a claim taken over from us is left to its new owner)."""
    path = claim_path(results_dir, cell_id)
    current = read_owner(path)
    if current is not None and current.token == owner.token:
        path.unlink(missing_ok=True)


def still_owned(results_dir: Path | str, cell_id: str, owner: Owner) -> bool:
    current = read_owner(claim_path(results_dir, cell_id))
    return current is not None and current.token == owner.token


@contextlib.contextmanager
def claimed(results_dir: Path | str, cell_id: str, heartbeat: float = HEARTBEAT_S,
            stale_after: float = STALE_AFTER_S) -> Iterator[Owner]:
    """Hold a cell's claim for the block (heartbeat in a daemon thread); always released on the way out,
    including on Ctrl-C. Raises `ClaimHeld` if a live owner has it."""
    owner = acquire(results_dir, cell_id, stale_after)
    path = claim_path(results_dir, cell_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            with contextlib.suppress(OSError):
                if still_owned(results_dir, cell_id, owner):
                    os.utime(path)

    thread = threading.Thread(target=beat, name=f"claim-{cell_id}", daemon=True)
    thread.start()
    try:
        yield owner
    finally:
        stop.set()
        release(results_dir, cell_id, owner)


def wait_until_free(results_dir: Path | str, cell_ids: list[str], poll: float = 1.0,
                    stale_after: float = STALE_AFTER_S) -> None:
    """Block until none of the cells has a live claim (their owners finished, or died and went stale)."""
    waiting = list(cell_ids)
    while waiting:
        waiting = [c for c in waiting if (o := read_owner(claim_path(results_dir, c))) is not None
                   and not is_stale(claim_path(results_dir, c), o, stale_after=stale_after)]
        if waiting:
            time.sleep(poll)
