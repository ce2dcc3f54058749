"""Cells and grids. A cell is an independent, idempotent function of its config that writes one result file.

Any executor can run cells (a loop here; submitit or Ray on a cluster): `run_cell(config, results_dir)` needs
nothing but the config, skips work that is already recorded, and never raises for a failing strategy: the failure
is written as the cell's record, with its traceback.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import platform
import subprocess
import time
import traceback
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from bench.core.data import TensorData, TrainStep
from bench.core.device import flush_denormals, select_device
from bench.core.seeding import seed_everything
from bench.core.store import ResultStore, to_strict_json
from bench.core.strategy import STRATEGIES, build_strategy, count_stored
from bench.eval.metrics import summarize
from bench.models.backbones import BACKBONES, count_parameters, create_backbone
from bench.models.checkpoints import weights_identity
from bench.run.cell import PROTOCOL_VERSION, CellConfig  # noqa: F401  (re-exported)
from bench.run.cell_claims import ClaimHeld, claim_path, claimed, read_owner, wait_until_free
from bench.run import executors
from bench.run.executors import SerialExecutor
from bench.run.lifetime import CellTimeout, cell_time_limit
from bench.run.order import longest_first
from bench.run.seq2seq_strategies import is_seq2seq, trained_in_steps
from bench.run.twins import derived_record, twin_of
from bench.train.checkpoint import CellCheckpoint
from bench.train.feature_cache import default_feature_store
from bench.train.guards import check_frozen, frozen_state
from bench.train.harness import run_stream

SCHEMA_VERSION = 1
PACKAGES = ("torch", "torchvision", "timm", "open_clip_torch", "avalanche-lib", "numpy", "scikit-learn", "peft")
log = logging.getLogger("promptshift")
log.propagate = False  # cell details go to each cell's log file; the console gets one line per cell


# ------------------------------------------------------------------------------------------- environment
@lru_cache(maxsize=1)
def code_version() -> str:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed wheel: git here would describe whatever repo holds the venv
        try:
            return f"promptshift-{metadata.version('promptshift')}"
        except metadata.PackageNotFoundError:
            return "unknown"
    return git_version(root)


# Paths whose edits do not change what a cell computes: the leaderboards a run writes into the checkout (after one
# `make bench` every later run would otherwise be stamped "-dirty") and the prose beside them.
NOT_CODE = ("leaderboards", "README.md")


def git_version(root: Path) -> str:
    """HEAD's short hash at `root`, "-dirty" when a tracked file outside `NOT_CODE` has uncommitted changes."""
    excluded = [f":(exclude){path}" for path in NOT_CODE]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{'-dirty' if dirty else ''}" if head else "unknown"


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------------------------------- cell
def merged_step(steps: list[TrainStep]) -> TrainStep:
    """All training steps as one: the joint-training upper bound."""
    classes = sorted({c for s in steps for c in s.classes})
    return TrainStep(TensorData.concat([s.data for s in steps]), classes, None)


def prepare(cfg: CellConfig):
    """Build the scenario, backbone and strategy of a cell (seeded), checking that they fit together."""
    from scenarios.catalog import build_scenario

    cls = STRATEGIES.get(cfg.strategy)
    spec = BACKBONES.get(cfg.backbone)
    if spec.family not in cls.backbone_families:
        raise ValueError(f"strategy {cfg.strategy!r} runs on {cls.backbone_families} backbones, "
                         f"not on {cfg.backbone!r} ({spec.family})")
    scenario = build_scenario(cfg.scenario, cfg.seed, fingerprint=(cfg.data or {}).get("fingerprint"),
                              **cfg.scenario_overrides)
    seed_everything(cfg.seed)  # randomly initialised backbones must not depend on earlier cells
    backbone = create_backbone(cfg.backbone, cfg.weights)
    if getattr(scenario, "preprocess", None) is not None:  # on-disk images decode at this backbone's input size
        from scenarios.source_streams import configure_preprocess
        configure_preprocess(scenario, backbone)
    module = backbone.visual if (spec.family == "clip" and not cls.needs_text) else backbone
    backbone_params = count_parameters(module)  # before the strategy injects anything (LoRA, adapters)
    seed_everything(cfg.seed)
    strategy = build_strategy(cfg.strategy, module, scenario.info(), cfg.strategy_config)
    return scenario, backbone_params, strategy


BUSY = "busy"  # status of a cell another worker is computing: returned, never written


class StoredRecord(dict):
    """A record `run_cell` found in the results folder instead of computing it: another run finished the cell
    between `run_grid` reading the folder and this worker claiming the cell. `run_grid` reports it as cached, so
    a cell is never shown as computed twice; otherwise a plain dict (it pickles back from a worker as itself)."""


def run_cell(cfg: CellConfig, results_dir: Path | str, device: str = "auto", show_progress: bool = True,
             after_training: Callable[..., dict[str, Any]] | None = None,
             time_limit: float | None = None) -> dict[str, Any]:
    """Run one cell unless its result exists; write and return its record (status "ok" or "failed").

    The cell is claimed first (`bench.run.cell_claims`): if a live worker, of this run or another, holds it, nothing
    runs and a record with status "busy" (not written) comes back. A record found on disk, before the claim or under
    it, comes back as a `StoredRecord` (not computed here). Ctrl-C leaves no record and releases the claim.
    A cell past `time_limit` seconds of wall-clock time is stopped and recorded as failed, with `timed_out: true`.
    """
    cfg = _with_data(cfg)
    store = ResultStore(Path(results_dir))
    cell_id = cfg.cell_id()
    existing = store.read(cell_id)
    if existing is not None and existing.get("status") == "ok":
        return StoredRecord(existing)
    try:
        with claimed(results_dir, cell_id):
            return _compute_cell(cfg, results_dir, device, show_progress, after_training, time_limit)
    except ClaimHeld as held:
        return {"cell_id": cell_id, "status": BUSY, "error": str(held), "owner": dataclasses.asdict(held.owner)}


def _with_data(cfg: CellConfig) -> CellConfig:
    """`cfg` with its data identity; a source that cannot be opened leaves it unset, and the cell then fails
    building its scenario with the source's own message."""
    from bench.run.data_identity import attach_data_identity
    from scenarios.sources import DataSourceError

    try:
        return attach_data_identity([cfg])[0]
    except DataSourceError:
        return cfg


def _record_header(cfg: CellConfig, cell_id: str, torch_device: torch.device) -> dict[str, Any]:
    """The part of a record every cell writes before it computes: identity, config and environment."""
    return {"schema_version": SCHEMA_VERSION, "cell_id": cell_id, "config": cfg.resolved(), "submitted": False,
            "env": {"code_version": code_version(), "packages": package_versions(),
                    "device": describe_device(torch_device), "weights": weights_identity(cfg.backbone, cfg.weights),
                    "plugins": _plugins_present()}}


def _record_failure(record: dict[str, Any], cell_id: str, error: BaseException) -> None:
    """A failed cell's record: the error and its traceback (a timed-out cell: the error alone, flagged)."""
    log.error("cell %s failed:\n%s", cell_id, traceback.format_exc())
    record.update({"status": "failed", "error": f"{type(error).__name__}: {error}\n{traceback.format_exc()}"})
    if isinstance(error, CellTimeout):
        record.update({"timed_out": True, "error": f"{type(error).__name__}: {error}"})


def _compute_cell(cfg: CellConfig, results_dir: Path | str, device: str, show_progress: bool,
                  after_training: Callable[..., dict[str, Any]] | None,
                  time_limit: float | None = None) -> dict[str, Any]:
    """The body of `run_cell`, run under the cell's claim."""
    store = ResultStore(Path(results_dir))
    cell_id = cfg.cell_id()
    existing = store.read(cell_id)
    if existing is not None and existing.get("status") == "ok":
        # Re-checked under the claim: another run may have written the record and released the claim after
        # run_cell's first look and before our claim; computing it again would be the claim/record race.
        return StoredRecord(existing)
    if trained_in_steps(cfg.strategy):
        return _compute_seq2seq_cell(cfg, store, device, time_limit)
    handler = _cell_log_handler(store.log_path(cell_id))
    started = time.perf_counter()
    flush_denormals()  # every process that computes a cell, an in-process (serial) run included
    torch_device = select_device(device)
    record = _record_header(cfg, cell_id, torch_device)
    limit = contextlib.ExitStack()
    try:
        limit.enter_context(cell_time_limit(time_limit))
        log.info("cell %s: %s", cell_id, json.dumps(cfg.resolved(), sort_keys=True))
        scenario, backbone_params, strategy = prepare(cfg)
        steps = [merged_step(scenario.steps)] if strategy.flags.joint_training else scenario.steps
        frozen = frozen_state(strategy)
        # a killed or requeued cell resumes from it, unless the code changed since it was written
        checkpoint = CellCheckpoint.of_cell(results_dir, cell_id, tag=code_version())
        result = run_stream(strategy, steps, scenario.eval_sets, torch_device, cfg.seed, show_progress,
                            feature_store=default_feature_store(), checkpoint=checkpoint)
        check_frozen(strategy, frozen)
        kind = "joint" if strategy.flags.joint_training else scenario.kind
        per_step_classes = [len(s.classes) for s in scenario.steps]
        new_classes = per_step_classes[-1] if scenario.kind == "class_incremental" else 0
        record.update({
            "status": "ok", "error": None,
            "scenario": scenario.describe(),
            "strategy": {"name": cfg.strategy, "label": cfg.label or cfg.strategy, "family": strategy.family, "paper": strategy.paper,
                         "flags": dataclasses.asdict(strategy.flags), "backbone_family": BACKBONES.get(cfg.backbone).family,
                         "trainable_params": result.trainable_params, "backbone_params": backbone_params,
                         "trainable_share": result.trainable_params / backbone_params,
                         "params_per_new_task": strategy.params_per_new_task(new_classes),
                         "stored_values": count_stored(strategy)},
            "results": {"acc_matrix": result.acc_matrix, "eval_names": result.eval_names,
                        "final_losses": result.losses, "initial_accuracy": result.initial_accuracy},
            "metrics": summarize(result.acc_matrix, result.eval_names, kind),
            "timing": {"train_seconds": result.train_seconds, "eval_seconds": result.eval_seconds},
            "memory": {"peak_mb": result.peak_memory_mb, "measure": "cuda max allocated" if torch_device.type
                       == "cuda" else "peak RSS increase during the cell (sampled)"},
        })
        if after_training is not None and cfg.robustness:
            robustness_started = time.perf_counter()
            record["robustness"] = after_training(strategy, scenario, cfg.robustness, torch_device)
            record["timing"]["robustness_seconds"] = time.perf_counter() - robustness_started
        if torch_device.type != "cuda" and executors.ONE_CELL_PROCESS:
            record["memory"] = _whole_cell_memory(result.peak_memory_mb)
        log.info("cell %s finished: %s", cell_id, json.dumps(record["metrics"]))
    except Exception as error:  # noqa: BLE001 - a failing cell is a result, never a crash of the grid
        limit.close()  # disarmed first: the limit must not fire while the failure is being recorded
        _record_failure(record, cell_id, error)
    finally:
        limit.close()
        log.removeHandler(handler)
        handler.close()
    record.setdefault("timing", {})["total_seconds"] = time.perf_counter() - started
    written = _write_or_keep(store, record)
    CellCheckpoint.of_cell(results_dir, cell_id).remove()  # a record stands (ok or failed): nothing to resume
    return written


def _compute_seq2seq_cell(cfg: CellConfig, store: ResultStore, device: str,
                          time_limit: float | None = None) -> dict[str, Any]:
    """`_compute_cell` for a multimodal cell, whose body is `bench.run.seq2seq_cell` (its own loop, metric matrices
    and summary): the same log, time limit, failure record and write, kept apart so the classification body's
    lines stay as they are."""
    from bench.run.seq2seq_cell import run_seq2seq_cell

    cell_id = cfg.cell_id()
    handler = _cell_log_handler(store.log_path(cell_id))
    started = time.perf_counter()
    flush_denormals()
    torch_device = select_device(device)
    record = _record_header(cfg, cell_id, torch_device)
    limit = contextlib.ExitStack()
    try:
        limit.enter_context(cell_time_limit(time_limit))
        log.info("cell %s: %s", cell_id, json.dumps(cfg.resolved(), sort_keys=True))
        record.update({"status": "ok", "error": None, **run_seq2seq_cell(cfg, torch_device)})
        log.info("cell %s finished: %s", cell_id, json.dumps(record["metrics"]))
    except Exception as error:  # noqa: BLE001 - a failing cell is a result, never a crash of the grid
        limit.close()
        _record_failure(record, cell_id, error)
    finally:
        limit.close()
        log.removeHandler(handler)
        handler.close()
    record.setdefault("timing", {})["total_seconds"] = time.perf_counter() - started
    return _write_or_keep(store, record)


def _plugins_present() -> dict[str, str]:
    """Plugins imported into this process (path or entry point -> sha256): none for a built-in cell that ran in
    a worker, as `CellTask` loads plugin code only for the plugin's own cells."""
    from bench.contract.plugins import LOADED

    return dict(LOADED)


def _whole_cell_memory(stream_peak_mb: float) -> dict[str, Any]:
    """The memory entry of a cell that had a fresh process of its own: the process's max RSS covers building the
    model, training, evaluation and robustness (run_stream's sampled figure covers training and evaluation only,
    and missed 2.5-4x of the peak, issue 23), kept beside it."""
    import resource

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"peak_mb": peak_kb / 1024, "stream_peak_increase_mb": stream_peak_mb,
            "measure": "max RSS of the cell's own worker process (model building, training, evaluation and "
                       "robustness; the libraries loaded before the cell included)"}


class ResultWriteError(OSError):
    """A finished cell's record could not be written to the results folder (it was kept elsewhere)."""


def _write_or_keep(store: ResultStore, record: dict[str, Any]) -> dict[str, Any]:
    """Write the record and return the one that stands: a late failure never replaces an ok result written
    meanwhile. If the results folder refuses it, keep it in the temp folder and say where, so a finished cell is
    never lost silently."""
    try:
        return store.write_unless_ok(record)
    except OSError as error:
        import tempfile

        kept = Path(tempfile.gettempdir()) / f"promptshift-unsaved-{record['cell_id']}.json"
        kept.write_text(json.dumps(to_strict_json(record), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        raise ResultWriteError(f"could not write the result of cell {record['cell_id']} to {store.root} "
                               f"({error}); the record was kept at {kept}: copy it into the results folder "
                               f"once it is writable") from None


def _cell_log_handler(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


@dataclass(frozen=True)
class CellTask:
    """One cell as a picklable callable of plain data (module-level functions included by reference): what every
    executor in `bench.run.executors` ships to a worker."""

    config: CellConfig
    results_dir: str
    device: str = "auto"
    plugins: tuple[str, ...] = ()  # plugin files a fresh worker loads before the cell (entry points load anyway)
    after_training: Callable[..., dict[str, Any]] | None = None
    show_progress: bool = False
    time_limit: float | None = None  # wall-clock seconds for the cell; None: no limit

    def __call__(self) -> dict[str, Any]:
        import strategies  # noqa: F401  (a fresh worker registers the built-in strategies)
        from bench.contract.plugins import load_plugins

        builtin = self.config.strategy in STRATEGIES or is_seq2seq(self.config.strategy)
        if not builtin:  # plugin code is imported only where its own cells run, so
            load_plugins(list(self.plugins))  # no plugin can patch what a built-in cell computes
        return run_cell(self.config, self.results_dir, self.device, self.show_progress, self.after_training,
                        self.time_limit)


def run_grid(cells: Iterable[CellConfig], results_dir: Path | str, device: str = "auto",
             show_progress: bool = True, after_training: Callable[..., dict[str, Any]] | None = None,
             executor: Any = None, plugins: Iterable[str] = (),
             estimate: Callable[[CellConfig], float | None] | None = None,
             time_limit: float | None = None) -> list[dict[str, Any]]:
    """Run every unfinished cell on `executor` (default: in this process, one after another); return every
    cell's record, in the order of `cells`. With `estimate` (a cell's expected seconds, None if unknown) cells
    start longest first (`bench.run.order`); without it, in the order of `cells`.

    Finished cells are read, not rerun. A cell another worker holds (status "busy") is waited for, then read or,
    if its owner failed or died, run here. A cell whose computation another cell of the run (or on disk) does
    (`bench.run.twins`) is written from that cell's record once it is done. Ctrl-C raises KeyboardInterrupt after
    the executor stopped its workers; every finished cell is on disk by then. A cell past `time_limit` seconds is
    stopped and recorded as timed out; the others go on.
    """
    from bench.run.data_identity import attach_data_identity, retire_superseded

    cells = attach_data_identity(cells)  # before any id: changed data is a new cell, never the old record
    executor = executor or SerialExecutor()
    store = ResultStore(Path(results_dir))
    records: list[dict[str, Any] | None] = [store.read(c.cell_id()) for c in cells]
    records = [r if r is not None and r.get("status") == "ok" else None for r in records]
    bar = tqdm(total=len(cells), desc="cells", unit="cell", disable=not show_progress)
    try:
        for index, record in enumerate(records):
            if record is not None:
                _report(bar, cells[index], "cached", record)
        todo = [i for i, r in enumerate(records) if r is None]
        twins = _twins_to_copy(cells, todo, store)
        todo = [i for i in todo if i not in twins]
        if estimate is not None:
            todo = [todo[i] for i in longest_first([cells[i] for i in todo], estimate)]
        inner_progress = show_progress and isinstance(executor, SerialExecutor)  # workers' bars would interleave
        while todo or twins:
            tasks = [CellTask(cells[i], str(results_dir), device, tuple(plugins), after_training, inner_progress,
                              time_limit) for i in todo]
            busy = []
            for position, record in executor.map(tasks) if tasks else ():
                index = todo[position]
                if record.get("status") == BUSY:
                    busy.append(index)
                    continue
                records[index] = record
                _report(bar, cells[index], "cached" if isinstance(record, StoredRecord) else record["status"],
                        record)
            if busy:
                tqdm.write(f"waiting for {len(busy)} cell(s) that another run is computing "
                           f"({_busy_owner(busy, cells, results_dir)})")
                wait_until_free(results_dir, [cells[i].cell_id() for i in busy])
                for index in busy:  # finished by their owner: read here, no worker needed
                    if store.is_done(cells[index].cell_id()):
                        records[index] = store.read(cells[index].cell_id())
                        _report(bar, cells[index], "cached", records[index])
            todo = [i for i in busy if records[i] is None]  # their owner failed or died: run them here
            for index, twin in list(twins.items()):  # the same computation, done: written from the twin's record
                twin_record = store.read(twin.cell_id())
                if twin_record is not None and twin_record.get("status") == "ok":
                    records[index] = _write_or_keep(store, derived_record(cells[index], twin_record))
                    _report(bar, cells[index], records[index]["status"], records[index])
                else:  # the twin failed or died: this cell runs itself
                    todo.append(index)
                del twins[index]
    finally:
        bar.close()
    retire_superseded(results_dir, [r for r in records if r is not None])
    return [r for r in records if r is not None]


def _twins_to_copy(cells: list[CellConfig], todo: list[int], store: ResultStore) -> dict[int, CellConfig]:
    """Unfinished cells whose computation (`bench.run.twins`) another cell of this run, or one already on disk,
    does: index -> that twin."""
    planned = {cells[i].cell_id() for i in todo}
    out = {}
    for index in todo:
        twin = twin_of(cells[index])
        if twin is not None and (twin.cell_id() in planned or store.is_done(twin.cell_id())):
            out[index] = twin
    return out


def _busy_owner(busy: list[int], cells: list[CellConfig], results_dir: Path | str) -> str:
    owner = read_owner(claim_path(results_dir, cells[busy[0]].cell_id()))
    return f"e.g. {owner.describe()}" if owner else "now released"


def _report(bar: Any, cfg: CellConfig, status: str, record: dict[str, Any]) -> None:
    """One line per finished cell, above the overall bar."""
    bar.update()
    bar.set_postfix_str(f"{cfg.scenario} / {cfg.label or cfg.strategy} / seed {cfg.seed}")
    tqdm.write(f"{status:>6}  {cfg.scenario:<14} {cfg.label or cfg.strategy:<22} {cfg.backbone:<16} "
               f"seed {cfg.seed}  {_headline(record)}")


def _headline(record: dict[str, Any]) -> str:
    if record.get("status") != "ok":
        return (record.get("error") or "").splitlines()[0][:100]
    m = record["metrics"]
    for key, label in (("final_accuracy", "final acc"), ("harmonic_mean", "HM"), ("target_acc", "target acc"),
                       ("final_score", "final score")):
        if isinstance(m.get(key), (int, float)):  # a stored NaN reads back as None
            took = (f"same computation as {record['computed_as']}" if record.get("computed_as") else
                    f"{record['timing'].get('total_seconds', 0):.0f}s")
            return f"{label} {100 * m[key]:.1f}%  ({took})"
    return ""
