"""The SLURM route made readable: a profile file with documented defaults, the array it would submit, and a
one-line refusal where there is no SLURM.

A profile is a small YAML file (`--slurm-profile FILE`); every key is optional:

    partition: gpu          # sbatch --partition (default: the cluster's default partition)
    gpus: 1                 # GPUs per array task (default: 1 with --device cuda, else 0)
    cpus_per_task: 8        # data-loader workers decode JPEGs on these (default 8; 1 starves a GPU)
    mem_gb: 64              # memory per task (default 32)
    time_min: 240           # wall-clock limit per task, minutes (default 240); a cell that outlives it is
                            # requeued and resumes from its last checkpoint: after each task, and at epoch
                            # boundaries inside one (--checkpoint-every; bench/train/checkpoint.py)
    array_parallelism: 64   # array tasks running at once (default 64)
    max_requeues: 30        # requeues after time-outs before submitit gives up (default 30; submitit's own is 3)
    account: null           # sbatch --account
    qos: null               # sbatch --qos
    extra: {}               # any other submitit `slurm_*` parameter, without the prefix (e.g. constraint: a100)

`--slurm KEY=VALUE` on the command line overrides the profile, key by key, in the same names.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class SlurmUnavailable(ValueError):
    """There is no SLURM here (no `sbatch` on PATH, or submitit missing)."""


class SlurmProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    gpus: int | None = Field(None, ge=0)
    cpus_per_task: int = Field(8, ge=1)
    mem_gb: int = Field(32, ge=1)
    time_min: int = Field(240, ge=1)
    array_parallelism: int = Field(64, ge=1)
    max_requeues: int = Field(30, ge=0)
    account: str | None = None
    qos: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def submitit_parameters(self, device: str) -> dict[str, Any]:
        """The parameters `submitit.AutoExecutor.update_parameters` takes."""
        gpus = self.gpus if self.gpus is not None else (1 if device == "cuda" else 0)
        params: dict[str, Any] = {"timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task,
                                  "mem_gb": self.mem_gb, "slurm_array_parallelism": self.array_parallelism,
                                  "slurm_max_num_timeout": self.max_requeues, "nodes": 1, "tasks_per_node": 1}
        if gpus:
            params["gpus_per_node"] = gpus
        for key in ("partition", "account", "qos"):
            if getattr(self, key) is not None:
                params[f"slurm_{key}"] = getattr(self, key)
        params.update({f"slurm_{k}": v for k, v in self.extra.items()})
        return params


def load_profile(path: str | Path | None, overrides: dict[str, Any] | None = None) -> SlurmProfile:
    """The profile in `path` (None: the defaults) with `overrides` applied; a bad file or key is one ValueError."""
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"slurm profile {path}: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"slurm profile {path}: expected a mapping of settings")
        data = dict(loaded or {})
    data.update(overrides or {})
    try:
        return SlurmProfile.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        valid = ", ".join(SlurmProfile.model_fields)
        raise ValueError(f"slurm profile{f' {path}' if path else ''}: {where}: {first['msg']} (keys: {valid})") \
            from None


def require_slurm() -> None:
    """Raise `SlurmUnavailable` with one line when jobs cannot be submitted from here."""
    import importlib.util

    if importlib.util.find_spec("submitit") is None:
        raise SlurmUnavailable("the slurm executor needs the submitit package: pip install 'promptshift[cluster]'")
    if shutil.which("sbatch") is None:
        raise SlurmUnavailable("no SLURM here (sbatch is not on PATH): run on a login node, use --executor local, "
                               "or add --dry-run to see the array that would be submitted")


def array_script(profile: SlurmProfile, device: str, tasks: int, folder: Path | str) -> str:
    """The sbatch script submitit would write for an array of `tasks` tasks (its own template)."""
    from submitit.slurm import slurm

    params = profile.submitit_parameters(device)
    sbatch: dict[str, Any] = {"job_name": "promptshift", "time": params["timeout_min"], "nodes": 1,
                              "ntasks_per_node": 1, "cpus_per_task": params["cpus_per_task"],
                              "mem": f"{params['mem_gb']}GB", "array_parallelism": profile.array_parallelism,
                              "map_count": tasks}
    if params.get("gpus_per_node"):
        sbatch["gpus_per_node"] = params["gpus_per_node"]
    for key, value in params.items():
        if key.startswith("slurm_") and key not in ("slurm_array_parallelism", "slurm_max_num_timeout"):
            sbatch[key[len("slurm_"):]] = value
    command = "python -u -m submitit.core._submit <job folder>"
    return slurm._make_sbatch_string(command=command, folder=str(Path(folder) / "%j"), **sbatch)


def executor_parameters(profile_path: str | Path | None, overrides: dict[str, Any] | None,
                        device: str) -> dict[str, Any]:
    """submitit parameters from the profile and `--slurm KEY=VALUE` (profile keys, or raw submitit parameters such
    as `slurm_constraint`, passed through)."""
    overrides = dict(overrides or {})
    raw = {k: overrides.pop(k) for k in list(overrides) if k not in SlurmProfile.model_fields}
    return {**load_profile(profile_path, overrides).submitit_parameters(device), **raw}


MANIFEST = "submitted.json"


def write_manifest(results_dir: Path | str, job_ids: list[str], cell_ids: list[str]) -> Path:
    """What a submit-and-exit run sent, for `promptshift status` (results/submitted.json)."""
    import json

    path = Path(results_dir) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"jobs": job_ids, "cells": cell_ids}, indent=1) + "\n", encoding="utf-8")
    return path


def status_lines(results_dir: Path | str) -> list[str]:
    """Per submitted run: how many cells are done, failed, running (claimed by a live worker) or waiting."""
    import json

    from bench.core.store import ResultStore
    from bench.run.cell_claims import claim_path

    path = Path(results_dir) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path} does not exist: nothing was submitted with --no-wait into {results_dir}")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    store, counts = ResultStore(Path(results_dir)), {"ok": 0, "failed": 0, "running": 0, "waiting": 0}
    for cell_id in manifest["cells"]:
        record = store.read(cell_id)
        if record is not None:
            counts["ok" if record.get("status") == "ok" else "failed"] += 1
        elif claim_path(results_dir, cell_id).exists():
            counts["running"] += 1
        else:
            counts["waiting"] += 1
    total = len(manifest["cells"])
    return [f"jobs {', '.join(manifest['jobs'])}: {total} cells: " + ", ".join(f"{v} {k}" for k, v in counts.items()),
            "all finished: `promptshift collect` builds the leaderboards" if counts["ok"] + counts["failed"] == total
            else "not finished yet"]
