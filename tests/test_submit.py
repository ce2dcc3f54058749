"""`run_bench.py submit`: a results file is validated, its metrics recomputed, and merged as data only."""
from __future__ import annotations

import copy
import json
import pickle

import pytest

from bench import cli
from bench.contract import plugins
from bench.contract.tiny import TINY_SCENARIOS
from bench.core.store import ResultStore
from bench.run.runner import CellConfig, run_cell
from bench.run.submit import SubmissionError, schema_problems, submit, validate


@pytest.fixture(scope="module")
def runner_record(tmp_path_factory) -> dict:
    """A real record written by bench.run.runner (the schema must accept what the suite itself writes)."""
    name, overrides = TINY_SCENARIOS["class_incremental"]
    cell = CellConfig(scenario=name, strategy="linear_probe", backbone="vit_test_micro", seed=0,
                      strategy_config={"epochs": 1}, scenario_overrides=overrides)
    record = run_cell(cell, tmp_path_factory.mktemp("ran"), device="cpu", show_progress=False)
    assert record["status"] == "ok", record.get("error")
    return json.loads(json.dumps(record))  # exactly what a file would hold


def write(tmp_path, record, name="results.json"):
    path = tmp_path / name
    path.write_text(json.dumps(record))
    return path


def test_runner_record_merges_and_shows_as_submitted(runner_record, tmp_path, capsys):
    assert schema_problems(runner_record) == []
    path = write(tmp_path, runner_record)
    args = ["submit", str(path), "--results", str(tmp_path / "results"), "--leaderboards", str(tmp_path / "boards")]
    assert cli.main(args) == 0
    assert "accepted" in capsys.readouterr().out
    [stored] = ResultStore(tmp_path / "results").records()
    assert stored["submitted"] is True and stored["cell_id"].startswith("submitted-")
    assert stored["cell_id"] != runner_record["cell_id"]  # never overwrites a cell the suite ran
    assert stored["metrics"] == runner_record["metrics"]
    scenario = runner_record["scenario"]["name"]
    assert "†submitted" in (tmp_path / "boards" / f"{scenario}.md").read_text()
    assert "†submitted" in (tmp_path / "boards" / "index.html").read_text()


def test_each_wrong_field_is_named(runner_record, tmp_path, capsys):
    bad = copy.deepcopy(runner_record)
    bad["strategy"]["flags"]["task_id_at_test"] = "no"
    bad["results"]["acc_matrix"][1][0] = 1.5
    bad["config"]["seed"] = "zero"
    del bad["env"]
    bad["favourite_colour"] = "blue"
    with pytest.raises(SubmissionError) as caught:
        validate(bad)
    text = "\n".join(caught.value.problems)
    assert "$.strategy.flags.task_id_at_test: 'no' is not of type 'boolean'" in text
    assert "$.results.acc_matrix[1][0]: 1.5 is greater than the maximum of 1" in text
    assert "$.config.seed: 'zero' is not of type 'integer'" in text
    assert "'env' is a required property" in text and "favourite_colour" in text
    assert len(caught.value.problems) == 5

    wrong_kind = copy.deepcopy(runner_record)
    wrong_kind["scenario"]["kind"] = "domain_incremental"
    with pytest.raises(SubmissionError, match=r"\$\.scenario\.kind: 'ci5_glyphs' is a class_incremental"):
        validate(wrong_kind)
    path = write(tmp_path, bad)
    assert cli.main(["submit", str(path), "--results", str(tmp_path / "r"),
                           "--leaderboards", str(tmp_path / "b")]) == 1
    assert "$.config.seed" in capsys.readouterr().out and not (tmp_path / "r").exists()


def test_claimed_metrics_that_disagree_with_the_matrix_are_rejected(runner_record, tmp_path):
    inflated = copy.deepcopy(runner_record)
    inflated["metrics"]["final_accuracy"] += 0.05
    inflated["metrics"]["top5_accuracy"] = 0.99
    with pytest.raises(SubmissionError) as caught:
        submit(write(tmp_path, inflated), tmp_path / "results")
    text = "\n".join(caught.value.problems)
    assert "$.metrics.final_accuracy: claimed" in text and "the accuracy matrix gives" in text
    assert "$.metrics.top5_accuracy: not a metric this suite computes" in text
    assert ResultStore(tmp_path / "results").records() == []

    nan = json.dumps(runner_record).replace(str(runner_record["results"]["acc_matrix"][0][0]), "NaN", 1)
    (tmp_path / "nan.json").write_text(nan)
    with pytest.raises(SubmissionError, match="NaN is not a number JSON allows"):
        submit(tmp_path / "nan.json", tmp_path / "results")


def test_nothing_from_a_submission_is_executed_or_unpickled(runner_record, tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a submission must never be executed, imported or unpickled")

    for target, name in ((pickle, "loads"), (pickle, "load"), (plugins, "load_plugin_file"),
                         (plugins, "load_plugins")):
        monkeypatch.setattr(target, name, forbidden)
    payload = "__import__('os').system('touch PWNED')"
    hostile = copy.deepcopy(runner_record)
    hostile["strategy"]["name"] = hostile["strategy"]["label"] = payload
    hostile["config"]["strategy"] = "not_a_registered_strategy"  # never looked up, never imported
    hostile["config"]["strategy_config"] = {"__reduce__": payload, "pickle": pickle.dumps(1).hex()}
    monkeypatch.chdir(tmp_path)
    stored = submit(write(tmp_path, hostile), tmp_path / "results")
    assert stored["strategy"]["name"] == payload  # kept as text
    assert not (tmp_path / "PWNED").exists()
