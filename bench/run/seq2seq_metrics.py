"""The summary metrics of a multimodal cell, recomputed from its metric matrices (torch-free: the leaderboards call
it on every record they read, as `bench.eval.metrics.summarize` for the accuracy matrices).

A multimodal cell stores, for every metric its tasks report, a matrix M[i][j]: the metric on task j's test split
after training on task i (null where task j is of another kind, or not trained yet), and the untrained start row.
Each task kind has one official, primary metric (`PRIMARY`): CIDEr-D for captioning (as a fraction: 1.0 = the 100 that papers print),
VQA accuracy, entailment accuracy, referring-expression accuracy at IoU >= 0.5.

Summary keys (all means over the stream's tasks unless per kind):
- `final_score`: the primary metric of every task after the last one (the accuracy matrix's final accuracy);
- `forgetting`: primary metric right after training a task minus after the last one, over all but the last task
  (avalanche's definition), so a task kind's own scale counts; lower is better;
- `learned_score` / `initial_score`: right after training each task / before any training;
- per kind and metric m: `final_<m>`, `learned_<m>`, `initial_<m>` over that kind's tasks (e.g. `final_cider`);
- `pgd_kept_official` / `corruptions_kept_official`, when the record has generation robustness: the metric under
  PGD (mean over budgets) / under corruptions (their mean) over the clean metric on the same examples, per task
  (attacked right after training it: `ROBUSTNESS_WHEN`) then averaged (a ratio, so kinds on different scales
  average fairly; clean 0: the task is left out).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scenarios.catalog import MULTIMODAL_KINDS

__all__ = ["METRIC_KEYS", "PRIMARY", "TASK_KIND_METRICS", "summarize_multimodal", "is_multimodal_record"]

# The task kinds' official metrics, as stored (bench.multimodal.loop.evaluate's keys, entailment's renamed so every
# key names its kind's metric unambiguously).
METRIC_KEYS: dict[str, dict[str, str]] = {"caption": {"cider": "cider", "bleu4": "bleu4"},
                                          "vqa": {"vqa_accuracy": "vqa_accuracy"},
                                          "entailment": {"accuracy": "entailment_accuracy"},
                                          "grounding": {"grounding_accuracy": "grounding_accuracy"}}
# What `promptshift list` says of each task kind: its official metric(s).
TASK_KIND_METRICS: dict[str, str] = {"caption": "CIDEr-D, BLEU-4 (COCO caption evaluation)",
                                     "vqa": "VQA accuracy (official answer normalisation)",
                                     "entailment": "accuracy over yes / no / maybe",
                                     "grounding": "accuracy at IoU >= 0.5 (boxes as location tokens)"}
PRIMARY: dict[str, str] = {"caption": "cider", "vqa": "vqa_accuracy", "entailment": "entailment_accuracy",
                           "grounding": "grounding_accuracy"}


def is_multimodal_record(record: Mapping[str, Any]) -> bool:
    scenario = record.get("scenario") if isinstance(record.get("scenario"), Mapping) else {}
    config = record.get("config") if isinstance(record.get("config"), Mapping) else {}
    return scenario.get("kind") in MULTIMODAL_KINDS or str(config.get("strategy", "")).startswith("seq2seq_")


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None]
    return float(sum(values) / len(values)) if values else math.nan


def _cell(matrix: Sequence[Sequence[Any]], i: int, j: int) -> float | None:
    value = matrix[i][j]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"matrix entry [{i}][{j}] is {value!r}, not a number")
    return float(value)


def summarize_multimodal(results: Mapping[str, Any], robustness: Mapping[str, Any] | None = None
                         ) -> dict[str, float]:
    """The summary of a multimodal cell's `results` (see the module docstring); ValueError when they are
    inconsistent (a matrix of the wrong shape, a task without its primary metric)."""
    kinds = list(results["task_kinds"])
    matrices = results["matrices"]
    initial = results.get("initial") or {}
    steps, tasks = len(kinds), len(kinds)
    if steps == 0 or len(results["eval_names"]) != tasks:
        raise ValueError(f"{len(results['eval_names'])} evaluation names for {tasks} task kinds")
    for name, matrix in matrices.items():
        if len(matrix) != steps or any(len(row) != tasks for row in matrix):
            raise ValueError(f"matrix {name!r} is not {steps} x {tasks}")
    for kind in kinds:
        if kind not in PRIMARY or PRIMARY[kind] not in matrices:
            raise ValueError(f"no {PRIMARY.get(kind, '?')!r} matrix for a {kind!r} task")

    def primary(i: int, j: int) -> float | None:
        return _cell(matrices[PRIMARY[kinds[j]]], i, j)

    def start(metric: str, j: int) -> float | None:
        row = initial.get(metric)
        return _cell([row], 0, j) if row is not None and len(row) == tasks else None

    last = steps - 1
    out: dict[str, float] = {
        "final_score": _mean([primary(last, j) for j in range(tasks)]),
        "learned_score": _mean([primary(j, j) for j in range(tasks)]),
        "initial_score": _mean([start(PRIMARY[kinds[j]], j) for j in range(tasks)]),
        "forgetting": _mean([primary(j, j) - primary(last, j) for j in range(tasks - 1)
                             if primary(j, j) is not None and primary(last, j) is not None]),
    }
    for kind in dict.fromkeys(kinds):
        own = [j for j in range(tasks) if kinds[j] == kind]
        for metric in METRIC_KEYS[kind].values():
            if metric not in matrices:
                continue
            out[f"final_{metric}"] = _mean([_cell(matrices[metric], last, j) for j in own])
            out[f"learned_{metric}"] = _mean([_cell(matrices[metric], j, j) for j in own])
            out[f"initial_{metric}"] = _mean([start(metric, j) for j in own])
    for what in ("pgd", "corruptions"):
        kept = _kept(robustness, what)
        if kept is not None:
            out[f"{what}_kept_official"] = kept
    return out


def _kept(robustness: Mapping[str, Any] | None, what: str) -> float | None:
    """Mean over tasks of the metric under `what` ("pgd": mean over its budgets; "corruptions": their mean) over
    the clean metric, as bench.multimodal.robustness.generation_robustness reports them per task; None without."""
    per_task = (robustness or {}).get("per_eval_set") if isinstance(robustness, Mapping) else None
    if not isinstance(per_task, Mapping):
        return None
    ratios = []
    for entry in per_task.values():
        metric = entry.get("metric")
        clean = (entry.get("clean") or {}).get(metric)
        if what == "pgd":
            under = [v.get(metric) for v in (entry.get("pgd") or {}).values() if isinstance(v, Mapping)]
        else:
            under = [(entry.get("corruptions") or {}).get("mean")]
        under = [v for v in under if isinstance(v, (int, float))]
        if isinstance(clean, (int, float)) and clean > 0 and under:
            ratios.append(sum(under) / len(under) / clean)
    return float(sum(ratios) / len(ratios)) if ratios else None
