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
from test_strategy_contract import OVERRIDES  # small configs that fit the micro backbones


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
    assert "$.strategy.flags.task_id_at_test: Input should be a valid boolean (got 'no')" in text
    assert "$.results.acc_matrix[1][0]: Input should be less than or equal to 1 (got 1.5)" in text
    assert "$.config.seed: Input should be a valid integer (got 'zero')" in text
    assert "$.env: Field required" in text and "$.favourite_colour: Extra inputs are not permitted" in text
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
    monkeypatch.chdir(tmp_path)
    hostile = copy.deepcopy(runner_record)
    hostile["strategy"]["label"] = payload  # free text: refused as text (issue 22: labels have a safe charset)
    with pytest.raises(SubmissionError, match="characters a label cannot have"):
        submit(write(tmp_path, hostile), tmp_path / "results")
    hostile["strategy"]["label"] = "linear_probe"
    hostile["config"]["strategy"] = hostile["strategy"]["name"] = "not_a_registered_strategy"  # never imported
    hostile["config"]["strategy_config"] = {"__reduce__": payload, "pickle": pickle.dumps(1).hex()}
    with pytest.raises(SubmissionError, match="unknown strategy 'not_a_registered_strategy'"):
        submit(write(tmp_path, hostile), tmp_path / "results")
    hostile["config"]["strategy"] = hostile["strategy"]["name"] = "linear_probe"
    with pytest.raises(SubmissionError, match="unknown field.*__reduce__"):
        submit(write(tmp_path, hostile), tmp_path / "results")
    assert not (tmp_path / "PWNED").exists()


# ------------------------------------------------------------------------------------ hardening (issue 13)
def _cell_for(strategy: str, **kw) -> CellConfig:
    from bench.contract.check import run_kind
    from bench.contract.tiny import TEST_BACKBONES
    from bench.core.strategy import STRATEGIES

    cls = STRATEGIES.get(strategy)
    name, overrides = TINY_SCENARIOS[run_kind(cls)]
    return CellConfig(scenario=name, strategy=strategy, backbone=TEST_BACKBONES[cls.backbone_families[0]], seed=0,
                      strategy_config={"epochs": 1, **OVERRIDES.get(strategy, {})}, scenario_overrides=dict(overrides),
                      **kw)


def _every_strategy() -> list[str]:
    import strategies  # noqa: F401
    from bench.core.strategy import STRATEGIES

    return STRATEGIES.names()


@pytest.mark.parametrize("strategy", _every_strategy())
def test_submit_accepts_every_record_the_runner_writes(strategy, tmp_path):
    record = run_cell(_cell_for(strategy), tmp_path / "ran", device="cpu", show_progress=False)
    assert record["status"] == "ok", record.get("error")
    text = (tmp_path / "ran" / f"{record['cell_id']}.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: a NaN loss is stored as null
    stored = submit(write(tmp_path, json.loads(text)), tmp_path / "results")
    assert stored["strategy"]["trainable_params"] == record["strategy"]["trainable_params"]
    assert stored["strategy"]["flags"] == record["strategy"]["flags"]


def test_the_schema_file_is_generated_from_the_record_model():
    from bench.run.record import SCHEMA_PATH, schema_text

    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run `python -m bench.run.record`"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["strategy"].update(trainable_params=10**12), r"\$\.strategy\.trainable_params: claimed 1000000000000"),
    (lambda r: r["strategy"].update(backbone_params=1), r"\$\.strategy\.backbone_params: claimed 1,"),
    (lambda r: r["strategy"]["flags"].update(replay_memory=True), r"\$\.strategy\.flags: claimed"),
    (lambda r: r["strategy"].update(family="prompt"), r"\$\.strategy\.family: claimed 'prompt'"),
    (lambda r: r["strategy"].update(name="l2p"), r"\$\.strategy\.name: 'l2p' differs from \$\.config\.strategy"),
    (lambda r: r["config"].update(protocol_version=99), r"protocol_version: 99 is not this suite's protocol"),
    (lambda r: r["config"]["strategy_config"].update(epochs=-1), r"epochs: -1 must be >= 0"),
    (lambda r: r["scenario"].update(eval_sizes=[1, 1]), r"\$\.scenario\.eval_sizes: claimed \[1, 1\]"),
])
def test_claims_that_can_be_recomputed_are_recomputed(runner_record, tmp_path, edit, message):
    bad = copy.deepcopy(runner_record)
    edit(bad)
    with pytest.raises(SubmissionError, match=message):
        submit(write(tmp_path, bad), tmp_path / "results")
    assert not (tmp_path / "results").exists()


def test_resubmitting_a_config_needs_replace(runner_record, tmp_path, capsys):
    path = write(tmp_path, runner_record)
    args = ["submit", str(path), "--results", str(tmp_path / "r"), "--leaderboards", str(tmp_path / "b")]
    assert cli.main(args) == 0
    before = (tmp_path / "r" / f"{ResultStore(tmp_path / 'r').records()[0]['cell_id']}.json").read_bytes()
    assert cli.main(args) == 1
    assert "was submitted before" in capsys.readouterr().out and "--replace" in capsys.readouterr().out + "--replace"
    assert cli.main([*args, "--replace"]) == 0
    assert len(ResultStore(tmp_path / "r").records()) == 1
    assert json.loads(before)["metrics"] == ResultStore(tmp_path / "r").records()[0]["metrics"]


def test_deeply_nested_json_is_refused_cleanly(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SubmissionError, match="nested more than"):
        submit(path, tmp_path / "results")


@pytest.fixture(scope="module")
def robust_record(tmp_path_factory) -> dict:
    settings = {"subset_size": 8, "pgd_steps": 2, "autoattack": False, "corruptions": False, "eps": ["2/255"]}
    from bench.eval.robustness import robustness_hook

    record = run_cell(_cell_for("linear_probe", robustness=settings), tmp_path_factory.mktemp("rob"), device="cpu",
                      show_progress=False, after_training=robustness_hook())
    assert record["status"] == "ok", record.get("error")
    return json.loads(json.dumps(record))


def test_faked_robustness_is_refused_and_a_real_copy_stays_a_separate_row(robust_record, tmp_path):
    from bench.report.robustness_tables import write_robustness_tables

    fake = copy.deepcopy(robust_record)
    rob = fake["robustness"]
    for numbers in [rob, *rob["per_eval_set"].values()]:
        numbers["clean"] = 1.0
        numbers["pgd"] = {k: 1.0 for k in numbers["pgd"]}
        numbers["fgsm"] = {k: 1.0 for k in numbers["fgsm"]}
    if max(robust_record["results"]["acc_matrix"][-1]) < 0.5:  # a real 1.0 on 8 images would be a miracle here
        with pytest.raises(SubmissionError, match=r"clean: 1\.0 on 8 images"):
            submit(write(tmp_path, fake), tmp_path / "results")
    top_only = copy.deepcopy(robust_record)
    top_only["robustness"]["clean"] = 1.0  # the top level is recomputed from the per-set numbers
    with pytest.raises(SubmissionError, match=r"\$\.robustness\.clean: claimed 1\.0"):
        submit(write(tmp_path, top_only), tmp_path / "results")
    rising = copy.deepcopy(robust_record)
    first = next(iter(rising["robustness"]["per_eval_set"].values()))
    first["pgd"] = {k: 1.0 for k in first["pgd"]}
    first["clean"] = 0.0
    with pytest.raises(SubmissionError, match="above the accuracy at the smaller budget"):
        submit(write(tmp_path, rising), tmp_path / "results")

    stored = submit(write(tmp_path, robust_record), tmp_path / "results")
    out = tmp_path / "boards"
    write_robustness_tables([robust_record, stored], out)
    table = (out / "robustness.md").read_text()
    assert "linear_probe †submitted" in table
    rows = [line for line in table.splitlines() if line.startswith("| linear_probe")]
    assert len(rows) == 2 and all("| 1 |" in row for row in rows)  # one seed each: never averaged together
