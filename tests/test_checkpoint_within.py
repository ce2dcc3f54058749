"""Checkpoints inside a task (bench/train/checkpoint.py, `within` section): a cell stopped at an epoch boundary
of a task and resumed from the file ends with the matrix and losses of an uninterrupted run, bit for bit on CPU,
and the resumed optimizer and scheduler hold exactly the saved state."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from bench.core.seeding import seed_everything
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.checkpoint import MINUTES_ENV, WITHIN, CellCheckpoint, default_minutes
from bench.train.harness import run_stream

BACKBONES = {"vit": "vit_test_micro", "clip": "clip_test_micro", "coca": "coca_test_micro"}
# Trained families with per-task state: prompt pools (and their keys, task counters), PEFT, a head with
# on-the-fly augmentation (its own generator), CLIP prompts on the one base task (no task-boundary section yet),
# domain adaptation's unlabelled target batches, CoCa prefixes.
FAMILIES = [("l2p", "vit", "class_incremental", {}), ("coda_prompt", "vit", "class_incremental", {}),
            ("dualprompt", "vit", "class_incremental", {}), ("lora", "vit", "class_incremental", {}),
            ("linear_probe", "vit", "class_incremental", {"augment": "rrc_flip"}),
            ("coop", "clip", "base_to_new", {}), ("promptsrc", "clip", "base_to_new", {}),
            ("dapl", "clip", "domain_adaptation", {"n_ctx": 4, "n_dmx": 4}),
            ("ofa_prompt_coca", "coca", "class_incremental", {})]
EPOCHS = 3  # within sections after epochs 1 and 2 of every task


class Stopped(Exception):
    """Stands for the kill: raised right after a chosen `within` save reached the disk."""


def stream(tiny, name, family, kind, config, checkpoint):
    scenario = tiny(kind)
    seed_everything(0)
    backbone = create_backbone(BACKBONES[family])
    seed_everything(0)
    strategy = build_strategy(name, backbone, scenario.info(), {"epochs": EPOCHS, **config})
    return run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, show_progress=False,
                      checkpoint=checkpoint)


def stop_after_within_save(monkeypatch, count: int, saved: list | None = None) -> None:
    """Make the `count`-th `within` save the last thing the run does; `saved` gets the optimizer and scheduler
    state it wrote."""
    original = CellCheckpoint.save_within
    calls = []

    def save_then_stop(self, strategy, generators, optimizer, scheduler, position):
        original(self, strategy, generators, optimizer, scheduler, position)
        calls.append(position)
        if len(calls) == count:
            if saved is not None:
                saved.append((copy.deepcopy(optimizer.state_dict()), copy.deepcopy(scheduler.state_dict()),
                              position))
            raise Stopped
    monkeypatch.setattr(CellCheckpoint, "save_within", save_then_stop)


def same_losses(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name, family, kind, config", FAMILIES)
def test_resuming_inside_a_task_gives_the_uninterrupted_matrix(tiny, tmp_path, monkeypatch, name, family, kind,
                                                               config):
    plain = stream(tiny, name, family, kind, config, None)
    path = tmp_path / "cell.safetensors"
    tasks = len(tiny(kind).steps)
    # the last task's first within save: mid-task, after every earlier task's boundary save
    with monkeypatch.context() as patch:
        stop_after_within_save(patch, 2 * (tasks - 1) + 1)
        with pytest.raises(Stopped):
            stream(tiny, name, family, kind, config, CellCheckpoint(path, every_minutes=0))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["json"])
        keys = set(handle.keys())
    assert meta["within"]["position"]["__dict__"][:2] == [["task", tasks - 1], ["epochs", 1]]
    assert any(k.startswith(WITHIN + "optimizer") for k in keys) and WITHIN + "rng/shuffle" in keys
    resumed = stream(tiny, name, family, kind, config, CellCheckpoint(path, every_minutes=0))
    assert resumed.acc_matrix == plain.acc_matrix, name
    assert same_losses(resumed.losses, plain.losses) and resumed.initial_accuracy == plain.initial_accuracy


def test_the_resumed_optimizer_and_scheduler_hold_the_saved_state(tiny, tmp_path, monkeypatch):
    path = tmp_path / "cell.safetensors"
    saved: list = []
    with monkeypatch.context() as patch:
        stop_after_within_save(patch, 2, saved)  # task 0, after epoch 2 of 3
        with pytest.raises(Stopped):
            stream(tiny, "l2p", "vit", "class_incremental", {"optimizer": "adam"},
                   CellCheckpoint(path, every_minutes=0))
    (optimizer_state, scheduler_state, position), = saved
    assert position.task == 0 and position.epochs == 2
    restored = []
    original = CellCheckpoint.resume_within

    def capture(self, strategy, generators, optimizer, scheduler):
        where = original(self, strategy, generators, optimizer, scheduler)
        restored.append((copy.deepcopy(optimizer.state_dict()), scheduler.state_dict(), where))
        return where
    monkeypatch.setattr(CellCheckpoint, "resume_within", capture)
    stream(tiny, "l2p", "vit", "class_incremental", {"optimizer": "adam"},
                   CellCheckpoint(path, every_minutes=0))
    optimizer_after, scheduler_after, where = restored[0]  # the resumed task's replayed start
    assert where == position
    assert optimizer_after["param_groups"] == optimizer_state["param_groups"]
    assert optimizer_after["state"].keys() == optimizer_state["state"].keys() and optimizer_state["state"]
    for index, state in optimizer_state["state"].items():  # Adam: step, exp_avg, exp_avg_sq per parameter
        assert state.keys() == optimizer_after["state"][index].keys()
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(optimizer_after["state"][index][key])), key
    assert any(float(s["exp_avg"].abs().sum()) > 0 for s in optimizer_state["state"].values())  # not a fresh one
    assert scheduler_after == scheduler_state and scheduler_state["last_epoch"] > 0
    assert restored[1][2] is None  # the next task has no within section: it starts fresh


def test_no_within_save_before_the_interval_and_a_finished_task_drops_it(tiny, tmp_path, monkeypatch):
    path = tmp_path / "cell.safetensors"
    sections = []
    original = CellCheckpoint.save

    def save(self, *args):
        original(self, *args)
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as handle:
            sections.append("within" in json.loads(handle.metadata()["json"]))
    monkeypatch.setattr(CellCheckpoint, "save", save)
    within = []
    monkeypatch.setattr(CellCheckpoint, "save_within", lambda self, *a: within.append(a))
    stream(tiny, "l2p", "vit", "class_incremental", {}, CellCheckpoint(path, every_minutes=60))
    assert within == [] and sections == [False]  # 60 minutes never passed: only the task-boundary save
    monkeypatch.undo()
    monkeypatch.setattr(CellCheckpoint, "save", save)
    stream(tiny, "l2p", "vit", "class_incremental", {}, CellCheckpoint(path.with_name("b.safetensors"),
                                                                        every_minutes=0))
    assert sections == [False, False]  # the boundary save after task 0 replaced its within section


def test_the_interval_comes_from_the_environment_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.delenv(MINUTES_ENV, raising=False)
    assert default_minutes() == 10.0
    monkeypatch.setenv(MINUTES_ENV, "2.5")
    assert default_minutes() == 2.5
    monkeypatch.setenv(MINUTES_ENV, "often")
    with pytest.raises(ValueError, match=MINUTES_ENV):
        default_minutes()
