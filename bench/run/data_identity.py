"""The data identity of cells (scenarios/identity.py), attached before any id is computed, and the records it
supersedes.

A cell's id hashes its config, `data` included, so a rerun into the same results folder on changed data computes
a new cell instead of serving the old record. The old record is then moved to `superseded/` under the results
folder once the new one is written (kept, never deleted; the tables read only the folder's top level), so the
leaderboards never mix numbers from two versions of the data.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Iterable

from bench.core.store import ResultStore

SUPERSEDED = "superseded"


def attach_data_identity(cells: Iterable[Any]) -> list[Any]:
    """Each `CellConfig` with its `data` set (computed once per distinct source, root and open arguments)."""
    from scenarios.identity import data_identity, preset_source
    from scenarios.sources import data_root

    memo: dict[Any, dict[str, Any]] = {}
    out = []
    for cell in cells:
        if cell.data is not None:
            out.append(cell)
            continue
        opened = preset_source(cell.scenario, cell.scenario_overrides)
        # an embedded preset's identity depends on its kind (the multimodal scenes carry their own version): keyed
        # by preset, never shared between a glyph preset and a scene preset
        key = ("embedded", cell.scenario) if opened is None else (opened[0], tuple(sorted(opened[1].items())),
                                                                   str(data_root()))
        if key not in memo:
            memo[key] = data_identity(cell.scenario, cell.scenario_overrides)
        out.append(dataclasses.replace(cell, data=memo[key]))
    return out


def _without_data(config: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k != "data"}, sort_keys=True, default=str)


def retire_superseded(results_dir: Path | str, records: Iterable[dict[str, Any]]) -> list[Path]:
    """Move every stored record whose config equals a finished record's but for its `data` into `superseded/`;
    return the moved files."""
    finished = {}
    for record in records:
        if record.get("status") == "ok" and isinstance(record.get("config"), dict):
            finished[_without_data(record["config"])] = record["cell_id"]
    if not finished:
        return []
    store, moved = ResultStore(Path(results_dir)), []
    for old in store.records():
        if old.get("submitted"):
            continue  # a submission is its submitter's record, not an earlier run of ours
        key = _without_data(old.get("config") or {})
        if key in finished and finished[key] != old["cell_id"]:
            target = store.root / SUPERSEDED / f"{old['cell_id']}.json"
            target.parent.mkdir(exist_ok=True)
            os.replace(store.path_for(old["cell_id"]), target)
            moved.append(target)
    return moved


# The embedded glyph and digit generators at DATA_VERSION 2: the one identity trial keys leave unnamed, so the
# tuning trials committed before trial keys named their data keep their ids. Any other data (another generator
# version, the multimodal scenes, an on-disk root's fingerprint) is named: changed data is a new trial.
UNNAMED_TRIAL_DATA = {"source": "embedded", "data_version": 2}


def trial_data_key(cell: Any) -> dict[str, Any]:
    """What a tuning trial's key says of the data its cell reads: {"data": identity}, or {} for the unnamed one.
    The cell's `data` must be attached (`attach_data_identity`) for on-disk presets."""
    data = cell.resolved()["data"]
    return {} if data == UNNAMED_TRIAL_DATA else {"data": data}
