"""Executors: where cells run. Each is a thin adapter that ships tasks (`bench.run.runner.CellTask`: a picklable
callable of plain data over `run_cell`) to workers and yields their records as they finish, so a local pool, SLURM
(submitit) and Ray share every behaviour but the launch: claims, skipping finished cells, failures as records.

- `SerialExecutor`: in this process, one cell after another (debugging; `--workers 0`).
- `PoolExecutor`: a pool of local worker processes, a fresh one per cell.
- `SubmititExecutor`: a SLURM job array through submitit (or its local executor, used by the tests).
- `RayExecutor`: one `ray.remote` task per cell, with a GPU per cell when the device is CUDA.

Every `map(tasks)` yields `(index, record)` in completion order and, on Ctrl-C, stops its workers (an interrupted
cell writes nothing and releases its claim) and re-raises `KeyboardInterrupt`.
"""
from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing import connection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import bench.run.workerinit  # noqa: F401  (first: quiets library warnings in every worker that imports us)

if TYPE_CHECKING:
    from bench.run.runner import CellTask


ROOT = Path(__file__).resolve().parents[2]
EXECUTOR_NAMES = ("local", "slurm", "ray")


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def environment(updates: dict[str, str]) -> Iterator[None]:
    """`os.environ` with `updates` while the block runs, restored after: the settings are for the workers and jobs
    started inside the block, and must not leak into the caller (a later run, a test, a library in this process)."""
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def worker_env(threads: int) -> dict[str, str]:
    """Thread settings for a worker. Passive OpenMP waiting: an idle thread sleeps instead of spinning on a core
    that another worker needs (measured in issue 14: 42 s vs 23 s for one cell beside a busy process)."""
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}


# -------------------------------------------------------------------------------------------------- serial
class SerialExecutor:
    """Cells in this process, in order. No isolation between cells; for debugging and library use."""

    def describe(self) -> str:
        return "in this process, one cell after another"

    def map(self, tasks: Sequence[CellTask]) -> Iterator[tuple[int, dict[str, Any]]]:
        for index, task in enumerate(tasks):
            yield index, task()


# ---------------------------------------------------------------------------------------------------- pool
_IN_CELL = False  # set while a worker runs a cell: a signal then interrupts the cell instead of ending the worker
# True in a process started for one cell (local pool, Ray with max_calls=1): its max RSS is then the cell's peak.
ONE_CELL_PROCESS = False


_STOPPING = False  # set by the first stop signal a worker gets


def _on_signal(signum: int, frame: object) -> None:
    global _STOPPING
    # Ctrl-C reaches the whole process group and the run then terminates its workers too: the second signal must
    # not interrupt the clean-up the first one started (releasing the cell's claim); the run kills after a grace.
    if _STOPPING:
        return
    _STOPPING = True
    if _IN_CELL:
        raise KeyboardInterrupt  # unwinds run_cell: no record is written and the claim's `finally` releases it
    raise SystemExit(130)  # an idle worker just leaves, quietly


def _in_worker(task: CellTask) -> dict[str, Any]:
    global _IN_CELL
    _IN_CELL = True
    try:
        return task()
    finally:
        _IN_CELL = False


def _init_worker(threads: int) -> None:
    import torch

    from bench.core.device import flush_denormals

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    flush_denormals()  # before set_num_threads: OpenMP threads inherit it from this one
    torch.set_num_threads(threads)


def _mp_context() -> multiprocessing.context.BaseContext:
    """A fork server that has imported torch and the strategies once: each cell's process forks from it in
    milliseconds, yet starts fresh (nothing from earlier cells), unlike a plain `fork` of this process; `spawn`
    would re-import torch per cell (~2-3 s on a busy machine). `spawn` where there is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


# What the fork server imports once per run instead of once per cell: the libraries that cells import lazily
# (importing avalanche alone took 8-40 s per cell on a loaded 2-core machine). A missing one is skipped.
PRELOAD = ("bench.run.workerinit", "torch", "strategies", "bench.run.runner", "bench.run.executors",
           "avalanche.benchmarks", "avalanche.training", "timm", "open_clip", "peft", "bench.run.workerwarm")


def prestart_pool(workers: int | None = None) -> None:
    """Start the local pool's fork server now, in the environment its workers get, so that its imports (torch,
    avalanche-lib, timm, open_clip: 7 s here) run on another core while this process loads and checks the suite;
    `PoolExecutor.map` then finds it running. Nothing happens where there is no fork server."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    with environment(worker_env(PoolExecutor(workers).threads)):
        _mp_context()
        forkserver.ensure_running()


class PoolExecutor:
    """Up to `workers` local processes at once, a fresh process per cell, so a cell's peak memory does not depend
    on which cells ran before it; each worker gets `threads` torch/OpenMP threads.

    Why not `concurrent.futures.ProcessPoolExecutor(max_tasks_per_child=1)`: on Python 3.11 it starts a
    replacement worker even while shutting down and has no public way to stop running workers (3.14 adds
    `terminate_workers`), so Ctrl-C hung at exit. One `Process` per cell, watched with
    `multiprocessing.connection.wait`, is all a pool of one-shot workers needs.
    """

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.threads = threads or max(1, default_workers() // self.workers)

    def describe(self) -> str:
        return f"on {self.workers} local worker process(es), {self.threads} thread(s) each, a fresh one per cell"

    def map(self, tasks: Sequence[CellTask]) -> Iterator[tuple[int, dict[str, Any]]]:
        if not tasks:
            return
        # Set before the fork server starts: OpenMP reads these once, when the library loads.
        with environment(worker_env(self.threads)):
            yield from self._map(tasks)

    def _map(self, tasks: Sequence[CellTask]) -> Iterator[tuple[int, dict[str, Any]]]:
        ctx = _mp_context()
        queue = list(enumerate(tasks))
        running: dict[Any, tuple[int, Any, Any]] = {}  # result pipe -> (index, process, task)
        started: dict[Any, float] = {}  # result pipe -> when its worker started
        killed: set[Any] = set()  # result pipes of workers killed past their cell's time limit
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    index, task = queue.pop(0)
                    receive, send = ctx.Pipe(duplex=False)
                    process = ctx.Process(target=_worker_main, args=(task, send, self.threads, dict(os.environ),
                                                                     os.getpid()), daemon=True)
                    process.start()
                    send.close()  # the parent keeps only the reading end: EOF when the worker is gone
                    running[receive] = (index, process, task)
                    started[receive] = time.monotonic()
                limited = any(getattr(task, "time_limit", None) for _, _, task in running.values())
                for receive in connection.wait(list(running), timeout=1.0 if limited else None):
                    index, process, task = running.pop(receive)
                    record = _receive(receive, process, task)
                    yield index, (_timed_out(task) if receive in killed else record)
                killed |= _kill_overdue(running, started)
        except BaseException:
            _stop([process for _, process, _ in running.values()])
            raise


def _kill_overdue(running: dict[Any, tuple[int, Any, Any]], started: dict[Any, float]) -> set[Any]:
    """Kill the workers whose cell is `HARD_KILL_AFTER_S` past its time limit: stuck where the cell's own alarm
    (`bench.run.lifetime.cell_time_limit`) cannot reach, e.g. in C code. Returns their result pipes."""
    from bench.run.lifetime import HARD_KILL_AFTER_S

    overdue = set()
    for receive, (_, process, task) in running.items():
        limit = getattr(task, "time_limit", None)
        if limit and time.monotonic() - started[receive] > limit + HARD_KILL_AFTER_S and process.is_alive():
            process.kill()
            overdue.add(receive)
    return overdue


def _timed_out(task: CellTask) -> dict[str, Any]:
    """The record of a cell whose worker was killed past its time limit, written like any failed cell's (an ok
    record written meanwhile stands; the dead worker's claim is stale and taken over by the next run)."""
    from bench.core.store import ResultStore

    record = {"schema_version": 1, "cell_id": task.config.cell_id(), "status": "failed", "timed_out": True, "config":
              task.config.resolved(), "error": f"CellTimeout: the cell ran past its time limit of {task.time_limit:g} "
              f"s and its worker was killed"}
    return ResultStore(task.results_dir).write_unless_ok(record)


def _worker_main(task: CellTask, send: Any, threads: int, environ: dict[str, str], run_pid: int | None = None) -> None:
    # A fork of the fork server has the server's environment, from when it started; a cell must see this run's
    # (e.g. PROMPTSHIFT_DATA set by --data-root), as a spawned child of the run would.
    global ONE_CELL_PROCESS
    os.environ.clear()
    os.environ.update(environ)
    ONE_CELL_PROCESS = True
    _init_worker(threads)
    if run_pid is not None:  # no orphan: this worker stops (releasing its claim) once the run is gone
        from bench.run.lifetime import die_with

        die_with(run_pid)
    try:
        outcome = ("record", _in_worker(task))
    except KeyboardInterrupt:
        return  # interrupted: nothing to report, the cell wrote nothing and released its claim
    except Exception as error:  # noqa: BLE001 - not a failed cell (run_cell records those) but e.g. a record
        outcome = ("raise", error)  # that could not be written: the parent raises it, as a serial run would
    send.send(outcome)
    send.close()


def _receive(receive: Any, process: Any, task: CellTask) -> dict[str, Any]:
    """The worker's record; if it died without one (killed, out of memory), a failed record that is not written:
    the cell stays unfinished and a rerun retries it."""
    try:
        kind, record = receive.recv()
    except EOFError:
        process.join()
        return {"cell_id": task.config.cell_id(), "status": "failed",
                "error": f"the worker process died (exit code {process.exitcode}) before finishing the cell"}
    finally:
        receive.close()
    process.join()
    if kind == "raise":
        raise record
    return record


def _stop(processes: list[Any], grace: float = 15.0) -> None:
    """Interrupt running cells (SIGTERM -> KeyboardInterrupt inside the cell: it writes nothing and releases its
    claim); kill what is still alive after `grace` seconds. A second Ctrl-C does not abandon this clean-up."""
    from bench.run.lifetime import STOP_SIGNALS, signals_ignored

    with signals_ignored((signal.SIGINT, *STOP_SIGNALS)):
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


# ------------------------------------------------------------------------------------------------- submitit
def _importable_env() -> dict[str, str]:
    """PYTHONPATH for workers started by a cluster engine, so they import this checkout's `bench`."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class _Chunk:
    """A SLURM task: a few cells in a row. Checkpointable: on preemption or time-out submitit requeues the same
    chunk, whose finished cells are then skipped (cells are resumable) and whose interrupted cell's claim is taken
    over (the same SLURM task id, see `bench.run.cell_claims.is_stale`)."""

    def __init__(self, tasks: Sequence[CellTask], threads: int) -> None:
        self.tasks = list(tasks)
        self.threads = threads

    def __call__(self) -> list[dict[str, Any]]:
        import torch

        from bench.core.device import flush_denormals

        flush_denormals()
        torch.set_num_threads(self.threads)
        return [task() for task in self.tasks]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(_Chunk(self.tasks, self.threads))


class SubmititExecutor:
    """A job array through submitit: `cluster="slurm"` on a cluster, `"local"` for local processes (tests)."""

    def __init__(self, folder: Path | str, cluster: str | None = "slurm", chunk: int = 1, threads: int = 1,
                 gpus_per_cell: int = 0, parameters: dict[str, Any] | None = None, poll: float = 1.0) -> None:
        self.folder, self.cluster, self.chunk, self.threads = Path(folder), cluster, max(1, chunk), threads
        self.gpus_per_cell, self.parameters, self.poll = gpus_per_cell, dict(parameters or {}), poll
        self.jobs: list[Any] = []

    def describe(self) -> str:
        return f"as a {self.cluster} job array via submitit ({self.chunk} cell(s) per task, logs in {self.folder})"

    def _executor(self) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        params: dict[str, Any] = {"name": "promptshift", "timeout_min": 60, "cpus_per_task": self.threads,
                                  "nodes": 1, "tasks_per_node": 1}
        if self.gpus_per_cell:
            params["gpus_per_node"] = self.gpus_per_cell
        params.update(self.parameters)
        executor.update_parameters(**params)
        return executor

    def map(self, tasks: Sequence[CellTask]) -> Iterator[tuple[int, dict[str, Any]]]:
        if not tasks:
            return
        with environment({**worker_env(self.threads), **_importable_env()}):  # jobs inherit this environment
            yield from self._map(tasks)

    def submit(self, tasks: Sequence[CellTask]) -> list[Any]:
        """Submit the array and return its jobs without waiting (submit-and-exit; `promptshift status` later)."""
        chunks = [_Chunk(tasks[s:s + self.chunk], self.threads) for s in range(0, len(tasks), self.chunk)]
        with environment({**worker_env(self.threads), **_importable_env()}):
            executor = self._executor()
            with executor.batch():
                self.jobs = [executor.submit(chunk) for chunk in chunks]
        return self.jobs

    def _map(self, tasks: Sequence[CellTask]) -> Iterator[tuple[int, dict[str, Any]]]:
        starts = list(range(0, len(tasks), self.chunk))
        chunks = [_Chunk(tasks[s:s + self.chunk], self.threads) for s in starts]
        executor = self._executor()
        with executor.batch():  # one job array; each chunk is the submitted callable, so its `checkpoint` requeues
            jobs = [executor.submit(chunk) for chunk in chunks]
        self.jobs = jobs  # for callers that report job ids
        pending = dict(zip(jobs, starts))
        try:
            while pending:
                finished = [job for job in pending if job.done()]
                for job in finished:
                    start = pending.pop(job)
                    for offset, record in enumerate(_chunk_records(job, tasks[start:start + self.chunk])):
                        yield start + offset, record
                if pending and not finished:
                    time.sleep(self.poll)
        except BaseException:
            for job in pending:
                job.cancel(check=False)
            raise


def _chunk_records(job: Any, tasks: Sequence[CellTask]) -> list[dict[str, Any]]:
    """A chunk's records; if the job itself died (killed, out of memory), each cell becomes a failed record
    here (not written: the cells stay unfinished, and a rerun retries them)."""
    try:
        return job.result()
    except Exception as error:  # noqa: BLE001 - a lost job is reported per cell, never a crash of the grid
        first = str(error).strip().splitlines()
        reason = f"job {job.job_id} died: {first[-1] if first else type(error).__name__} (log: {job.paths.stderr})"
        return [{"cell_id": _cell_id(t), "status": "failed", "error": reason} for t in tasks]


def _cell_id(task: CellTask) -> str:
    try:
        return task.config.cell_id()
    except Exception:  # noqa: BLE001 - a plugin strategy registered only in the workers: no id here
        return f"{task.config.scenario}/{task.config.strategy}/seed {task.config.seed}"


# ------------------------------------------------------------------------------------------------------ ray
def _ray_cell(task: CellTask, threads: int) -> dict[str, Any]:
    global ONE_CELL_PROCESS
    import torch

    from bench.core.device import flush_denormals

    ONE_CELL_PROCESS = True  # max_calls=1: a fresh worker per cell
    flush_denormals()
    torch.set_num_threads(threads)
    return task()


class RayExecutor:
    """One Ray task per cell, in a fresh worker process (`max_calls=1`), with `gpus_per_cell` GPUs each. Connects
    to `address` (or RAY_ADDRESS), or starts a local Ray instance with `num_cpus` for the run."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, gpus_per_cell: float = 0,
                 threads: int = 1) -> None:
        self.address, self.num_cpus, self.gpus_per_cell, self.threads = address, num_cpus, gpus_per_cell, threads

    def describe(self) -> str:
        where = self.address or os.environ.get("RAY_ADDRESS") or "a local Ray instance"
        return f"as Ray tasks on {where} ({self.gpus_per_cell} GPU(s) per cell)"

    def map(self, tasks: Sequence[CellTask]) -> Iterator[tuple[int, dict[str, Any]]]:
        import ray

        if not tasks:
            return
        started_here = not ray.is_initialized()
        if started_here:
            env = {**worker_env(self.threads), **_importable_env()}
            ray.init(address=self.address, num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env}, configure_logging=False)
        remote = ray.remote(num_cpus=self.threads, num_gpus=self.gpus_per_cell, max_calls=1)(_ray_cell)
        pending = {remote.remote(task, self.threads): index for index, task in enumerate(tasks)}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ready[0])
                yield index, ray.get(ready[0])
        except BaseException:
            for ref in pending:
                ray.cancel(ref)  # KeyboardInterrupt inside the task: it writes nothing and releases its claim
            raise
        finally:
            if started_here:
                ray.shutdown()


def make_executor(name: str, workers: int | None, results_dir: Path | str, device: str = "auto",
                  chunk: int = 1, slurm: dict[str, Any] | None = None, ray_address: str | None = None,
                  profile: str | Path | None = None) -> Any:
    """The executor a `run --executor NAME` uses. `workers=0` with `local` runs in this process. `profile`: the
    SLURM profile file (bench/run/slurm.py), with `slurm` as overrides."""
    gpus = 1 if device == "cuda" else 0
    if name == "slurm":  # one line, at once, where there is no SLURM (not a traceback after a minute)
        from bench.run.slurm import executor_parameters, require_slurm

        require_slurm()
        slurm = executor_parameters(profile, slurm, device)
    needs = {"slurm": "submitit", "ray": "ray"}.get(name)
    if needs and importlib.util.find_spec(needs) is None:
        raise ImportError(f"the {name} executor needs the {needs} package: pip install 'promptshift[cluster]'")
    if name == "local":
        return SerialExecutor() if workers == 0 else PoolExecutor(workers)
    if name == "slurm":
        return SubmititExecutor(Path(results_dir) / "submitit", "slurm", chunk, gpus_per_cell=gpus,
                                parameters=slurm)
    if name == "ray":
        return RayExecutor(ray_address, num_cpus=workers or None, gpus_per_cell=gpus)
    raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTOR_NAMES)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("bench.run.executors is a library; use `run_bench.py run --executor ...`")
