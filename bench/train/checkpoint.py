"""Checkpoints inside a cell: a killed or requeued cell resumes after its last finished task, or inside a long
task from its last saved epoch boundary.

After each task the harness saves everything the rest of the stream depends on: the strategy's tensors (its
`state_dict`, trainable and frozen, plus tensors and plain values it keeps as attributes: prototypes, task
counters, replay memories, Fisher matrices), every random stream (torch's global CPU and CUDA generators, numpy's
and Python's global generators, the harness's shuffling and augmentation generators), the partial accuracy matrix,
losses and timings. The optimizer and scheduler live for one task (the harness builds them per task), so at a task
boundary there is none to save.

Inside a task, at an epoch boundary once `every_minutes` have passed since the last save (default 10, from
`PROMPTSHIFT_CHECKPOINT_MINUTES` or `promptshift run --checkpoint-every`; 0 saves at every epoch boundary, a
negative value only after tasks), the file also gets a `within` section: the strategy, optimizer and scheduler
state, every random stream (the shuffling generator is the data order's whole state at an epoch boundary) and
the epoch reached. The task-start state stays beside it: a resumed cell first replays what the task did before its
first step (`before_task`, the training set, the frozen caches and augmented views, which draw from the random
streams), then loads the `within` section and trains the remaining epochs. Epochs rather than every K steps: at an
epoch boundary the loop's whole state is in those objects, while inside one the shuffled order and the unlabelled
set's iterator would have to be saved as well, and an epoch of a paper recipe's task takes minutes on one GPU
(README, paper-suite cost), so a preemption loses at most one epoch plus `every_minutes`.

Strategies holding avalanche-lib plugin objects (EWC, LwF, replay: `opaque_state`) are never checkpointed; their
cells restart from the first task.

One file per cell: tensors in safetensors, everything else as JSON in its metadata; no pickle, so a checkpoint
cannot run code. Written to a temporary file and moved into place (`os.replace`): a kill leaves the previous
checkpoint or the new one, never half of one. `CellCheckpoint.remove()` deletes it when the cell is done.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = 1
MINUTES_ENV = "PROMPTSHIFT_CHECKPOINT_MINUTES"
DEFAULT_MINUTES = 10.0
_PLAIN = (bool, int, float, str, type(None))
# nn.Module internals and construction-time references that `prepare` rebuilds identically
_SKIP = {"training", "cfg", "info", "backbone", "scoring_classes"}
_MODULE_INTERNALS = frozenset(vars(nn.Module()))  # _parameters, _buffers, _modules, hooks, ...


def _encode(value: Any, tensors: dict[str, torch.Tensor], key: str) -> Any:
    """`value` as JSON, its tensors moved into `tensors` under `key`; raises TypeError for anything else."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray) and value.dtype != object:
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {"__ndarray__": key}
    if isinstance(value, _PLAIN):
        if isinstance(value, float) and not np.isfinite(value):
            return {"__float__": repr(value)}
        return value
    if isinstance(value, (list, tuple)):
        items = [_encode(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, dict) and all(isinstance(k, (str, int)) for k in value):
        return {"__dict__": [[k, _encode(v, tensors, f"{key}.{k}")] for k, v in value.items()]}
    raise TypeError(type(value).__name__)


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__ndarray__" in value:
            return tensors[value["__ndarray__"]].numpy()
        if "__float__" in value:
            return float(value["__float__"])
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode(v, tensors) for k, v in value["__dict__"]}
    return value


def module_attributes(root: nn.Module) -> dict[str, nn.Module]:
    """Every submodule by its dotted name ("" for `root`), the frozen backbone's included."""
    return dict(root.named_modules(remove_duplicate=True))


def opaque_state(strategy: nn.Module) -> list[str]:
    """Attributes holding state this module cannot save faithfully: avalanche-lib's plugin objects (EWC's
    importances, LwF's previous model, replay buffers of AvalancheDatasets). A strategy with any is not resumed:
    its cell restarts from the first task, which is slower but never wrong."""
    found = []
    for prefix, module in module_attributes(strategy).items():
        for name, value in vars(module).items():
            if type(value).__module__.split(".")[0] == "avalanche":
                found.append(f"{prefix or type(strategy).__name__}.{name}")
    return found


def frozen_backbone_names(strategy: nn.Module) -> set[str]:
    """State-dict names (aliases included) of the frozen backbone's parameters: rebuilt bit for bit by `prepare`
    (bench/train/guards.py checks they never change), so a checkpoint need not carry ViT-B/16's 86 M weights."""
    backbone = getattr(strategy, "backbone", None)
    if not isinstance(backbone, nn.Module):
        return set()
    frozen = {id(p) for p in backbone.parameters() if not p.requires_grad}
    return {name for name, value in strategy.state_dict(keep_vars=True).items() if id(value) in frozen}


def capture_strategy(strategy: nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The strategy's state: `state_dict` tensors, and each module's plain attributes that are tensors, numbers,
    strings or containers of those (what a strategy accumulates across tasks outside its parameters)."""
    frozen = frozen_backbone_names(strategy)
    for name, value in strategy.state_dict().items():
        if name not in frozen:  # the frozen backbone is rebuilt bit for bit (bench/train/guards.py checks it)
            tensors[f"state/{name}"] = value.detach().cpu().contiguous()
    attributes: dict[str, Any] = {}
    for prefix, module in module_attributes(strategy).items():
        for name, value in vars(module).items():
            # private attributes count: inside a task they hold running state (PromptSRC's `_gpa` sum, its
            # step and epoch counters)
            if name in _SKIP or name in _MODULE_INTERNALS or name.startswith("__") or isinstance(value, nn.Module):
                continue
            try:
                attributes[f"{prefix}|{name}"] = _encode(value, tensors, f"attr/{prefix}|{name}")
            except TypeError:
                continue  # a callable, a config, a reference set at construction: rebuilt by `prepare`
    return attributes


def restore_strategy(strategy: nn.Module, attributes: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    modules = module_attributes(strategy)
    for key, encoded in attributes.items():  # first: attributes can size modules (task counters, pools)
        prefix, name = key.split("|", 1)
        if prefix in modules:
            value = _decode(encoded, tensors)
            current = getattr(modules[prefix], name, None)
            if isinstance(current, torch.Tensor) and isinstance(value, torch.Tensor):
                value = value.to(current.device)
            object.__setattr__(modules[prefix], name, value)
    state = {k[len("state/"):]: v for k, v in tensors.items() if k.startswith("state/")}
    device = next((p.device for p in strategy.parameters()), torch.device("cpu"))
    frozen = frozen_backbone_names(strategy)
    missing, unexpected = strategy.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=False)
    if unexpected or set(missing) - frozen:
        raise RuntimeError(f"checkpoint does not fit the strategy: missing {sorted(set(missing) - frozen)[:5]}, "
                           f"unexpected {unexpected[:5]}")


def capture_rng(generators: dict[str, torch.Generator | None], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = state
    for name, generator in generators.items():
        if generator is not None:
            tensors[f"rng/{name}"] = generator.get_state()
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss_next = random.getstate()
    return {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(internal), gauss_next]}


def restore_rng(state: dict[str, Any], generators: dict[str, torch.Generator | None],
                tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    for name, generator in generators.items():
        if generator is not None:
            generator.set_state(tensors[f"rng/{name}"])
    kind, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


@dataclass
class Progress:
    """What the harness knows after `done` tasks."""

    done: int
    matrix: list[list[float | None]]
    losses: list[float]
    initial: list[float | None]
    train_seconds: float
    eval_seconds: float


def default_minutes() -> float:
    """Minutes between checkpoints inside a task: `PROMPTSHIFT_CHECKPOINT_MINUTES`, else 10."""
    text = os.environ.get(MINUTES_ENV, "").strip()
    if not text:
        return DEFAULT_MINUTES
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{MINUTES_ENV}={text!r}: expected a number of minutes (0: at every epoch boundary, "
                         f"negative: only after tasks)") from None


@dataclass
class WithinTask:
    """Where a task was when its `within` section was saved: `epochs` epochs of task `task` finished."""

    task: int
    epochs: int
    last_losses: list[float]
    train_seconds: float  # spent on this task so far


WITHIN = "within/"  # the tensors of the mid-task state


@dataclass
class CellCheckpoint:
    """The checkpoint file of one cell (`path`), written after every task and every `every_minutes` inside one,
    read when the cell starts again."""

    path: Path
    tag: str = ""  # e.g. the code version: a file written by other code is not resumed from
    every_minutes: float | None = None  # None: `default_minutes()`, read when a task starts
    _task_start: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = field(default=None, repr=False)
    _pending: tuple[dict[str, Any], dict[str, torch.Tensor]] | None = field(default=None, repr=False)
    _last_save: float = field(default_factory=time.monotonic, repr=False)

    def _capture(self, strategy: nn.Module, generators: dict[str, torch.Generator | None],
                 progress: Progress) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        meta = {"format": FORMAT, "tag": self.tag, "strategy": capture_strategy(strategy, tensors),
                "rng": capture_rng(generators, tensors),
                "progress": _encode(progress.__dict__, tensors, "progress")}
        return {k: v.clone() for k, v in tensors.items()}, meta

    def _write(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".ckpt-", suffix=".tmp")
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata={"json": json.dumps(meta)})
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._last_save = time.monotonic()

    def save(self, strategy: nn.Module, generators: dict[str, torch.Generator | None], progress: Progress) -> None:
        """The task-boundary checkpoint after `progress.done` tasks (it replaces any `within` section)."""
        if opaque_state(strategy):
            return  # cannot resume faithfully: restarting from zero is the honest fallback
        self._write(*self._capture(strategy, generators, progress))

    # ------------------------------------------------------------------------------------ inside a task
    def begin_task(self, strategy: nn.Module, generators: dict[str, torch.Generator | None],
                   progress: Progress) -> None:
        """Keep (in memory) the state at the start of task `progress.done`: a `within` save writes it beside the
        mid-task state, so a resumed cell can replay the task's start exactly."""
        self._task_start = None
        if self.every_minutes is None:
            self.every_minutes = default_minutes()
        if self.every_minutes >= 0 and not opaque_state(strategy):
            self._task_start = self._capture(strategy, generators, progress)

    def due(self) -> bool:
        """Whether a `within` checkpoint is due at this epoch boundary."""
        return (self._task_start is not None and self.every_minutes is not None
                and time.monotonic() - self._last_save >= 60.0 * self.every_minutes)

    def save_within(self, strategy: nn.Module, generators: dict[str, torch.Generator | None],
                    optimizer: torch.optim.Optimizer, scheduler: Any, position: WithinTask) -> None:
        """The task-start state and, under `within/`, the state after `position.epochs` epochs of the task."""
        if self._task_start is None:
            return
        base, meta = self._task_start
        inner: dict[str, torch.Tensor] = {}
        within = {"strategy": capture_strategy(strategy, inner), "rng": capture_rng(generators, inner),
                  "optimizer": _encode(optimizer.state_dict(), inner, "optimizer"),
                  "scheduler": _encode(scheduler.state_dict(), inner, "scheduler"),
                  "position": _encode(position.__dict__, inner, "position")}
        tensors = dict(base)
        tensors.update({WITHIN + k: v.detach().cpu().clone().contiguous() for k, v in inner.items()})
        self._write(tensors, {**meta, "within": within})

    def resume_within(self, strategy: nn.Module, generators: dict[str, torch.Generator | None],
                      optimizer: torch.optim.Optimizer, scheduler: Any) -> WithinTask | None:
        """Once the resumed task has replayed its start: load the mid-task strategy, random streams, optimizer and
        scheduler; where the task was, or None when the file had no `within` section."""
        if self._pending is None:
            return None
        within, tensors = self._pending
        self._pending = None
        restore_strategy(strategy, within["strategy"], tensors)
        restore_rng(within["rng"], generators, tensors)
        optimizer.load_state_dict(_decode(within["optimizer"], tensors))  # casts the state onto the params' device
        scheduler.load_state_dict(_decode(within["scheduler"], tensors))
        return WithinTask(**_decode(within["position"], tensors))

    def load(self, strategy: nn.Module, generators: dict[str, torch.Generator | None]) -> Progress | None:
        """Restore the strategy and random streams as they were after `done` tasks; the progress made, or None
        without a usable file. A `within` section (task `done` was under way) waits for `resume_within`."""
        if not self.path.is_file():
            return None
        from safetensors import safe_open

        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(self.path), framework="pt") as handle:
            meta = json.loads(handle.metadata()["json"])
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
        if meta.get("format") != FORMAT or meta.get("tag", "") != self.tag:
            return None  # another format or other code: start the cell from its first task
        base = {k: v for k, v in tensors.items() if not k.startswith(WITHIN)}
        restore_strategy(strategy, meta["strategy"], base)
        restore_rng(meta["rng"], generators, base)
        if "within" in meta:
            self._pending = (meta["within"], {k[len(WITHIN):]: v for k, v in tensors.items() if k.startswith(WITHIN)})
        return Progress(**_decode(meta["progress"], base))

    @classmethod
    def of_cell(cls, results_dir: Path | str, cell_id: str, tag: str = "") -> "CellCheckpoint":
        """Where a cell's checkpoint lives: `<results>/checkpoints/<cell_id>.safetensors`."""
        return cls(Path(results_dir) / "checkpoints" / f"{cell_id}.safetensors", tag)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        try:
            self.path.parent.rmdir()  # the cell's folder, when empty
        except OSError:
            pass
