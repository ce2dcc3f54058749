"""Cells, grids and the CLI: idempotent cells, failures recorded, resume after kill -9, clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.core.store import ResultStore
from bench.run.runner import CellConfig, run_cell, run_grid
from bench.run.suite import SuiteError, expand, load_suite

ROOT = Path(__file__).resolve().parent.parent
TINY_CI = {"num_tasks": 2, "num_classes": 6, "train_per_font": 1, "test_per_font": 1}


def cell(strategy="linear_probe", **kw) -> CellConfig:
    base = dict(scenario="ci5_glyphs", strategy=strategy, backbone="vit_test_micro", seed=0,
                strategy_config={"epochs": 1}, scenario_overrides=TINY_CI)
    return CellConfig(**{**base, **kw})


def test_cell_id_follows_the_resolved_config():
    assert cell().cell_id() == cell().cell_id()
    assert cell().cell_id() != cell(seed=1).cell_id()
    # an explicit default is the same cell as an implicit one
    assert cell(strategy_config={"epochs": 1, "batch_size": 64}).cell_id() == cell().cell_id()


def test_augmentation_left_off_keeps_the_cell_id():
    assert cell(strategy_config={"epochs": 1, "augment": "none", "augment_views": 0}).cell_id() == cell().cell_id()
    assert cell(strategy_config={"epochs": 1, "augment": "shift_scale"}).cell_id() != cell().cell_id()


def test_finished_cell_is_not_rerun(tmp_path):
    first = run_cell(cell(), tmp_path, "cpu", show_progress=False)
    assert first["status"] == "ok"
    mtime = ResultStore(tmp_path).path_for(first["cell_id"]).stat().st_mtime_ns
    again = run_cell(cell(), tmp_path, "cpu", show_progress=False)
    assert again == first
    assert ResultStore(tmp_path).path_for(first["cell_id"]).stat().st_mtime_ns == mtime
    assert first["env"]["packages"]["torch"] and first["config"]["seed"] == 0
    assert (tmp_path / "logs" / f"{first['cell_id']}.log").read_text().count("finished") == 1


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path):
    bad = cell(backbone="coca_test_micro")  # a valid config that fails inside the cell: the probe needs a ViT
    records = run_grid([bad, cell()], tmp_path, "cpu", show_progress=False)
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert "runs on ('vit', 'clip') backbones" in records[0]["error"]
    assert not ResultStore(tmp_path).is_done(bad.cell_id())  # a rerun retries it


def test_unknown_config_field_is_named():
    with pytest.raises(ValueError, match="unknown field.*'epoch'"):
        cell(strategy_config={"epoch": 1}).cell_id()


def test_suite_validation_names_the_wrong_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nversion: 1\nscenarios: [ci5_glyphs]\nstrategies: [{name: linear_probe}]\nseedz: [0]\n")
    with pytest.raises(SuiteError, match="seedz"):
        load_suite(str(path))


def test_an_entry_limited_to_scenarios_outside_the_suite_is_an_error_not_a_silent_drop(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text("name: odd\nversion: 1\nscenarios: [ci5_glyphs]\n"
                    "strategies: [{name: linear_probe, scenarios: [b2n_glyphs]}]\n")
    with pytest.raises(SuiteError, match="b2n_glyphs"):
        expand(load_suite(str(path)))


def test_scenario_strategies_run_only_the_named_entries_there(tmp_path):
    path = tmp_path / "block.yaml"
    path.write_text("name: block\nversion: 1\nscenarios: [ci5_glyphs, glyphs_4shot]\n"
                    "scenario_strategies: {glyphs_4shot: [vpt_deep]}\n"
                    "strategies: [{name: linear_probe}, {name: vpt_deep}]\n")
    cells, _ = expand(load_suite(str(path)))
    assert sorted((c.scenario, c.strategy) for c in cells) == [
        ("ci5_glyphs", "linear_probe"), ("ci5_glyphs", "vpt_deep"), ("glyphs_4shot", "vpt_deep")]
    # a --scenarios filter keeps the restriction
    assert {c.strategy for c in expand(load_suite(str(path)), scenarios=["glyphs_4shot"])[0]} == {"vpt_deep"}
    path.write_text("name: block\nversion: 1\nscenarios: [ci5_glyphs]\n"
                    "scenario_strategies: {glyphs_4shot: [vpt_dep]}\nstrategies: [{name: vpt_deep}]\n")
    with pytest.raises(SuiteError, match="glyphs_4shot.*not one of the suite's scenarios.*'vpt_dep' is no strategy"):
        load_suite(str(path))


def test_default_suite_runs_only_the_low_data_block_on_glyphs_4shot():
    from bench.run.tune import tuning_scenario

    suite = load_suite("default")
    cells, _ = expand(suite, scenarios=["glyphs_4shot"])
    assert sorted({(c.strategy, c.backbone) for c in cells}) == [
        ("full_finetune", "vit_glyph_tiny"), ("linear_probe", "clip_glyph_tiny"), ("linear_probe", "vit_glyph_tiny"),
        ("vpt_deep", "vit_glyph_tiny"), ("vpt_shallow", "vit_glyph_tiny")]
    assert len(cells) == 5 * len(suite.seeds)
    # the block's entries keep the values tuned on their first scenario: no trial set for the new scenario
    block = [e for e in suite.strategies if e.name in suite.scenario_strategies["glyphs_4shot"]]
    assert {tuning_scenario(e, suite) for e in block} == {"ci5_glyphs"}


def test_unknown_names_fail_before_training():
    suite = load_suite("default")
    with pytest.raises(KeyError, match="Did you mean 'linear_probe'"):
        expand(suite, strategies=["linear_prob"])
    with pytest.raises(KeyError, match="Valid: .*ci5_glyphs"):
        expand(suite, scenarios=["ci7"])


def test_default_suite_expands_to_supported_cells_only():
    cells, skipped = expand(load_suite("default"))
    assert cells and {c.seed for c in cells} == {0, 1, 2}  # the default suite runs three seeds
    assert any("base_to_new not supported" in note for note in skipped)
    assert len({c.cell_id() for c in cells}) == len(cells)


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_bench.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, **kw)


def test_cli_list_and_unknown_strategy():
    listed = _cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert "linear_probe" in data["strategies"] and "ci5_glyphs" in data["scenarios"]
    bad = _cli("run", "--strategies", "nope", "--results", "/nonexistent/never-written")
    assert bad.returncode == 2 and "unknown strategy 'nope'" in bad.stderr
    assert not Path("/nonexistent/never-written").exists()


SMALL_SUITE = """
name: resume-test
version: 1
seeds: [0, 1]
backbones: {vit: vit_test_micro, clip: clip_test_micro}
scenarios: [ci5_glyphs]
scenario_overrides: {ci5_glyphs: {num_tasks: 2, num_classes: 6, train_per_font: 1, test_per_font: 1}}
strategies:
  - {name: linear_probe, config: {epochs: 2}}
  - {name: full_finetune, config: {epochs: 20}}
"""
# The full fine-tuning cells run after the linear probes and take ~1 s each: the kill, sent once the first result
# exists, lands while they run. With 2 epochs all four micro cells could finish within one poll (seen: 1 in 3 runs).


def test_kill_minus_nine_then_resume_gives_the_same_numbers(tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SMALL_SUITE)
    common = ["run", "--suite", str(suite), "--device", "cpu", "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_bench.py"), *common, "--results", str(killed),
                             "--leaderboards", str(tmp_path / "lb1")], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(killed.glob("*.json"))) < 1:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(list(killed.glob("*.json"))) < 4, "the run was not interrupted part-way"
    resumed = _cli(*common, "--results", str(killed), "--leaderboards", str(tmp_path / "lb1"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    # The uninterrupted reference runs in this process (the same cells; a pool worker's records equal a serial
    # run's, tests/test_executors.py): a third `run` would only pay the interpreter's and fork server's imports again.
    clean = run_grid(expand(load_suite(str(suite)))[0], tmp_path / "clean", "cpu", show_progress=False)
    assert [r["status"] for r in clean] == ["ok"] * 4
    a = {r["cell_id"]: r["metrics"] for r in ResultStore(killed).records()}
    b = {r["cell_id"]: r["metrics"] for r in ResultStore(tmp_path / "clean").records()}
    assert len(a) == 4 and a == b  # no cell lost, none duplicated, same numbers
    assert not [p for p in killed.iterdir() if p.name.startswith(".")], "a temp file was left behind"


def test_a_label_is_its_own_cell_and_an_unlabelled_cell_keeps_its_id():
    # A `label:`-only variant must reach the leaderboard as its own row, so it cannot share the plain cell's record.
    assert cell(label="probe-a").cell_id() != cell().cell_id()
    assert cell(label=cell().strategy).cell_id() == cell().cell_id()
    assert "label" not in cell().resolved()


def _suite(tmp_path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nversion: 1\nbackbones: {vit: vit_test_micro}\n" + text)
    return load_suite(str(path))


def test_the_scenarios_option_keeps_an_entrys_own_scenario_limit(tmp_path):
    suite = _suite(tmp_path, "scenarios: [ci5_glyphs, di_styles]\nstrategies:\n"
                             "  - {name: linear_probe, scenarios: [ci5_glyphs]}\n  - {name: naive}\n")
    cells, _ = expand(suite, scenarios=["di_styles"])
    assert [(c.strategy, c.scenario) for c in cells] == [("naive", "di_styles")]  # the full run never makes more


def test_a_label_only_variant_reaches_the_leaderboard_as_its_own_row(tmp_path):
    from bench.report.tables import write_tables

    suite = _suite(tmp_path, "scenarios: [ci5_glyphs]\n"
                             f"scenario_overrides: {{ci5_glyphs: {json.dumps(TINY_CI)}}}\nstrategies:\n"
                             "  - {name: linear_probe, config: {epochs: 1}}\n"
                             "  - {name: linear_probe, label: probe_b, config: {epochs: 1}}\n")
    cells, _ = expand(suite)
    assert len({c.cell_id() for c in cells}) == 2
    records = run_grid(cells, tmp_path / "r", "cpu", show_progress=False)
    write_tables(records, tmp_path / "b")
    table = (tmp_path / "b" / "ci5_glyphs.md").read_text()
    assert "| probe_b" in table and "| linear_probe" in table


def test_a_cell_claimed_by_another_run_is_waited_for_and_read_not_recomputed(tmp_path):
    import json as _json
    import shutil
    import socket
    import threading
    from dataclasses import asdict, replace

    from bench.run.cell_claims import claim_path, current_owner

    elsewhere = run_cell(cell(), tmp_path / "elsewhere", "cpu", show_progress=False)
    here = tmp_path / "here"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a live run on this host
    try:
        path = claim_path(here, elsewhere["cell_id"])
        path.parent.mkdir(parents=True)
        path.write_text(_json.dumps(asdict(replace(current_owner(), pid=owner.pid, host=socket.gethostname(),
                                                   proc_start=0.0, token="theirs"))))
        out: list = []
        grid = threading.Thread(target=lambda: out.extend(run_grid([cell()], here, "cpu", show_progress=False)))
        grid.start()
        time.sleep(2)
        assert grid.is_alive() and not (here / f"{elsewhere['cell_id']}.json").exists()  # waiting, not computing
        shutil.copy(tmp_path / "elsewhere" / f"{elsewhere['cell_id']}.json", here)  # the owner finishes
        path.unlink()
        grid.join(timeout=60)
        assert out == [elsewhere]
        assert not (here / "logs" / f"{elsewhere['cell_id']}.log").exists()  # never computed here
    finally:
        owner.kill()
        owner.wait()


def test_the_record_names_the_weights_a_cell_ran_on(tmp_path):
    import hashlib

    from safetensors.torch import save_file

    from bench.models.backbones import create_backbone

    source = create_backbone("vit_test_micro")
    path = tmp_path / "micro.safetensors"
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, str(path))
    record = run_cell(cell(weights=str(path)), tmp_path / "results", "cpu", show_progress=False)
    assert record["status"] == "ok"
    assert record["env"]["weights"] == {"backbone": "vit_test_micro", "source": "local file", "file": str(path),
                                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    embedded = run_cell(cell(backbone="vit_glyph_tiny"), tmp_path / "results", "cpu", show_progress=False)
    manifest = json.loads((Path(__file__).resolve().parents[1] / "bench" / "models" / "checkpoints_data"
                           / "MANIFEST.json").read_text())
    assert embedded["env"]["weights"]["sha256"] == manifest["vit_glyph_tiny"]["sha256"]


def test_a_records_code_version_is_dirty_for_edited_code_not_for_the_leaderboards_a_run_writes(tmp_path: Path):
    """After `make bench` writes leaderboards/ into the checkout, a later run of unchanged code must not be stamped
    "-dirty" (a rerun this way was, for the tables an earlier run had written); an edit to code must be."""
    from bench.run.runner import git_version

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "bench").mkdir()
    (tmp_path / "leaderboards").mkdir()
    for name in ("bench/cell.py", "leaderboards/claims.md", "README.md"):
        (tmp_path / name).write_text("v1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = git_version(tmp_path)
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "leaderboards/claims.md").write_text("v2\n")
    (tmp_path / "README.md").write_text("v2\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert git_version(tmp_path) == clean
    (tmp_path / "bench/cell.py").write_text("v2\n")
    assert git_version(tmp_path) == f"{clean}-dirty"
