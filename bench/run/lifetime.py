"""How long a process lives: stop signals handled like Ctrl-C, workers that die with their run, and a per-cell
wall-clock limit.

- `stop_signals_interrupt()`: SIGTERM (what `timeout`, systemd, `docker stop` and `scancel` send) and SIGHUP (a
  closed terminal) raise `Terminated`, a KeyboardInterrupt, so they take the Ctrl-C path: workers stopped, claims
  released, the resume command printed.
- `die_with(pid)`: in a worker, a SIGTERM to itself once the run's main process is gone, so no worker keeps
  computing (and refreshing its claim) for a run that no longer exists: the kernel's parent-death signal where
  Linux has one (the worker's parent is the fork server, which exits when the run does), and a watchdog thread
  that polls the main process everywhere (also covers a `kill -9` of the run while the fork server lingers).
- `cell_time_limit(seconds)`: raises `CellTimeout` in the cell's thread once its wall-clock budget is spent; the
  runner records the cell as timed out and the run goes on. A cell stuck in C code never returns to Python to see
  it: the pool executor then kills the worker `HARD_KILL_AFTER_S` later (`bench.run.executors`).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
HARD_KILL_AFTER_S = 10.0  # a worker past its limit this long did not unwind by itself: killed
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Terminated(KeyboardInterrupt):
    """A stop signal (SIGTERM, SIGHUP) arrived; handled as Ctrl-C, but the exit status names the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class CellTimeout(Exception):
    """A cell ran past its wall-clock limit (an Exception, not a BaseException: the cell is recorded, as failed)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise `Terminated` (unless ignored on entry, as under `nohup`);
    the previous handlers are back after it. A no-op outside the main thread, where Python cannot install them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A signal ignored on entry stays ignored: `nohup` sets SIGHUP to SIG_IGN so that a run outlives its terminal.
    previous = {signum: signal.signal(signum, _raise_terminated) for signum in STOP_SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_ignored(signums: tuple[int, ...]) -> Iterator[None]:
    """Ignore these signals while the block runs (a clean-up a second Ctrl-C or SIGTERM must not abandon)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def die_with(pid: int, poll_s: float = 1.0) -> None:
    """Send SIGTERM to this process once process `pid` (the run's main process) is gone."""
    if sys.platform.startswith("linux"):
        try:  # the parent (the fork server, or the run itself under spawn) dying signals us at once
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    import psutil

    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = None

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            try:
                alive = created is not None and psutil.Process(pid).create_time() == created
            except psutil.Error:
                alive = False
            if not alive:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="promptshift-lifeline", daemon=True).start()


def _raise_timeout(seconds: float) -> Any:
    def handler(signum: int, frame: object) -> None:
        raise CellTimeout(f"the cell ran past its time limit of {seconds:g} s and was stopped")
    return handler


@contextlib.contextmanager
def cell_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise `CellTimeout` in this (main) thread after `seconds` of wall-clock time; None or 0: no limit. Uses
    SIGALRM's interval timer, so where there is none (Windows) or off the main thread, the limit is the pool
    executor's hard kill only."""
    if not seconds or not hasattr(signal, "setitimer") or \
            threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout(seconds))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
