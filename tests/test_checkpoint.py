"""Checkpoints inside a cell (bench/train/checkpoint.py): a cell resumed after any task ends with the same matrix
as an uninterrupted run, in process for each strategy family and through a real `kill -9` of a worker."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.core.seeding import seed_everything
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone
from bench.train.checkpoint import CellCheckpoint
from bench.train.harness import run_stream

ROOT = Path(__file__).resolve().parents[1]
# One or two per family: task-pool prompts, regularisers, replay memory, training-free prototypes, PEFT, CLIP
# prompts, CoCa prefixes: each keeps state across tasks somewhere else.
FAMILIES = [("l2p", "vit"), ("coda_prompt", "vit"), ("dualprompt", "vit"), ("ewc", "vit"), ("lwf", "vit"),
            ("replay", "vit"), ("simplecil", "vit"), ("ranpac", "vit"), ("aper", "vit"), ("lora", "vit"),
            ("coop", "clip"), ("maple", "clip"), ("ofa_prompt_coca", "coca")]
OPAQUE = {"ewc", "lwf", "replay"}
BACKBONES = {"vit": "vit_test_micro", "clip": "clip_test_micro", "coca": "coca_test_micro"}


def stream(tiny, name: str, family: str, checkpoint: CellCheckpoint | None):
    scenario = tiny("class_incremental")
    seed_everything(0)
    backbone = create_backbone(BACKBONES[family])
    seed_everything(0)
    strategy = build_strategy(name, backbone, scenario.info(), {"epochs": 2})
    return run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, show_progress=False,
                      checkpoint=checkpoint)


def same_losses(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name, family", FAMILIES)
def test_resuming_after_a_task_gives_the_uninterrupted_matrix(tiny, tmp_path, name, family):
    plain = stream(tiny, name, family, None)
    checkpoint = CellCheckpoint(tmp_path / "cell.safetensors")
    saving = stream(tiny, name, family, checkpoint)  # saves after task 1 (of 2)
    # avalanche-lib's plugin objects (EWC, LwF, replay) cannot be saved faithfully: those cells restart instead
    assert saving.acc_matrix == plain.acc_matrix and checkpoint.path.is_file() == (name not in OPAQUE)
    resumed = stream(tiny, name, family, checkpoint)  # a fresh strategy: task 1 from the file, task 2 trained
    assert resumed.acc_matrix == plain.acc_matrix, name
    assert same_losses(resumed.losses, plain.losses) and resumed.initial_accuracy == plain.initial_accuracy


def test_a_checkpoint_holds_no_pickle_and_no_frozen_backbone(tiny, tmp_path):
    from safetensors import safe_open

    checkpoint = CellCheckpoint(tmp_path / "cell.safetensors")
    stream(tiny, "l2p", "vit", checkpoint)
    with safe_open(str(checkpoint.path), framework="pt") as handle:
        keys = list(handle.keys())
        meta = json.loads(handle.metadata()["json"])
    assert meta["progress"]["__dict__"][0] == ["done", 1]
    assert any(k.startswith("state/prompt") or "prompt" in k for k in keys)
    assert not any(k.startswith("state/backbone.") and "blocks" in k for k in keys)  # frozen: rebuilt, guarded
    assert {"rng/torch", "rng/shuffle", "rng/numpy"} <= set(keys)


# --------------------------------------------------------------------------- kill -9 in a real worker process
CELL = ("from bench.run.runner import CellConfig\n"
        "CELL = CellConfig('ci5_glyphs', 'l2p', 'vit_test_micro', 0, {'epochs': 2},\n"
        "                  {'num_tasks': 3, 'num_classes': 9, 'train_per_font': 2, 'test_per_font': 1})\n")
SCRIPT = CELL + """
import os, signal, sys
import strategies
from bench.run.runner import run_cell
from bench.train import checkpoint as ck
if sys.argv[2] == "kill":  # SIGKILL right after the first task's checkpoint is on disk: no cleanup runs
    original = ck.CellCheckpoint.save
    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    ck.CellCheckpoint.save = save_then_die
if sys.argv[2] == "kill-within":  # SIGKILL right after a checkpoint inside the second task is on disk
    original_within = ck.CellCheckpoint.save_within
    def save_within_then_die(self, *args, **kwargs):
        original_within(self, *args, **kwargs)
        if args[-1].task == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    ck.CellCheckpoint.save_within = save_within_then_die
record = run_cell(CELL, sys.argv[1], "cpu", show_progress=False)
print(record["status"], record.get("error"))
"""


def _worker(results: Path, mode: str, cache: Path, minutes: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PROMPTSHIFT_CACHE": str(cache),
           "PROMPTSHIFT_CHECKPOINT_MINUTES": minutes}
    return subprocess.run([sys.executable, "-c", SCRIPT, str(results), mode], env=env, capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def test_kill_9_mid_cell_then_resume_gives_the_uninterrupted_record(tmp_path):
    cache = tmp_path / "cache"
    killed = _worker(tmp_path / "a", "kill", cache)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not list((tmp_path / "a").glob("*.json")) and len(list((tmp_path / "a" / "checkpoints").iterdir())) == 1
    resumed = _worker(tmp_path / "a", "resume", cache)
    assert resumed.stdout.startswith("ok"), resumed.stdout + resumed.stderr[-2000:]
    straight = _worker(tmp_path / "b", "resume", cache)
    assert straight.stdout.startswith("ok"), straight.stdout + straight.stderr[-2000:]
    (a,), (b,) = ([json.loads(p.read_text()) for p in (tmp_path / d).glob("*.json")] for d in ("a", "b"))
    assert a["cell_id"] == b["cell_id"] and len(a["results"]["acc_matrix"]) == 3
    assert a["results"]["acc_matrix"] == b["results"]["acc_matrix"]
    assert a["results"]["final_losses"] == b["results"]["final_losses"]
    assert not list((tmp_path / "a" / "checkpoints").glob("*"))  # removed once the cell finished


def test_a_checkpoint_of_other_code_is_not_resumed(tiny, tmp_path):
    old = CellCheckpoint(tmp_path / "cell.safetensors", tag="abc123")
    stream(tiny, "simplecil", "vit", old)
    assert old.path.is_file()
    new = CellCheckpoint(old.path, tag="def456")
    assert new.load(build_strategy("simplecil", create_backbone("vit_test_micro"), tiny("class_incremental").info(),
                                   {}), {}) is None


def test_kill_9_inside_a_task_then_resume_gives_the_uninterrupted_record(tmp_path):
    """Checkpoints inside a task (`PROMPTSHIFT_CHECKPOINT_MINUTES=0`: at every epoch boundary): killed after epoch
    1 of task 2 of 3, the cell resumes there and its record equals a run never interrupted nor checkpointed."""
    from safetensors import safe_open

    cache = tmp_path / "cache"
    killed = _worker(tmp_path / "a", "kill-within", cache, minutes="0")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (path,) = (tmp_path / "a" / "checkpoints").iterdir()
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()["json"])
    assert meta["progress"]["__dict__"][0] == ["done", 1]  # task 1 finished; task 2 under way
    assert meta["within"]["position"]["__dict__"][:2] == [["task", 1], ["epochs", 1]]
    resumed = _worker(tmp_path / "a", "resume", cache, minutes="0")
    assert resumed.stdout.startswith("ok"), resumed.stdout + resumed.stderr[-2000:]
    straight = _worker(tmp_path / "b", "resume", cache, minutes="-1")
    assert straight.stdout.startswith("ok"), straight.stdout + straight.stderr[-2000:]
    (a,), (b,) = ([json.loads(p.read_text()) for p in (tmp_path / d).glob("*.json")] for d in ("a", "b"))
    assert a["cell_id"] == b["cell_id"] and len(a["results"]["acc_matrix"]) == 3
    assert a["results"]["acc_matrix"] == b["results"]["acc_matrix"]
    assert a["results"]["final_losses"] == b["results"]["final_losses"]
    assert not list((tmp_path / "a" / "checkpoints").glob("*"))  # removed once the cell finished
