"""The body of a multimodal cell: a seq2seq method trained on each task of a multimodal stream in turn, every task's
test split scored with its official metric after each (bench.multimodal.loop), the matrices and their summary
returned as the parts of the cell's record (`bench.run.runner` frames it: claim, log, time limit, failure record,
write).

Same discipline as a classification cell: a pure function of its config (seeded backbone, method, batches and
decoding), the untrained start scored first, the weights a method freezes checked bit-for-bit unchanged at the
end, train / evaluation / robustness time and memory recorded, the decoding settings beside every generated metric.
"""
from __future__ import annotations

import dataclasses
import resource
import time
from dataclasses import dataclass
from typing import Any

import torch

from bench.core.seeding import derive_seed, seed_everything
from bench.core.strategy import Flags
from bench.eval.robustness_config import RobustnessConfig
from bench.run.cell import CellConfig
from bench.run.seq2seq_metrics import METRIC_KEYS, PRIMARY, summarize_multimodal
from bench.run.seq2seq_strategies import (BACKBONE_FAMILY, COCA_FAMILY, ROBUSTNESS_WHEN, SCENE_BACKBONE,
                                          config_class_of, entries, method_of, seq2seq_attacks, seq2seq_family,
                                          settings_and_params)
from scenarios.catalog import MULTIMODAL_KINDS

__all__ = ["Seq2SeqRun", "prepare_seq2seq_run", "run_seq2seq_cell", "scene_backbone"]

SAMPLE_PREDICTIONS = 3  # generated answers kept per task in the record, to read what the scores mean


def scene_backbone(backbone: str, weights: str | None, seed: int):
    """The sequence-to-sequence CoCa a cell trains, seeded: the scene tasks' (bench.multimodal.scene_model: the
    embedded pretrained checkpoint, or `weights`), or an open_clip CoCa in its BPE vocabulary
    (bench.multimodal.open_clip_coca: open_clip's pretrained weights, or `weights`)."""
    from bench.multimodal.open_clip_coca import OPEN_CLIP_COCAS, load_open_clip_coca
    from bench.multimodal.scene_model import load_scene_coca

    if seq2seq_family(backbone) is None:
        raise ValueError(f"seq2seq strategies run on the {SCENE_BACKBONE!r} backbone ({BACKBONE_FAMILY} family) or "
                         f"an open_clip CoCa ({', '.join(OPEN_CLIP_COCAS)}; {COCA_FAMILY} family), not {backbone!r}")
    seed_everything(seed)
    return load_scene_coca(weights) if backbone == SCENE_BACKBONE else load_open_clip_coca(backbone, weights)


@dataclass
class Seq2SeqRun:
    """What a multimodal cell (and a tuning trial, bench/run/tune_seq2seq.py) trains and scores: one seeded
    backbone with its method attached, the scenario's stream and the settings, built the same way for both."""

    seed: int
    settings: dict[str, Any]
    scenario: Any
    backbone: torch.nn.Module
    backbone_params: int
    method: Any
    trained: list[torch.nn.Parameter]
    decode: Any

    def task_seed(self, index: int) -> int:
        """Task `index`'s batches come from their own stream, reproducibly."""
        return self.seed * 1000 + index

    def train_task(self, index: int, experience: Any) -> None:
        """AdamW on `experience`'s train split, with the task's own seed."""
        from bench.multimodal.loop import TrainSettings, train

        settings = self.settings
        train(self.backbone, list(experience.train),
              TrainSettings(settings["steps"], settings["batch_size"], settings["lr"], self.task_seed(index)),
              self.method)


def prepare_seq2seq_run(cfg: CellConfig, device: torch.device, seed: int | None = None) -> Seq2SeqRun:
    """The config resolved (an unknown name or field raises), the scenario built, the scene backbone loaded and
    the method attached, seeded by `seed` (default: the cell's)."""
    from bench.models.backbones import count_parameters
    from bench.multimodal.methods import build_method
    from bench.multimodal.open_clip_coca import check_task_kinds
    from bench.multimodal.seq2seq import DecodeSettings
    from scenarios.catalog import build_scenario

    seed = cfg.seed if seed is None else seed
    config = config_class_of(cfg.strategy).from_dict(dict(cfg.strategy_config)).to_dict()
    settings, params = settings_and_params(config)
    scenario = build_scenario(cfg.scenario, seed, **cfg.scenario_overrides)
    if scenario.kind not in MULTIMODAL_KINDS:
        raise ValueError(f"strategy {cfg.strategy!r} runs on multimodal scenarios ({', '.join(MULTIMODAL_KINDS)}), "
                         f"not on {cfg.scenario!r} ({scenario.kind})")
    check_task_kinds(cfg.backbone, scenario.eval_kinds)  # before any weights load
    backbone = scene_backbone(cfg.backbone, cfg.weights, seed).to(device)
    backbone_params = count_parameters(backbone)
    seed_everything(seed)
    method = build_method(method_of(cfg.strategy), **params)
    trained = method.attach(backbone)
    decode = DecodeSettings(settings["beam_size"], settings["max_new_tokens"], settings["length_penalty"])
    return Seq2SeqRun(seed, settings, scenario, backbone, backbone_params, method, trained, decode)


def _frozen_snapshot(backbone: torch.nn.Module, trained: list[torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    trained_ids = {id(p) for p in trained}
    return {n: p.detach().clone() for n, p in backbone.named_parameters() if id(p) not in trained_ids}


def _check_frozen(backbone: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    changed = [n for n, p in backbone.named_parameters() if n in snapshot and not torch.equal(p, snapshot[n])]
    if changed:
        raise RuntimeError(f"{len(changed)} frozen backbone tensor(s) changed in training, e.g. {changed[0]}")


def _scores(result: dict[str, Any]) -> dict[str, float]:
    """The metrics of one evaluation under their stored names (`METRIC_KEYS`)."""
    return {stored: float(result[key]) for key, stored in METRIC_KEYS[result["kind"]].items()}


def _evaluate_all(backbone, experiences, decode, method, matrices: dict[str, list], row: int | None,
                  samples: dict[str, list[str]] | None = None) -> dict[str, list]:
    """The test splits scored: every task's for the start row (`row` None, returned), else the tasks trained so far
    (0..`row`), written into row `row` of `matrices`; a task not trained yet stays null, as in the classification
    matrices (no summary reads it, and decoding is most of a cell's time)."""
    from bench.multimodal.loop import evaluate

    start: dict[str, list] = {}
    for j, exp in enumerate(experiences):
        if row is not None and j > row:
            continue
        result = evaluate(backbone, list(exp.test), decode, method=method)
        for metric, value in _scores(result).items():
            target = start.setdefault(metric, [None] * len(experiences)) if row is None else \
                matrices.setdefault(metric, [[None] * len(experiences) for _ in experiences])[row]
            target[j] = value
        if samples is not None:
            samples[exp.name] = list(result["predictions"][:SAMPLE_PREDICTIONS])
    return start


def run_seq2seq_cell(cfg: CellConfig, device: torch.device,
                     show_progress: bool = False) -> dict[str, Any]:  # noqa: ARG001 (one line per task is logged)
    """The record parts of one multimodal cell (everything but the header the runner writes)."""
    from bench.multimodal.robustness import generation_robustness

    run = prepare_seq2seq_run(cfg, device)
    entry = entries()[cfg.strategy]
    settings, scenario, backbone, method, decode = run.settings, run.scenario, run.backbone, run.method, run.decode
    snapshot = _frozen_snapshot(backbone, run.trained)
    experiences = scenario.experiences
    matrices: dict[str, list] = {}
    timing = {"train_seconds": 0.0, "eval_seconds": 0.0}
    cpu_started = time.process_time()  # the suites' time budgets are in CPU seconds on a shared machine

    started = time.perf_counter()
    initial = _evaluate_all(backbone, experiences, decode, method, matrices, None)
    timing["eval_seconds"] += time.perf_counter() - started
    attacks = _robustness_settings(cfg, settings["robustness"])
    attacked: dict[str, Any] = {}
    train_seeds, samples = [], {}
    for i, exp in enumerate(experiences):
        train_seeds.append(run.task_seed(i))
        started = time.perf_counter()
        run.train_task(i, exp)
        timing["train_seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        _evaluate_all(backbone, experiences, decode, method, matrices, i,
                      samples if i == len(experiences) - 1 else None)
        timing["eval_seconds"] += time.perf_counter() - started
        if attacks is not None:  # ROBUSTNESS_WHEN: this task, right after training it
            started = time.perf_counter()
            attacked[exp.name] = generation_robustness(backbone, list(exp.test), attacks, decode, method,
                                                       derive_seed(cfg.seed, "robustness", exp.name))
            timing["robustness_seconds"] = timing.get("robustness_seconds", 0.0) + time.perf_counter() - started
    _check_frozen(backbone, snapshot)

    results = {"eval_names": scenario.eval_names, "task_kinds": scenario.eval_kinds,
               "primary_metric": [PRIMARY[k] for k in scenario.eval_kinds], "matrices": matrices,
               "initial": initial, "sample_predictions": samples}
    parts: dict[str, Any] = {
        "scenario": {**scenario.describe(), "spec": scenario.spec},
        "strategy": {"name": cfg.strategy, "label": cfg.label or cfg.strategy,
                     "family": entry.family, "paper": entry.paper,
                     "method": method.config, "flags": dataclasses.asdict(Flags()),  # each example alone, no task id
                     "backbone_family": seq2seq_family(cfg.backbone),
                     "trainable_params": int(method.trainable_parameter_count),
                     "backbone_params": run.backbone_params,
                     "trainable_share": method.trainable_parameter_count / run.backbone_params},
        "results": results,
        "decoding": {**decode.record(), "entailment": "candidate scoring (yes / no / maybe, likeliest taken)"},
        "training": {"optimizer": "adamw", "weight_decay": 0.0, "steps": settings["steps"],
                     "batch_size": settings["batch_size"], "lr": settings["lr"], "task_seeds": train_seeds},
        "timing": timing,
        "memory": {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "measure": "max RSS of the process that ran the cell (with what it ran before)"},
    }
    if attacks is not None:
        scope = "suite" if settings["robustness"] == "suite" else \
            "attacks (FGSM, PGD; corruptions not run for this strategy)"
        parts["robustness"] = {"per_eval_set": attacked, "settings": attacks.model_dump(mode="json"),
                               "scope": scope, "when": ROBUSTNESS_WHEN}
    timing["cpu_seconds"] = time.process_time() - cpu_started
    parts["metrics"] = summarize_multimodal(results, parts.get("robustness"))
    return parts


def _robustness_settings(cfg: CellConfig, scope: str) -> RobustnessConfig | None:
    """The attacks a cell runs on each task (bench.multimodal.robustness.generation_robustness on a seeded subset
    of its test split): the suite's `robustness:` block, without corruptions when the strategy's `robustness` is
    "attacks"; None when the suite has none or the strategy says "off"."""
    if not seq2seq_attacks(cfg.robustness, scope):
        return None
    settings = RobustnessConfig.from_dict(cfg.robustness)
    return settings if scope == "suite" else settings.model_copy(update={"corruptions": False})
