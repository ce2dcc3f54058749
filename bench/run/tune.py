"""One tuning protocol for every strategy of a suite: the same budget of trials, scored on validation images held
out of the training data of the first tasks (A-GEM's protocol, Chaudhry et al., ICLR 2019: hyperparameters are
chosen on a short stream of the first tasks), never on a test split.

For each strategy entry of a suite: the tuning scenario is the first of the suite's scenarios the entry runs on; each
of its first `val_tasks` training steps (stopping before an unlabelled step: its labels are not for training) is
split per class (seeded) into `1 - val_fraction` for training and `val_fraction` for validation; each trial trains a
fresh strategy on the training parts as a stream (merged into one step for joint training) and scores top-1
accuracy on the validation parts of every step, among the classes seen (the cross-entropy is recorded too). A
stream of two tasks is what lets the continual-learning knobs matter: on one task EWC, LwF and replay are naive
fine-tuning, and a first task alone is easy enough to saturate (one image was 1.8 pt on ci5 with 56 images).

The grid has the same number of trials for every strategy (`TuneBudget.trials`): the learning rate = the
strategy's own default times each of `lr_factors`, crossed with two epoch counts (cheap epochs for strategies that
train from frozen features, the fewest for CoCoOp, whose text encoder runs per image, a wider pair for joint
training, which must converge on the merged problem to bound anything). Strategies with a method-specific knob
(`METHOD_KNOBS`: EWC's lambda, LwF's weight and temperature) cross `knob_lr_factors` with their knob settings at
the higher epoch count instead, the same number of trials. Structural settings (prompt length, pool size, replay
buffer) are fixed by the suite and listed in the protocol file, not tuned. Ties go to the default knob setting,
then the rate closest to the strategy's default, then fewer epochs. A twin (`same_computation_as`, e.g. naive of
full fine-tuning) with the same resolved config shares its twin's trials: they run once, count once.

Trial ids name what a trial's numbers depend on (strategy, resolved config, scenario, backbone, the split, the data
identity a cell records: an on-disk root's fingerprint, the scenes' version; `data_identity.trial_data_key`) and
`TRIAL_PROTOCOL`, bumped only when training changes; unlike a cell id they do not change with the result format's
protocol version, so `tune` on a fresh clone reuses every committed trial, and a trial on changed data is never
served from a table written on the old data.
The winner's `lr`, `epochs` and knobs go into the suite entry's config, so every result record carries them.

The seq2seq entries of the multimodal task kinds (trained in AdamW steps by their own loop) follow the same
discipline in `bench.run.tune_seq2seq`: the same number of trials (their default rate times `lr_factors`, crossed
with `steps_seq2seq`), scored on the multimodal streams' val splits right after training on each task
(`learned_score`, what the OFA-PT claims read); `tune_suite` routes them there.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
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

from bench.core.data import TensorData, TrainStep
from bench.core.device import autocast
from bench.core.seeding import derive_seed
from bench.core.store import config_hash
from bench.core.strategy import STRATEGIES, Strategy, computation_twin, count_trainable, mask_logits
from bench.run.data_identity import attach_data_identity, trial_data_key
from bench.run.runner import CellConfig, merged_step, prepare
from bench.run.seq2seq_strategies import trained_in_steps
from bench.run.suite import StrategyEntry, Suite, runs_on
from bench.run.tune_seq2seq import SEQ2SEQ_PROTOCOL_TEXT, seq2seq_fixed_settings, tune_seq2seq_entry
from bench.train.guards import NonFiniteError
from bench.train.harness import evaluate, fill_cache, index_batches, make_batch, run_stream

# Bump when a change alters what a tuning trial trains or scores (training loop, data generation, the split).
# 3: validation over the first two tasks as a stream, method knobs, ids independent of the cell protocol version.
TRIAL_PROTOCOL = 3

# CoCoOp trains from cached image features but runs the text encoder for every (image, class) pair: its epochs are
# the dearest of all (an order of magnitude above a pixel method's here), so it gets the smallest epoch counts.
PER_IMAGE_TEXT = frozenset({"cocoop"})

# Method-specific knobs, as settings tried together (each dict is one setting; the first is the strategy default).
METHOD_KNOBS: dict[str, tuple[dict[str, float], ...]] = {
    "ewc": ({"ewc_lambda": 100.0}, {"ewc_lambda": 1000.0}, {"ewc_lambda": 10000.0}),
    "lwf": ({"alpha": 1.0, "temperature": 2.0}, {"alpha": 3.0, "temperature": 2.0},
            {"alpha": 1.0, "temperature": 4.0}),
}

# Settings that shape a method and are fixed by the suite (stated in the protocol file, never tuned).
STRUCTURAL = ("length", "depth", "pool_size", "top_k", "n_ctx", "n_dmx", "memory_size", "policy", "prompt_length",
              "rank", "bottleneck", "k", "reparam", "g_layers", "e_layers", "n_components")


@dataclass(frozen=True)
class TuneBudget:
    """The trials every strategy gets (the same number for all)."""

    lr_factors: tuple[float, ...] = (0.3, 1.0, 3.0)  # times the strategy's default learning rate
    epochs_pixels: tuple[int, ...] = (2, 4)  # strategies that run the backbone every step
    epochs_cached: tuple[int, ...] = (10, 30)  # strategies that train from frozen features only
    epochs_per_image_text: tuple[int, ...] = (1, 2)  # CoCoOp: the text encoder runs per image
    epochs_joint: tuple[int, ...] = (5, 10)  # joint training on the merged problem: it must converge to bound
    # seq2seq methods of the multimodal kinds (bench/run/tune_seq2seq.py): AdamW steps a task, not epochs; v5's 30
    # and the loop's default 60 (a cell's training time is linear in them; its decoding is not)
    steps_seq2seq: tuple[int, ...] = (30, 60)
    # with METHOD_KNOBS' settings (three each): 6 trials, the plain grid's size (a smaller budget truncates, keeping
    # the default setting first)
    knob_lr_factors: tuple[float, ...] = (0.3, 1.0)
    val_tasks: int = 2  # the first tasks whose held-out images score a trial
    val_fraction: float = 0.2  # of each of those tasks' training images, per class
    seed: int = 0  # scenario seed of the tuning data and of every trial

    def __post_init__(self) -> None:
        pairs = {len(self.epochs_pixels), len(self.epochs_cached), len(self.epochs_per_image_text),
                 len(self.epochs_joint), len(self.steps_seq2seq)}
        if len(pairs) != 1:
            raise ValueError("every epoch (and step) grid must have the same length: every strategy gets the same "
                             "budget")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.val_tasks < 1:
            raise ValueError(f"val_tasks must be at least 1, got {self.val_tasks}")

    @classmethod
    def for_suite(cls, suite: Suite) -> "TuneBudget":
        """The default budget with the suite's `tuning:` settings (lists read as tuples); a wrong value raises
        ValueError naming it."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in suite.tuning.items()}
        try:
            return dataclasses.replace(cls(), **values)
        except (TypeError, ValueError) as error:
            raise ValueError(f"suite {suite.name!r}, tuning: {error}") from None

    @property
    def trials(self) -> int:
        return len(self.lr_factors) * len(self.epochs_pixels)

    def split_key(self) -> dict[str, Any]:
        """What of the budget a trial's numbers depend on (the grid's shape does not)."""
        return {"val_tasks": self.val_tasks, "val_fraction": self.val_fraction, "seed": self.seed}


def trains_from_cache(cls: type[Strategy]) -> bool:
    """Whether a strategy's training steps read only frozen features (cheap epochs)."""
    return (not cls.needs_pixels and cls.frozen_inputs is not Strategy.frozen_inputs
            and cls.name not in PER_IMAGE_TEXT)


def _epochs(cls: type[Strategy], budget: TuneBudget) -> tuple[int, ...]:
    if cls.flags.joint_training and not trains_from_cache(cls):
        return budget.epochs_joint
    return (budget.epochs_per_image_text if cls.name in PER_IMAGE_TEXT else
            budget.epochs_cached if trains_from_cache(cls) else budget.epochs_pixels)


def grid(cls: type[Strategy], budget: TuneBudget) -> list[dict[str, Any]]:
    """The config overrides of every trial of one strategy (lr, epochs and its knobs), around its default rate."""
    base_lr = cls.config_cls().lr
    epochs = _epochs(cls, budget)
    rate = lambda f: float(f"{base_lr * f:.3g}")
    knobs = METHOD_KNOBS.get(cls.name)
    if knobs:
        trials = [{"lr": rate(f), "epochs": max(epochs), **k} for k in knobs for f in budget.knob_lr_factors]
        return trials[:budget.trials]
    return [{"lr": rate(f), "epochs": e} for e in epochs for f in budget.lr_factors]


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
        if runs_on(suite, entry, name) and SCENARIOS.get(name).kind in cls.supported_scenarios:
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


def validation_stream(steps: list[TrainStep], budget: TuneBudget) -> tuple[list[TrainStep], TensorData]:
    """The first `val_tasks` steps with their held-out images removed, and the
    held-out images of all of them together."""
    train_steps, held_out = [], []
    for index, step in enumerate(steps[:budget.val_tasks]):
        train, val = carve_validation(step.data, budget.val_fraction, derive_seed(budget.seed, f"step{index}"))
        train_steps.append(dataclasses.replace(step, data=train))
        held_out.append(val)
    return train_steps, TensorData.concat(held_out)


def run_trial(cell: CellConfig, budget: TuneBudget, device: torch.device) -> tuple[float, float, int]:
    """Train one configuration on the carved training parts of the first tasks; return (validation accuracy,
    validation loss, trainable parameters); a trial whose loss diverges scores 0 (loss NaN). The scenario's evaluation sets are never passed on: only `steps` is
    read."""
    scenario, _, strategy = prepare(cell)
    trainable = count_trainable(strategy)
    if trainable == 0:
        return float("nan"), float("nan"), 0
    steps, val = validation_stream(list(scenario.steps), budget)
    classes = sorted({c for s in steps for c in s.classes})
    stream = [merged_step(steps)] if strategy.flags.joint_training else steps
    try:
        run_stream(strategy, stream, [], device, budget.seed, show_progress=False)
    except NonFiniteError:  # a diverged trial loses (accuracy 0), the search goes on
        return 0.0, float("nan"), trainable
    return (evaluate(strategy, val, classes, device), validation_loss(strategy, val, classes, device), trainable)


def _knobs(trial: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in trial.items() if k not in ("lr", "epochs")}


def _knob_text(knobs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in sorted(knobs.items()))


def pick(rows: list[dict[str, Any]], base_lr: float, default_knobs: dict[str, Any] | None = None
         ) -> dict[str, Any] | None:
    """The winning trial: best validation accuracy; ties to the default knob setting, then the rate closest (in log
    scale) to the strategy's own default `base_lr`, then fewer epochs. Where validation cannot tell trials apart,
    the defaults stand; the validation loss would always favour the largest rate and most epochs (the most
    confident fit, not a better continual learner), so it is recorded but not used."""
    scored = [r for r in rows if r["val_accuracy"] == r["val_accuracy"]]  # NaN: nothing trained
    if not scored:
        return None
    default = _knob_text(default_knobs or {})
    return min(scored, key=lambda r: (-round(r["val_accuracy"], 9), r.get("knobs", "") != default,
                                      round(abs(math.log(r["lr"] / base_lr)), 6), r["epochs"], r["lr"]))


def trial_id(cell: CellConfig, budget: TuneBudget) -> str:
    """Names everything a trial's numbers depend on, and nothing else: a twin's trial is its twin's trial."""
    target = computation_twin(STRATEGIES.get(cell.strategy))
    resolved = cell.resolved()
    if target:
        twin = dataclasses.replace(cell, strategy=target, label=None)
        if twin.resolved()["strategy_config"] == resolved["strategy_config"]:
            resolved = twin.resolved()
    key = {k: resolved[k] for k in ("scenario", "strategy", "backbone", "seed", "strategy_config",
                                   "scenario_overrides", "weights")}
    return config_hash({**key, **trial_data_key(cell), "split": budget.split_key(), "trial_protocol": TRIAL_PROTOCOL})


def fixed_settings(entry: StrategyEntry) -> dict[str, Any]:
    """The structural settings of an entry (suite config over strategy defaults) that the tuning leaves alone."""
    if trained_in_steps(entry.name):
        return seq2seq_fixed_settings(entry)
    cfg = STRATEGIES.get(entry.name).config_cls.from_dict(dict(entry.config)).to_dict()
    return {k: cfg[k] for k in STRUCTURAL if k in cfg}


def reuse(done: dict[str, Any], label: str) -> dict[str, Any]:
    """`seconds` and `shared_with` of a recorded trial reused for entry `label`: a trial another label ran (a twin)
    counts 0 s and names that label; the entry's own keeps its seconds (and the label it was shared from, if any)."""
    shared = done["label"] if done["label"] != label else done.get("shared_with", "")
    return {"seconds": done["seconds"] if not shared else 0.0, "shared_with": shared}


def trial_data(scenario: str, suite: Suite) -> dict[str, Any] | None:
    """The data identity of the trials on `scenario` (an on-disk source is opened and fingerprinted here: walking
    DomainNet's folders takes about a minute, so `tune_suite` asks once per scenario, not once per entry)."""
    probe = CellConfig(scenario, "", "", 0, {}, dict(suite.scenario_overrides.get(scenario, {})))
    return attach_data_identity([probe])[0].data


def tune_entry(entry: StrategyEntry, suite: Suite, budget: TuneBudget, device: torch.device,
               say: Callable[[str], None] = print, recorded: dict[str, dict[str, Any]] | None = None,
               data_of: Callable[[str], dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
    """Every trial of one suite entry, as rows of the search table (the winner marked `chosen`). Trials found in
    `recorded` (by trial id, any label: a twin's rows too) are reused with `seconds` 0 and `shared_with` naming the
    row that ran, so an interrupted or widened search runs only what is missing and nothing counts twice.
    `data_of(scenario)`: the trials' data identity (default `trial_data`)."""
    label = entry.label or entry.name
    scenario = tuning_scenario(entry, suite)
    cls = STRATEGIES.get(entry.name)
    if scenario is None:
        say(f"{label}: runs on none of the suite's scenarios; not tuned")
        return []
    family = (entry.families or [cls.backbone_families[0]])[0]
    backbone = suite.backbones[family]
    rows = []
    recorded = recorded or {}
    data = data_of(scenario) if data_of else trial_data(scenario, suite)
    for trial in grid(cls, budget):
        cell = CellConfig(scenario, entry.name, backbone, budget.seed, {**entry.config, **trial},
                          dict(suite.scenario_overrides.get(scenario, {})), data=data)
        key = trial_id(cell, budget)
        base = {"label": label, "strategy": entry.name, "scenario": scenario, "backbone": backbone,
                "lr": trial["lr"], "epochs": trial["epochs"], "knobs": _knob_text(_knobs(trial))}
        if key in recorded:
            done = recorded[key]
            rows.append({**base, "val_accuracy": done["val_accuracy"], "val_loss": done["val_loss"],
                         "chosen": False, "trial_id": key, **reuse(done, label)})
            continue
        start = time.perf_counter()
        acc, loss, trainable = run_trial(cell, budget, device)
        if trainable == 0:
            say(f"{label}: trains nothing; not tuned")
            return []
        rows.append({**base, "val_accuracy": acc, "val_loss": round(loss, 4),
                     "seconds": round(time.perf_counter() - start, 2), "chosen": False, "trial_id": key,
                     "shared_with": ""})
        recorded[key] = rows[-1]
        say(f"  {label:<18} lr {trial['lr']:<8g} epochs {trial['epochs']:<3} {rows[-1]['knobs']:<28} "
            f"val {100 * acc:5.1f}% loss {loss:.3f}  ({rows[-1]['seconds']:.1f}s)")
    knobs = METHOD_KNOBS.get(cls.name)
    best = pick(rows, cls.config_cls().lr, knobs[0] if knobs else None)
    if best is not None:
        best["chosen"] = True
    return rows


# ---------------------------------------------------------------------------------------------- files
# The seq2seq rows (bench/run/tune_seq2seq.py) fill `steps` instead of `epochs`, `val_learned_score` (the score they
# are selected on: each task's val metric right after training on it, averaged), `val_final_score` (the same after
# the whole stream), `val_per_task` (the learned scores) and `val_start_per_task` (the entry's untrained start,
# which the pick counts gains from) instead of `val_accuracy` and `val_loss`; a classifier's row leaves those
# empty, and a table written before they existed reads the same (a protocol-1 seq2seq row, scored after the stream
# only, reads with val_learned_score NaN; a row without a start counts its gains from 0).
SEQ2SEQ_FIELDS = ("steps", "val_learned_score", "val_final_score", "val_per_task", "val_start_per_task")
FIELDS = ["label", "strategy", "scenario", "backbone", "lr", "epochs", "knobs", "val_accuracy", "val_loss", "seconds",
          "chosen", "trial_id", "shared_with", *SEQ2SEQ_FIELDS]


def tuning_paths(suite_path: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """`<out_dir>/<suite>.csv` (every trial) and `<out_dir>/<suite>.yaml` (protocol and chosen values); `out_dir`
    defaults to `tuning/` beside the suite (a folder of their own, never mistaken for suites)."""
    folder = Path(out_dir) if out_dir is not None else suite_path.parent / "tuning"
    return folder / f"{suite_path.stem}.csv", folder / f"{suite_path.stem}.yaml"


def default_out_dir(suite_path: Path) -> Path:
    """Where `tune` writes: beside the suite in a source checkout (the committed tables), else `./tuning` of the
    current folder: an installed package is never written to (it may be read-only, and is replaced on upgrade)."""
    suite_path = Path(suite_path).resolve()
    package = Path(__file__).resolve().parents[1]  # bench/
    inside_package = package in suite_path.parents
    checkout = (package.parent / ".git").exists()
    if inside_package and not checkout:
        return Path.cwd() / "tuning"
    return suite_path.parent / "tuning"


def read_table(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = list(csv.DictReader(path.open()))
    for row in rows:  # a seq2seq row leaves the classifiers' columns empty (epochs None, scores NaN)
        row.update(lr=float(row["lr"]), epochs=int(row["epochs"]) if row["epochs"] else None,
                   val_accuracy=float(row["val_accuracy"] or "nan"), val_loss=float(row["val_loss"] or "nan"),
                   seconds=float(row["seconds"]), chosen=row["chosen"] == "True",
                   knobs=row.get("knobs") or "", shared_with=row.get("shared_with") or "")
        if row.get("steps"):  # a seq2seq row
            row.update(steps=int(row["steps"]), val_final_score=float(row["val_final_score"]),
                       val_learned_score=float(row.get("val_learned_score") or "nan"),
                       val_per_task=row.get("val_per_task") or "",
                       val_start_per_task=row.get("val_start_per_task") or "")
        else:
            for column in SEQ2SEQ_FIELDS:
                row.pop(column, None)
    return rows


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_outputs(suite: Suite, suite_path: Path, budget: TuneBudget, rows: list[dict[str, Any]],
                  out_dir: Path | None = None) -> None:
    """Write the search table and the chosen values (labels in suite order)."""
    csv_path, yaml_path = tuning_paths(suite_path, out_dir)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    order = {(e.label or e.name): i for i, e in enumerate(suite.strategies)}
    rows = sorted(rows, key=lambda r: (order.get(r["label"], len(order)), r["knobs"], r.get("epochs") or 0,
                                       r.get("steps") or 0, r["lr"]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    blank = ("epochs", "val_accuracy", "val_loss")  # a seq2seq row's columns of the classifiers' protocol
    writer.writerows({k: "" if k in blank and r.get("steps") else r.get(k, "") for k in FIELDS} for r in rows)
    _atomic_write(csv_path, out.getvalue())
    chosen = {}
    for r in rows:
        if r["chosen"] and r.get("steps"):  # a seq2seq entry (bench/run/tune_seq2seq.py)
            chosen[r["label"]] = {"lr": r["lr"], "steps": r["steps"],
                                  "val_learned_score": round(r["val_learned_score"], 4),
                                  "val_final_score": round(r["val_final_score"], 4),
                                  "val_per_task": r["val_per_task"],
                                  "val_start_per_task": r.get("val_start_per_task", ""), "scenario": r["scenario"]}
        elif r["chosen"]:
            knobs = dict(kv.split("=", 1) for kv in r["knobs"].split()) if r["knobs"] else {}
            chosen[r["label"]] = {"lr": r["lr"], "epochs": r["epochs"], **{k: float(v) for k, v in knobs.items()},
                                  "val_accuracy": round(r["val_accuracy"], 4), "val_loss": r["val_loss"],
                                  "scenario": r["scenario"]}
    fixed = {(e.label or e.name): f for e in suite.strategies if (f := fixed_settings(e))}
    ran = [r for r in rows if not r["shared_with"]]
    doc = {"suite": suite.name, "suite_version": suite.version,
           "protocol": {"validation": f"{budget.val_fraction:.0%} of each class of the training images of the first "
                                      f"{budget.val_tasks} tasks (seed {budget.seed}), held out; each trial trains "
                                      "on the rest as a stream and is scored on all held-out images among the "
                                      "classes seen (A-GEM's protocol); test splits are never read",
                        "trial_protocol": TRIAL_PROTOCOL, "trials_per_strategy": budget.trials,
                        **dataclasses.asdict(budget),
                        "method_knobs": {k: [dict(s) for s in v] for k, v in METHOD_KNOBS.items()},
                        "lr_base": "each strategy's own default learning rate",
                        "selection": "best validation accuracy; ties to the default knob setting, then the rate "
                                     "closest to the strategy's default (log scale), then fewer epochs",
                        "twins": "a strategy that is the same computation as another (naive = full_finetune) "
                                 "shares its trials: shared_with names the row that ran; seconds count once",
                        "seq2seq": SEQ2SEQ_PROTOCOL_TEXT},
           "fixed_by_the_suite": fixed,
           "trials_run": len(ran), "trial_seconds_total": round(sum(r["seconds"] for r in ran), 1),
           "chosen": chosen}
    _atomic_write(yaml_path, "# Written by `promptshift tune`; the suite's entries carry the chosen values.\n"
                  + yaml.safe_dump(doc, sort_keys=False, width=120))


def tune_suite(suite: Suite, suite_path: Path, budget: TuneBudget, device: torch.device,
               labels: list[str] | None = None, say: Callable[[str], None] = print,
               fresh: bool = False, out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Tune the suite's entries (or only `labels`), keeping earlier rows of the others; files are rewritten after
    each entry, so an interrupted run keeps what it finished. Trials recorded with the same trial id, in `out_dir`
    or in the table committed beside the suite, are reused unless `fresh` (rerun them after a change to a
    strategy's code that the id cannot see)."""
    csv_path, _ = tuning_paths(suite_path, out_dir)
    committed, _ = tuning_paths(suite_path)
    rows = read_table(csv_path) if csv_path.exists() else read_table(committed)
    known = {} if fresh else {r["trial_id"]: r for r in read_table(committed) + rows
                              if r.get("trial_id") and not r["shared_with"]}
    data_of = functools.cache(functools.partial(trial_data, suite=suite))  # each scenario's data fingerprinted once
    for entry in suite.strategies:
        label = entry.label or entry.name
        if labels is not None and label not in labels:
            continue
        say(f"{label}: {budget.trials} trials")
        if trained_in_steps(entry.name):  # trained by bench.multimodal.loop, in steps
            new = tune_seq2seq_entry(entry, suite, budget, device, say, known, data_of)
        else:
            new = tune_entry(entry, suite, budget, device, say, known, data_of)  # adds the trials it runs to `known`
        rows = [r for r in rows if r["label"] != label] + new
        write_outputs(suite, suite_path, budget, rows, out_dir)
    return rows
