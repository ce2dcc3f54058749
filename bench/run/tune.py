"""One tuning protocol for every strategy of a suite: the same budget of trials, scored on validation images carved
from the training data of the first task, never on a test split.

For each strategy entry of a suite: the tuning scenario is the first of the suite's scenarios the entry runs on;
its first training step is split per class (seeded) into `1 - val_fraction` for training and `val_fraction` for
validation; each trial trains a fresh strategy on the first part (one step, as a first task) and scores top-1
accuracy on the second, among that step's classes (the cross-entropy is recorded too). The grid is the same size for every strategy: learning rate =
the strategy's own default times each of `lr_factors` (0.1 to 10), crossed with two epoch counts. Strategies that train from
frozen features (no backbone pass per step) get larger epoch counts, since their epochs are cheap and they should
train to convergence; the rest get counts the default suite's time budget can pay for (smallest for CoCoOp, whose
text encoder runs per image). Ties go to the rate closest to the strategy's default, then to fewer epochs.
The winner's `lr` and `epochs` go into the suite entry's config, so every result record carries them; the whole search table is written beside the suite (`tuning/<suite>.csv`, `tuning/<suite>.yaml`).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
import yaml

from bench.core.data import EvalSet, TensorData, TrainStep
from bench.core.seeding import derive_seed
from bench.core.strategy import STRATEGIES, Strategy, count_trainable
from bench.run.runner import CellConfig, prepare
from bench.run.suite import StrategyEntry, Suite
from bench.core.device import autocast
from bench.core.strategy import mask_logits
from bench.train.harness import evaluate, fill_cache, index_batches, make_batch, run_stream

# CoCoOp trains from cached image features but runs the text encoder for every (image, class) pair: its epochs are
# the dearest of all (an order of magnitude above a pixel method's here), so it gets the smallest epoch counts.
PER_IMAGE_TEXT = frozenset({"cocoop"})


@dataclass(frozen=True)
class TuneBudget:
    """The trials every strategy gets (the same number for all)."""

    # times the strategy's default learning rate; 10 was added after a 4-point grid (to 3) chose its top for 8 of 21
    # strategies
    lr_factors: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0)
    epochs_pixels: tuple[int, ...] = (2, 5)  # strategies that run the backbone every step
    epochs_cached: tuple[int, ...] = (10, 30)  # strategies that train from frozen features only
    epochs_per_image_text: tuple[int, ...] = (1, 2)  # CoCoOp: the text encoder runs per image
    val_fraction: float = 0.2  # of the first task's training images, per class
    seed: int = 0  # scenario seed of the tuning data and of every trial

    def __post_init__(self) -> None:
        if not len(self.epochs_pixels) == len(self.epochs_cached) == len(self.epochs_per_image_text):
            raise ValueError("both epoch grids must have the same length: every strategy gets the same budget")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    @property
    def trials(self) -> int:
        return len(self.lr_factors) * len(self.epochs_pixels)


def trains_from_cache(cls: type[Strategy]) -> bool:
    """Whether a strategy's training steps read only frozen features (cheap epochs)."""
    return (not cls.needs_pixels and cls.frozen_inputs is not Strategy.frozen_inputs
            and cls.name not in PER_IMAGE_TEXT)


def grid(cls: type[Strategy], budget: TuneBudget) -> list[tuple[float, int]]:
    """(lr, epochs) of every trial of one strategy, around its own default learning rate."""
    base_lr = cls.config_cls().lr
    epochs = (budget.epochs_per_image_text if cls.name in PER_IMAGE_TEXT else
              budget.epochs_cached if trains_from_cache(cls) else budget.epochs_pixels)
    return [(float(f"{base_lr * f:.3g}"), e) for e in epochs for f in budget.lr_factors]


def carve_validation(data: TensorData, fraction: float, seed: int) -> tuple[TensorData, TensorData]:
    """Split training data per class into (train, validation), `fraction` of each class (at least one image, and
    at least one left to train on) to validation, chosen by a local generator."""
    gen = torch.Generator().manual_seed(derive_seed(seed, "tune-validation"))
    val_index = []
    for cls in torch.unique(data.labels).tolist():
        members = (data.labels == cls).nonzero().flatten()
        if len(members) < 2:
            raise ValueError(f"class {cls} has {len(members)} training image(s): cannot carve a validation split")
        count = min(len(members) - 1, max(1, round(fraction * len(members))))
        val_index.append(members[torch.randperm(len(members), generator=gen)[:count]])
    val = torch.cat(val_index).sort().values
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[val] = False
    return data.subset(keep.nonzero().flatten()), data.subset(val)


def tuning_scenario(entry: StrategyEntry, suite: Suite) -> str | None:
    """The first of the suite's scenarios this entry runs on (None: it runs on none)."""
    from scenarios.catalog import SCENARIOS

    cls = STRATEGIES.get(entry.name)
    for name in suite.scenarios:
        if (entry.scenarios is None or name in entry.scenarios) and SCENARIOS.get(name).kind in cls.supported_scenarios:
            return name
    return None


@torch.no_grad()
def validation_loss(strategy: Strategy, data: TensorData, classes: list[int], device: torch.device) -> float:
    """Mean cross-entropy on `data` among `classes` (recorded in the search table beside the accuracy)."""
    fill_cache(strategy, data, device)
    strategy.eval()
    strategy.before_eval()
    total = 0.0
    for index in index_batches(len(data), 256, None):
        batch = make_batch(strategy, data, index, device)
        with autocast(device):
            logits = strategy(batch.x, batch.cached)
        total += float(F.cross_entropy(mask_logits(logits.float(), classes), batch.y, reduction="sum"))
    strategy.after_eval()
    return total / len(data)


def run_trial(cell: CellConfig, budget: TuneBudget, device: torch.device) -> tuple[float, float, int]:
    """Train one configuration on the carved training part of the first task; return (validation accuracy,
    validation loss, trainable parameters). The scenario's evaluation sets are never passed on: only `steps[0]`
    is read."""
    scenario, _, strategy = prepare(cell)
    first = scenario.steps[0]
    train, val = carve_validation(first.data, budget.val_fraction, budget.seed)
    trainable = count_trainable(strategy)
    if trainable == 0:
        return float("nan"), float("nan"), 0
    run_stream(strategy, [TrainStep(train, list(first.classes), first.domain, first.unlabelled)], [], device,
               budget.seed, show_progress=False)
    classes = list(first.classes)
    return (evaluate(strategy, val, classes, device), validation_loss(strategy, val, classes, device), trainable)


def pick(rows: list[dict[str, Any]], base_lr: float) -> dict[str, Any] | None:
    """The winning trial: best validation accuracy; ties to the rate closest (in log scale) to the strategy's own
    default `base_lr`, then fewer epochs. A first task is often easy enough for several trials to score 100%; the
    validation loss would then always favour the largest rate and most epochs (the most confident fit of one
    task, not a better continual learner), so where validation cannot tell trials apart the default stands."""
    scored = [r for r in rows if r["val_accuracy"] == r["val_accuracy"]]  # NaN: nothing trained
    if not scored:
        return None
    return min(scored, key=lambda r: (-round(r["val_accuracy"], 9), round(abs(math.log(r["lr"] / base_lr)), 6),
                                      r["epochs"], r["lr"]))


def trial_id(cell: CellConfig, budget: TuneBudget) -> str:
    """Names everything a trial's numbers depend on: the cell config (protocol version included) and the split."""
    return f"{cell.cell_id()}-v{budget.val_fraction:g}"


def tune_entry(entry: StrategyEntry, suite: Suite, budget: TuneBudget, device: torch.device,
               say: Callable[[str], None] = print,
               recorded: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every trial of one suite entry, as rows of the search table (the winner marked `chosen`). Trials found in
    `recorded` (by trial id) are reused, so an interrupted or widened search runs only what is missing."""
    label = entry.label or entry.name
    scenario = tuning_scenario(entry, suite)
    cls = STRATEGIES.get(entry.name)
    if scenario is None:
        say(f"{label}: runs on none of the suite's scenarios; not tuned")
        return []
    family = (entry.families or [cls.backbone_families[0]])[0]
    backbone = suite.backbones[family]
    rows = []
    for lr, epochs in grid(cls, budget):
        cell = CellConfig(scenario, entry.name, backbone, budget.seed, {**entry.config, "lr": lr, "epochs": epochs},
                          dict(suite.scenario_overrides.get(scenario, {})))
        key = trial_id(cell, budget)
        if recorded and key in recorded:
            rows.append({**recorded[key], "chosen": False})
            continue
        start = time.perf_counter()
        acc, loss, trainable = run_trial(cell, budget, device)
        rows.append({"label": label, "strategy": entry.name, "scenario": scenario, "backbone": backbone, "lr": lr,
                     "epochs": epochs, "val_accuracy": acc, "val_loss": round(loss, 4),
                     "seconds": round(time.perf_counter() - start, 2), "chosen": False, "trial_id": key})
        if trainable == 0:
            say(f"{label}: trains nothing; not tuned")
            return []
        say(f"  {label:<18} lr {lr:<8g} epochs {epochs:<3} val {100 * acc:5.1f}% loss {loss:.3f}  "
            f"({rows[-1]['seconds']:.1f}s)")
    best = pick(rows, cls.config_cls().lr)
    if best is not None:
        best["chosen"] = True
    return rows


# ---------------------------------------------------------------------------------------------- files
def tuning_paths(suite_path: Path) -> tuple[Path, Path]:
    """`tuning/<suite>.csv` (every trial) and `tuning/<suite>.yaml` (protocol and chosen values) beside the suite
    (a folder of their own, so that they are never mistaken for suites)."""
    folder = suite_path.parent / "tuning"
    return folder / f"{suite_path.stem}.csv", folder / f"{suite_path.stem}.yaml"


def read_table(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        row.update(lr=float(row["lr"]), epochs=int(row["epochs"]), val_accuracy=float(row["val_accuracy"]),
                   val_loss=float(row["val_loss"]), seconds=float(row["seconds"]), chosen=row["chosen"] == "True")
    return rows


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_outputs(suite: Suite, suite_path: Path, budget: TuneBudget, rows: list[dict[str, Any]]) -> None:
    """Write the search table and the chosen values (labels in suite order)."""
    csv_path, yaml_path = tuning_paths(suite_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    order = {(e.label or e.name): i for i, e in enumerate(suite.strategies)}
    rows = sorted(rows, key=lambda r: (order.get(r["label"], len(order)), r["epochs"], r["lr"]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["label", "strategy", "scenario", "backbone", "lr", "epochs",
                                             "val_accuracy", "val_loss", "seconds", "chosen", "trial_id"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_write(csv_path, out.getvalue())
    chosen = {r["label"]: {"lr": r["lr"], "epochs": r["epochs"], "val_accuracy": round(r["val_accuracy"], 4),
                           "val_loss": r["val_loss"], "scenario": r["scenario"]} for r in rows if r["chosen"]}
    doc = {"suite": suite.name, "suite_version": suite.version,
           "protocol": {"validation": f"{budget.val_fraction:.0%} of each class of the first task's training "
                                      f"images (seed {budget.seed}); test splits are never read",
                        "trials_per_strategy": budget.trials, **dataclasses.asdict(budget),
                        "lr_base": "each strategy's own default learning rate",
                        "selection": "best validation accuracy; ties to the rate closest to the strategy's default "
                                     "(log scale), then fewer epochs"},
           "trial_seconds_total": round(sum(r["seconds"] for r in rows), 1), "chosen": chosen}
    _atomic_write(yaml_path, "# Written by `run_bench.py tune`; the suite's entries carry the chosen lr and epochs.\n"
                  + yaml.safe_dump(doc, sort_keys=False, width=120))


def tune_suite(suite: Suite, suite_path: Path, budget: TuneBudget, device: torch.device,
               labels: list[str] | None = None, say: Callable[[str], None] = print,
               fresh: bool = False) -> list[dict[str, Any]]:
    """Tune the suite's entries (or only `labels`), keeping earlier rows of the others; files are rewritten after
    each entry, so an interrupted run keeps what it finished. Trials already in the table with the same trial id
    are reused unless `fresh` (rerun them after a change to a strategy's code, which the id cannot see)."""
    csv_path, _ = tuning_paths(suite_path)
    rows = read_table(csv_path)
    for entry in suite.strategies:
        label = entry.label or entry.name
        if labels is not None and label not in labels:
            continue
        say(f"{label}: {budget.trials} trials")
        recorded = {} if fresh else {r["trial_id"]: r for r in rows if r["label"] == label and r.get("trial_id")}
        new = tune_entry(entry, suite, budget, device, say, recorded)
        rows = [r for r in rows if r["label"] != label] + new
        write_outputs(suite, suite_path, budget, rows)
    return rows
