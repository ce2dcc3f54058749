"""The SLURM route (bench/run/slurm.py): profile with defaults, the array a dry run prints, one line where there
is no SLURM, submit-and-exit with `status`, and a requeued task resuming its cell from the checkpoint."""
from __future__ import annotations

import json
import shutil

import pytest

from bench.run.slurm import SlurmProfile, SlurmUnavailable, load_profile, require_slurm, status_lines

SUITE = """name: micro
version: 1
seeds: [0]
backbones: {vit: vit_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 4, train_per_font: 1, test_per_font: 1}}
strategies:
  - name: simplecil
"""


def test_profile_defaults_and_file_values(tmp_path):
    assert SlurmProfile().submitit_parameters("cuda") == {
        "timeout_min": 240, "cpus_per_task": 8, "mem_gb": 32, "slurm_array_parallelism": 64,
        "slurm_max_num_timeout": 30, "nodes": 1, "tasks_per_node": 1, "gpus_per_node": 1}
    path = tmp_path / "p.yaml"
    path.write_text("partition: gpu\ngpus: 2\ntime_min: 30\nextra: {constraint: a100}\n")
    params = load_profile(path, {"mem_gb": 64}).submitit_parameters("cpu")
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 2 and params["timeout_min"] == 30
    assert params["mem_gb"] == 64 and params["slurm_constraint"] == "a100"


def test_a_bad_profile_key_is_one_line_naming_the_keys(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("partiton: gpu\n")
    with pytest.raises(ValueError, match=r"partiton: Extra inputs are not permitted \(keys: partition, gpus"):
        load_profile(path)


def test_without_sbatch_the_slurm_executor_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SlurmUnavailable, match="no SLURM here"):
        require_slurm()
    (tmp_path / "s.yaml").write_text(SUITE)
    code = main(["run", "--suite", str(tmp_path / "s.yaml"), "--executor", "slurm", "--results",
                 str(tmp_path / "r"), "--leaderboards", str(tmp_path / "b"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no SLURM here (sbatch is not on PATH)" in err
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*.json"))


def test_dry_run_prints_the_array_without_slurm(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setattr(shutil, "which", lambda name: None)
    (tmp_path / "s.yaml").write_text(SUITE)
    (tmp_path / "p.yaml").write_text("partition: gpu\narray_parallelism: 1\n")
    assert main(["run", "--suite", str(tmp_path / "s.yaml"), "--executor", "slurm", "--dry-run",
                 "--slurm-profile", str(tmp_path / "p.yaml"), "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-0%1" in out and "#SBATCH --partition=gpu" in out and "#SBATCH --time=240" in out
    assert "#SBATCH --cpus-per-task=8" in out and "#SBATCH --mem=32GB" in out
    assert "checkpoints: " in out and "at the first epoch boundary 10 min after the last save" in out


def test_status_counts_a_submission(tmp_path):
    from bench.core.store import ResultStore
    from bench.run.slurm import write_manifest

    write_manifest(tmp_path, ["123"], ["a" * 16, "b" * 16, "c" * 16])
    ResultStore(tmp_path).write({"cell_id": "a" * 16, "status": "ok"})
    ResultStore(tmp_path).write({"cell_id": "b" * 16, "status": "failed"})
    assert status_lines(tmp_path) == ["jobs 123: 3 cells: 1 ok, 1 failed, 0 running, 1 waiting", "not finished yet"]


def test_a_requeued_task_resumes_its_cell_from_the_checkpoint(tmp_path, monkeypatch):
    """Preemption, faked: the array task is interrupted right after its cell's first checkpoint; submitit then
    calls the task's `checkpoint()` and runs the DelayedSubmission it returns (the requeue). The cell resumes
    from the checkpoint (the first task is not trained again) and ends with the uninterrupted record."""
    import strategies  # noqa: F401
    from bench.run.executors import _Chunk
    from bench.run.runner import CellConfig, CellTask
    from bench.train import checkpoint as ck
    from bench.train import harness

    cell = CellConfig("ci5_glyphs", "l2p", "vit_test_micro", 0, {"epochs": 1},
                      {"num_tasks": 3, "num_classes": 6, "train_per_font": 1, "test_per_font": 1})
    straight = CellTask(cell, str(tmp_path / "b"), "cpu")()
    original_save, trained = ck.CellCheckpoint.save, []
    original_train = harness.train_step_data

    def preempted(self, *args, **kwargs):
        original_save(self, *args, **kwargs)
        raise KeyboardInterrupt  # what submitit's signal handler leaves behind: the task stops here

    def counting(strategy, data, ctx, *args, **kwargs):
        trained.append(ctx.index)
        return original_train(strategy, data, ctx, *args, **kwargs)

    monkeypatch.setattr(harness, "train_step_data", counting)
    monkeypatch.setattr(ck.CellCheckpoint, "save", preempted)
    chunk = _Chunk([CellTask(cell, str(tmp_path / "a"), "cpu")], threads=1)
    with pytest.raises(KeyboardInterrupt):
        chunk()
    monkeypatch.setattr(ck.CellCheckpoint, "save", original_save)
    requeued = chunk.checkpoint()
    (record,) = requeued.function(*requeued.args, **requeued.kwargs)
    assert trained == [0, 1, 2]  # task 0 trained once, before the preemption; the requeue began at task 1
    assert record["status"] == "ok" and record["results"]["acc_matrix"] == straight["results"]["acc_matrix"]
    assert json.loads((tmp_path / "a" / f"{record['cell_id']}.json").read_text())["status"] == "ok"


def test_a_task_requeued_inside_a_long_task_resumes_at_the_saved_epoch(tmp_path, monkeypatch):
    """Preemption inside a task (checkpoints at every epoch boundary): the array task stops right after the
    checkpoint saved after epoch 1 of task 2; the requeue resumes there (epoch 1 of task 2 is not trained again)
    and ends with the uninterrupted record."""
    import strategies  # noqa: F401
    from bench.run.executors import _Chunk
    from bench.run.runner import CellConfig, CellTask
    from bench.train import checkpoint as ck

    cell = CellConfig("ci5_glyphs", "l2p", "vit_test_micro", 0, {"epochs": 2},
                      {"num_tasks": 3, "num_classes": 6, "train_per_font": 1, "test_per_font": 1})
    monkeypatch.setenv(ck.MINUTES_ENV, "-1")
    straight = CellTask(cell, str(tmp_path / "b"), "cpu")()
    monkeypatch.setenv(ck.MINUTES_ENV, "0")
    original_within, original_resume, resumed = ck.CellCheckpoint.save_within, ck.CellCheckpoint.resume_within, []

    def preempted(self, strategy, generators, optimizer, scheduler, position):
        original_within(self, strategy, generators, optimizer, scheduler, position)
        if position.task == 1:
            raise KeyboardInterrupt  # what submitit's signal handler leaves behind: the task stops here

    def recording(self, *args):
        where = original_resume(self, *args)
        resumed.append(where)
        return where

    monkeypatch.setattr(ck.CellCheckpoint, "save_within", preempted)
    monkeypatch.setattr(ck.CellCheckpoint, "resume_within", recording)
    chunk = _Chunk([CellTask(cell, str(tmp_path / "a"), "cpu")], threads=1)
    with pytest.raises(KeyboardInterrupt):
        chunk()
    monkeypatch.setattr(ck.CellCheckpoint, "save_within", original_within)
    resumed.clear()
    requeued = chunk.checkpoint()
    (record,) = requeued.function(*requeued.args, **requeued.kwargs)
    assert [(w.task, w.epochs) for w in resumed if w is not None] == [(1, 1)] and resumed[0] is not None
    assert record["status"] == "ok" and record["results"]["acc_matrix"] == straight["results"]["acc_matrix"]
    assert record["results"]["final_losses"] == straight["results"]["final_losses"]
