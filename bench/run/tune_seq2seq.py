"""The tuning protocol (bench/run/tune.py) for the seq2seq entries of a suite: the multimodal task kinds' methods
(bench.multimodal.methods), trained by their own loop (bench.multimodal.loop) in steps, not epochs.

Same discipline as the classification protocol: for each seq2seq entry, the tuning scenario is the first
multimodal scenario of the suite it runs on (with the suite's `scenario_overrides`), built with the tuning seed
(`TuneBudget.seed`). Each trial trains a fresh method on the experiences' train splits as a stream, exactly as a
cell does (same batches, same per-task seeds), and scores each experience's `val` split (scenes held out of
training, built for tuning: `max(1, n_test // 2)` scenes) with its kind's official metric right after training on
that experience, and once more after the whole stream. The trial's score is `learned_score` of
`bench.run.seq2seq_metrics.summarize_multimodal` on the val splits: each task's primary metric right after training
on it, averaged. That is what the OFA-PT claims and the sanity check read (`learned_<metric>`: the paper's claims
are about transfer to a task, not about what survives the tasks after it). Protocol 1 scored the end of the stream
(`final_score`, still recorded as `val_final_score`): it rewarded a method for whatever the later tasks left of the
earlier ones (entailment training lifts VQA, so 30 steps won where VQA itself needed 60). Test splits are never
read.

The grid has `TuneBudget.trials` trials, as for every classifier: the method's own default rate (its config
class's `lr`, the method's `default_lr`) times each of `lr_factors`, crossed with `steps_seq2seq` (AdamW steps a
task). Structural settings (prompt length, depth, rank, bottleneck...) and the decoding stay as the suite sets
them. Selection is `tune.pick`'s on the trials' *selection score*: on each task, what training added to the val
metric (right after training on the task minus the entry's untrained start on it, `val_start_per_task`) as a share
of the most any trial added there, a trial that added nothing counting 0; averaged over the tasks. Each task weighs
the same: CIDEr-D runs to several units where the accuracies stop at 1, so the raw `learned_score` weighs
captioning by whatever scale its scores happen to have. The gain, not the level: a task the untrained model already
scores on (entailment: writing one answer to every hypothesis is right on a third of them) would otherwise credit a
trial that learned nothing there with that third, which is how the multimodal suite v7 picked for LoRA a rate whose
val entailment sat at its untrained level (the third rule: the first took the raw average, the second shares of
the best level). Ties to the rate closest to the default (log scale), then fewer steps. `val_learned_score` is
recorded as it was. The untrained start is scored once an entry, on the val splits, built with the tuning seed as
every trial is (neither the rate nor the steps touch the untrained model).

Trial ids name what a trial's numbers depend on (strategy, resolved config without the robustness switch, which
only adds evaluations, scenario and its overrides, backbone, the tuning seed, the data identity with the scenes'
version, `SEQ2SEQ_TRIAL_PROTOCOL`); they are
disjoint from the classifiers' ids (a different key), which stay as they were.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch

from bench.core.store import config_hash
from bench.run.cell import CellConfig
from bench.run.data_identity import trial_data_key
from bench.run.seq2seq_metrics import PRIMARY, summarize_multimodal
from bench.run.seq2seq_strategies import config_class_of, settings_and_params
from bench.run.suite import StrategyEntry, Suite, runs_on

__all__ = ["SEQ2SEQ_PROTOCOL_TEXT", "SEQ2SEQ_TRIAL_PROTOCOL", "run_seq2seq_start", "run_seq2seq_trial",
           "selection_scores", "seq2seq_fixed_settings", "seq2seq_grid", "seq2seq_trial_id",
           "seq2seq_tuning_scenario", "tune_seq2seq_entry"]

# Bump when a change alters what a seq2seq trial trains or scores (the loop, the scene data, the val splits).
# 2: scored right after training each task (learned_score), not after the stream (final_score).
SEQ2SEQ_TRIAL_PROTOCOL = 2

# The protocol as the tuning YAML states it.
SEQ2SEQ_PROTOCOL_TEXT = (
    "seq2seq entries (the multimodal task kinds): tuned on the first multimodal scenario they run on (the suite's "
    "overrides, tuning seed); each trial trains a fresh method on the train splits as a stream, as a cell does, and "
    "scores each task's val split (held-out scenes, built for tuning) with its kind's official metric right after "
    "training on it; the score is learned_score (those primary metrics averaged: what the OFA-PT claims and the "
    "sanity check read), the val score after the stream (final_score) is recorded beside it; lr = the method's "
    "default_lr times lr_factors, crossed with steps_seq2seq (AdamW steps a task); the pick: each task's val metric "
    "minus the untrained model's (scored once an entry) as a share of the largest such gain of the entry's trials on "
    "that task, a trial that gained nothing counting 0, averaged over the tasks (every task weighs the same: CIDEr-D "
    "is not on the accuracies' 0-1 scale; the gain, not the level, so a task the untrained model already scores on "
    "credits no trial that learned nothing there), then the classifiers' tie rules, steps in place of epochs; test "
    "splits are never read")

# What the trial's config hash leaves out: settings that add evaluations but change no number a trial scores.
NOT_IN_TRIAL = ("robustness",)


def seq2seq_grid(name: str, budget: Any) -> list[dict[str, Any]]:
    """The config overrides (lr, steps) of every trial of seq2seq strategy `name`, around its default rate."""
    base_lr = config_class_of(name)().lr
    rate = lambda f: float(f"{base_lr * f:.3g}")
    return [{"lr": rate(f), "steps": s} for s in budget.steps_seq2seq for f in budget.lr_factors]


def seq2seq_fixed_settings(entry: StrategyEntry) -> dict[str, Any]:
    """The settings of a seq2seq entry the tuning leaves alone: the method's own parameters (prompt length, depth,
    rank, reduction...) and the batch size."""
    settings, params = settings_and_params(config_class_of(entry.name).from_dict(dict(entry.config)).to_dict())
    return {**params, "batch_size": settings["batch_size"]}


def seq2seq_tuning_scenario(entry: StrategyEntry, suite: Suite) -> str | None:
    """The first multimodal scenario of the suite this entry runs on (None: none)."""
    from scenarios.catalog import MULTIMODAL_KINDS, SCENARIOS

    for name in suite.scenarios:
        if runs_on(suite, entry, name) and SCENARIOS.get(name).kind in MULTIMODAL_KINDS:
            return name
    return None


def seq2seq_trial_id(cell: CellConfig, budget: Any) -> str:
    """Names everything a seq2seq trial's numbers depend on, and nothing else."""
    resolved = cell.resolved()
    config = {k: v for k, v in resolved["strategy_config"].items() if k not in NOT_IN_TRIAL}
    key = {k: resolved[k] for k in ("scenario", "strategy", "backbone", "seed", "scenario_overrides", "weights")}
    return config_hash({**key, **trial_data_key(cell), "strategy_config": config,
                        "split": {"scored": "val", "seed": budget.seed},
                        "trial_protocol": f"seq2seq-{SEQ2SEQ_TRIAL_PROTOCOL}"})


def _val_score(run: Any, exp: Any) -> float:
    """Experience `exp`'s primary metric on its val split, from the model `run` holds now."""
    from bench.multimodal.loop import PRIMARY_METRIC, evaluate

    return float(evaluate(run.backbone, list(exp.val), run.decode, run.method)[PRIMARY_METRIC[exp.kind]])


def run_seq2seq_start(cell: CellConfig, budget: Any, device: torch.device) -> dict[str, float]:
    """Each experience's primary metric on its val split from the untrained model, built as a trial builds it
    (`prepare_seq2seq_run` with the tuning seed): the start every trial of the entry's grid shares."""
    from bench.run.seq2seq_cell import prepare_seq2seq_run

    run = prepare_seq2seq_run(cell, device, seed=budget.seed)
    return {exp.name: _val_score(run, exp) for exp in run.scenario.experiences}


def run_seq2seq_trial(cell: CellConfig, budget: Any, device: torch.device) -> tuple[float, dict[str, float], float]:
    """Train one configuration on the stream's train splits; return (the score: `learned_score` on the val splits,
    each task's primary metric there right after training on it, `final_score` on the val splits after the
    stream). Only `train` and `val` of an experience are read."""
    from bench.run.seq2seq_cell import prepare_seq2seq_run

    run = prepare_seq2seq_run(cell, device, seed=budget.seed)  # built and trained exactly as a cell
    experiences = run.scenario.experiences

    learned = []
    for i, exp in enumerate(experiences):
        run.train_task(i, exp)
        learned.append(_val_score(run, exp))
    last = [_val_score(run, exp) for exp in experiences]
    # the matrices a cell stores, with only the diagonal and the row after the stream: summarize_multimodal's
    # learned_score and final_score, as for a cell
    kinds = [exp.kind for exp in experiences]
    matrices: dict[str, list] = {}
    for j, kind in enumerate(kinds):
        matrix = matrices.setdefault(PRIMARY[kind], [[None] * len(kinds) for _ in kinds])
        matrix[j][j] = learned[j]
        matrix[-1][j] = last[j]
    summary = summarize_multimodal({"eval_names": [exp.name for exp in experiences], "task_kinds": kinds,
                                    "matrices": matrices})
    return (summary["learned_score"], {exp.name: v for exp, v in zip(experiences, learned)},
            summary["final_score"])


def _per_task_text(per_task: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.4g}" for name, value in per_task.items())


def _per_task(text: str) -> dict[str, float]:
    return {name: float(value) for name, value in (part.split("=") for part in text.split())}


def selection_scores(rows: list[dict[str, Any]]) -> list[float]:
    """Each trial's selection score: on each task, its val metric (`val_per_task`, read back from the text every row
    carries, so fresh and reused trials are scored alike) minus the untrained start (`val_start_per_task`; 0 where a
    row has none), as a share of the largest gain any trial made on that task, at least 0; averaged over the tasks.
    A task on which no trial gained counts 0 for every trial."""
    per_task = [_per_task(r["val_per_task"]) for r in rows]
    tasks = sorted({t for scores in per_task for t in scores})
    gains = []
    for row, scores in zip(rows, per_task):
        start = _per_task(row.get("val_start_per_task") or "")
        gains.append({t: scores.get(t, 0.0) - start.get(t, 0.0) for t in tasks})
    best = {t: max(gain[t] for gain in gains) for t in tasks}
    return [sum(max(gain[t], 0.0) / best[t] if best[t] > 0 else 0.0 for t in tasks) / len(tasks) if tasks
            else math.nan for gain in gains]


def tune_seq2seq_entry(entry: StrategyEntry, suite: Suite, budget: Any, device: torch.device,
                       say: Callable[[str], None] = print, recorded: dict[str, dict[str, Any]] | None = None,
                       data_of: Callable[[str], dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
    """Every trial of one seq2seq entry, as rows of the search table (the winner marked `chosen`); trials found in
    `recorded` (by trial id) are reused, and `data_of` gives the trials' data identity, as `tune.tune_entry` does."""
    from bench.run.seq2seq_strategies import BACKBONE_FAMILY
    from bench.run.tune import pick, reuse, trial_data  # bench.run.tune imports this module

    label = entry.label or entry.name
    scenario = seq2seq_tuning_scenario(entry, suite)
    if scenario is None:
        say(f"{label}: runs on none of the suite's multimodal scenarios; not tuned")
        return []
    backbone = suite.backbones[(entry.families or [BACKBONE_FAMILY])[0]]
    recorded = recorded if recorded is not None else {}
    rows = []
    data = data_of(scenario) if data_of else trial_data(scenario, suite)
    trials = seq2seq_grid(entry.name, budget)
    cells = [CellConfig(scenario, entry.name, backbone, budget.seed, {**entry.config, **trial},
                        dict(suite.scenario_overrides.get(scenario, {})), data=data) for trial in trials]
    start = _per_task_text(run_seq2seq_start(cells[0], budget, device))  # what selection_scores counts gains from
    say(f"  {label:<22} untrained start on val ({start})")
    for trial, cell in zip(trials, cells):
        key = seq2seq_trial_id(cell, budget)
        base = {"label": label, "strategy": entry.name, "scenario": scenario, "backbone": backbone,
                "lr": trial["lr"], "steps": trial["steps"], "knobs": "", "val_accuracy": math.nan,
                "val_loss": math.nan, "chosen": False, "trial_id": key, "val_start_per_task": start}
        if key in recorded:
            done = recorded[key]
            rows.append({**base, "val_learned_score": done["val_learned_score"],
                         "val_final_score": done["val_final_score"], "val_per_task": done["val_per_task"],
                         **reuse(done, label)})
            continue
        began = time.perf_counter()
        score, per_task, final = run_seq2seq_trial(cell, budget, device)
        rows.append({**base, "val_learned_score": score, "val_final_score": final,
                     "val_per_task": _per_task_text(per_task),
                     "seconds": round(time.perf_counter() - began, 2), "shared_with": ""})
        recorded[key] = rows[-1]
        say(f"  {label:<22} lr {trial['lr']:<8g} steps {trial['steps']:<4} val right after training {score:.3f} "
            f"({rows[-1]['val_per_task']}), after the stream {final:.3f}  ({rows[-1]['seconds']:.1f}s)")
    best = pick([{**r, "val_accuracy": score, "epochs": r["steps"]} for r, score in zip(rows, selection_scores(rows))],
                config_class_of(entry.name)().lr)
    if best is not None:
        rows[[r["trial_id"] for r in rows].index(best["trial_id"])]["chosen"] = True
    return rows
