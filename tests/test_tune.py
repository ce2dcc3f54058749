"""The tuning protocol: same budget for every strategy, validation held out of the first tasks' training data, and
never a read of a test split."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch
import yaml

from bench.contract.tiny import TINY_SCENARIOS
from bench.core.data import EvalSet, TensorData
from bench.core.strategy import STRATEGIES
from bench.run import tune
from bench.run.seq2seq_strategies import is_seq2seq
from bench.run.suite import StrategyEntry, Suite, load_suite, suite_path
from bench.run.cell import CellConfig
from bench.run.tune import TuneBudget, carve_validation, grid, pick, trains_from_cache, tune_suite
from bench.run.tune_seq2seq import seq2seq_grid, seq2seq_trial_id, seq2seq_tuning_scenario

TRAINING_FREE = {"zeroshot_clip", "simplecil", "ranpac", "joint_ridge"}  # nothing to tune: `tune` finds nothing trainable
SMALL = TuneBudget(lr_factors=(0.3, 3.0), epochs_pixels=(1,), epochs_cached=(2,), epochs_per_image_text=(1,),
                   epochs_joint=(1,), knob_lr_factors=(0.3, 3.0), steps_seq2seq=(1,))


def tiny_suite(*entries: StrategyEntry) -> Suite:
    name, overrides = TINY_SCENARIOS["class_incremental"]
    return Suite(name="t", version=1, scenarios=[name], scenario_overrides={name: overrides},
                 backbones={"vit": "vit_test_micro", "clip": "clip_test_micro"}, strategies=list(entries))


class Poisoned:
    """Stands in for a test split's data: any use of it fails the test."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str):
        raise AssertionError(f"the tuning protocol read test split {self.name!r} ({attr})")

    def __len__(self) -> int:
        raise AssertionError(f"the tuning protocol read test split {self.name!r} (len)")


def test_tuning_never_reads_a_test_split(tmp_path, monkeypatch):
    real_prepare = tune.prepare
    trained_on: list[TensorData] = []

    def poisoned_prepare(cell):
        scenario, params, strategy = real_prepare(cell)
        # A poisoned copy: the built scenario is cached and shared with every later test that builds it.
        scenario = dataclasses.replace(
            scenario, eval_sets=[EvalSet(e.name, Poisoned(e.name), e.label_space) for e in scenario.eval_sets],
            benchmark=Poisoned("avalanche benchmark"))  # its test stream holds the same images
        trained_on.append(scenario.steps[0].data)
        return scenario, params, strategy

    monkeypatch.setattr(tune, "prepare", poisoned_prepare)
    suite = tiny_suite(StrategyEntry(name="linear_probe", families=["vit"]), StrategyEntry(name="naive"))
    rows = tune_suite(suite, tmp_path / "t.yaml", SMALL, torch.device("cpu"), say=lambda _: None)
    assert len(rows) == 2 * SMALL.trials and len(trained_on) == 2 * SMALL.trials
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in rows)


def test_validation_is_carved_per_class_from_training_data_disjoint_and_seeded():
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 2)
    data = TensorData(torch.arange(17).view(17, 1, 1, 1).to(torch.uint8), labels)
    train, val = carve_validation(data, 0.2, seed=0)
    assert sorted(val.labels.tolist()) == [0, 0, 1, 2]  # 20% of each class, at least one, one left to train on
    ids = lambda d: set(d.images.flatten().tolist())
    assert ids(train).isdisjoint(ids(val)) and ids(train) | ids(val) == set(range(17))
    again = carve_validation(data, 0.2, seed=0)[1]
    assert torch.equal(again.images, val.images)
    assert not torch.equal(carve_validation(data, 0.2, seed=1)[1].images, val.images)
    with pytest.raises(ValueError, match="cannot carve"):
        carve_validation(TensorData(torch.zeros(2, 1, 1, 1), torch.tensor([0, 1])), 0.2, 0)


def test_every_strategy_gets_the_same_budget_and_cached_ones_train_longer():
    budget = TuneBudget()
    for name in STRATEGIES.names():
        cls = STRATEGIES.get(name)
        trials = grid(cls, budget)
        assert len(trials) == budget.trials == 6, name
        base = cls.config_cls().lr
        factors = budget.knob_lr_factors if name in tune.METHOD_KNOBS else budget.lr_factors
        assert {t["lr"] for t in trials} == {float(f"{base * f:.3g}") for f in factors}, name
    assert trains_from_cache(STRATEGIES.get("linear_probe")) and trains_from_cache(STRATEGIES.get("coop"))
    assert not trains_from_cache(STRATEGIES.get("cocoop"))  # its text encoder runs per image
    assert {t["epochs"] for t in grid(STRATEGIES.get("cocoop"), budget)} == set(budget.epochs_per_image_text)
    assert not trains_from_cache(STRATEGIES.get("vpt_deep"))
    assert {t["epochs"] for t in grid(STRATEGIES.get("coop"), budget)} == set(budget.epochs_cached)
    assert {t["epochs"] for t in grid(STRATEGIES.get("joint"), budget)} == set(budget.epochs_joint)
    with pytest.raises(ValueError, match="same budget"):
        TuneBudget(epochs_pixels=(2,), epochs_cached=(10, 30), epochs_per_image_text=(1, 2))


def test_method_knobs_join_the_grid():
    budget = TuneBudget()
    ewc = grid(STRATEGIES.get("ewc"), budget)
    assert {t["ewc_lambda"] for t in ewc} == {100.0, 1000.0, 10000.0}
    lwf = grid(STRATEGIES.get("lwf"), budget)
    assert {(t["alpha"], t["temperature"]) for t in lwf} == {(1.0, 2.0), (3.0, 2.0), (1.0, 4.0)}
    # the first setting is each strategy's own default (ties go to it)
    for name, settings in tune.METHOD_KNOBS.items():
        defaults = STRATEGIES.get(name).config_cls().to_dict()
        assert all(defaults[k] == v for k, v in settings[0].items()), name
    # structural settings are fixed by the suite and stated, not tuned
    assert tune.fixed_settings(StrategyEntry(name="replay")) == {"memory_size": 200, "policy":
                                                                 tune.fixed_settings(StrategyEntry(name="replay"))["policy"]}


def test_trial_ids_ignore_the_cell_protocol_version_and_twins_share_theirs(monkeypatch):
    from bench.run import cell as cell_module  # where the cell id reads the protocol version
    from bench.run.runner import CellConfig

    cell = CellConfig("ci5_glyphs", "full_finetune", "vit_glyph_tiny", 0, {"lr": 0.01, "epochs": 4})
    key = tune.trial_id(cell, TuneBudget())
    assert tune.trial_id(CellConfig("ci5_glyphs", "naive", "vit_glyph_tiny", 0, {"lr": 0.01, "epochs": 4}),
                         TuneBudget()) == key  # naive is full fine-tuning's computation
    assert tune.trial_id(CellConfig("ci5_glyphs", "ewc", "vit_glyph_tiny", 0, {"lr": 0.01, "epochs": 4}),
                         TuneBudget()) != key
    monkeypatch.setattr(cell_module, "PROTOCOL_VERSION", cell_module.PROTOCOL_VERSION + 1)  # a result-format change
    assert tune.trial_id(cell, TuneBudget()) == key and cell.cell_id() != key
    assert tune.trial_id(cell, TuneBudget(val_tasks=3)) != key  # another split: another trial


def test_validation_holds_out_images_of_the_first_tasks():
    from bench.core.data import TrainStep

    def step(classes):
        labels = torch.tensor([c for c in classes for _ in range(10)])
        return TrainStep(TensorData(torch.zeros(len(labels), 1, 1, 1, dtype=torch.uint8), labels), list(classes))

    steps, val = tune.validation_stream([step([0, 1]), step([2, 3]), step([4, 5])], TuneBudget())
    assert len(steps) == 2 and sorted(set(val.labels.tolist())) == [0, 1, 2, 3]
    assert len(val) == 8 and all(len(s.data) == 16 for s in steps)  # 20% of 10 per class held out


def test_tune_writes_to_the_users_folder_never_into_an_installed_package(tmp_path, monkeypatch):
    from pathlib import Path as P

    package_suite = P(tune.__file__).resolve().parents[1] / "suites" / "default.yaml"
    checkout = (P(tune.__file__).resolve().parents[2] / ".git").exists()
    monkeypatch.chdir(tmp_path)
    expected = package_suite.parent / "tuning" if checkout else tmp_path / "tuning"
    assert tune.default_out_dir(package_suite) == expected
    monkeypatch.setattr(P, "exists", lambda self: False if self.name == ".git" else P.is_file(self) or P.is_dir(self))
    assert tune.default_out_dir(package_suite) == tmp_path / "tuning"  # an installed package: ./tuning
    own = tmp_path / "mine.yaml"
    assert tune.default_out_dir(own) == tmp_path / "tuning"  # a user's suite: beside it


def test_tune_says_what_each_kind_of_trial_scores():
    """A seq2seq trial scores its tasks' own val splits, not a carve of training images (the multimodal suite's
    tuning said the classifiers' protocol)."""
    from bench.cli import _validation_said

    multimodal, default = load_suite("multimodal"), load_suite("default")
    assert _validation_said(multimodal, TuneBudget.for_suite(multimodal)) == (
        "each multimodal task's own val split (seq2seq methods)")
    both = _validation_said(default, TuneBudget.for_suite(default))
    assert both == "20% of the first 2 tasks' training images (classifiers); each multimodal task's own val split " \
                   "(seq2seq methods)"


# The suites whose tuning tables are committed beside them (bench/suites/tuning/<suite>.csv/.yaml).
TUNED_SUITES = ("default", "multimodal")


def test_every_suite_with_a_committed_tuning_table_is_checked():
    folder = suite_path("default").parent / "tuning"
    assert {p.stem for p in folder.glob("*.yaml")} == set(TUNED_SUITES)
    assert {p.stem for p in folder.glob("*.csv")} == set(TUNED_SUITES)


@pytest.mark.parametrize("name", TUNED_SUITES)
def test_committed_trials_are_all_reused_on_a_fresh_clone(monkeypatch, name):
    """Every trial of a committed search table has the id the current code computes, so `tune` reruns nothing
    (the issue: 0 of 240 ids matched after a protocol bump)."""
    path = suite_path(name)
    rows = tune.read_table(tune.tuning_paths(path)[0])
    suite = load_suite(name)
    budget = TuneBudget.for_suite(suite)
    expected = set()
    for entry in suite.strategies:
        if is_seq2seq(entry.name):  # the multimodal kinds' strategies: their own grid and ids (tune_seq2seq)
            scenario = seq2seq_tuning_scenario(entry, suite)
            for trial in seq2seq_grid(entry.name, budget):
                cell = CellConfig(scenario, entry.name, suite.backbones["scene"], budget.seed,
                                  {**entry.config, **trial}, dict(suite.scenario_overrides.get(scenario, {})))
                expected.add(seq2seq_trial_id(cell, budget))
            continue
        cls = STRATEGIES.get(entry.name)
        scenario = tune.tuning_scenario(entry, suite)
        if scenario is None or cls.training_free:
            continue
        backbone = suite.backbones[(entry.families or [cls.backbone_families[0]])[0]]
        for trial in grid(cls, budget):
            cell = CellConfig(scenario, entry.name, backbone, budget.seed, {**entry.config, **trial},
                              dict(suite.scenario_overrides.get(scenario, {})))
            expected.add(tune.trial_id(cell, budget))
    assert expected <= {r["trial_id"] for r in rows}


def test_pick_prefers_accuracy_then_the_default_rate_then_fewer_epochs():
    row = lambda acc, loss, epochs, lr: {"val_accuracy": acc, "val_loss": loss, "epochs": epochs, "lr": lr}
    rows = [row(0.5, 0.1, 2, 0.1), row(0.7, 0.4, 5, 0.1), row(0.7, 0.1, 2, 1.0), row(0.7, 0.4, 2, 0.003),
            row(float("nan"), float("nan"), 1, 1.0)]
    assert pick(rows, base_lr=0.01) is rows[3]  # 0.003 is closer to 0.01 than 0.1 is, in log scale
    assert pick(rows, base_lr=0.1) is rows[1]  # the default rate, though with more epochs
    rows.append(row(0.7, 0.9, 2, 0.1))  # the default rate itself, fewer epochs
    assert pick(rows, base_lr=0.1) is rows[-1]
    rows.append(row(0.8, 2.0, 5, 1.0))  # better accuracy beats everything, however far from the default
    assert pick(rows, base_lr=0.1) is rows[-1]
    assert pick([row(float("nan"), float("nan"), 1, 1.0)], 0.1) is None


def test_tuning_files_hold_every_trial_and_the_winner(tmp_path, monkeypatch):
    suite = tiny_suite(StrategyEntry(name="linear_probe", families=["vit"]), StrategyEntry(name="zeroshot_clip"))
    tune_suite(suite, tmp_path / "t.yaml", SMALL, torch.device("cpu"), say=lambda _: None)
    table = list(csv.DictReader((tmp_path / "tuning" / "t.csv").open()))
    assert len(table) == SMALL.trials and {r["label"] for r in table} == {"linear_probe"}  # zero-shot: nothing trains
    doc = yaml.safe_load((tmp_path / "tuning" / "t.yaml").read_text())
    rows = [{**r, "lr": float(r["lr"]), "epochs": int(r["epochs"]), "val_accuracy": float(r["val_accuracy"])}
            for r in table]
    assert doc["protocol"]["val_tasks"] == SMALL.val_tasks and "fixed_by_the_suite" in doc
    best = pick(rows, STRATEGIES.get("linear_probe").config_cls().lr)
    assert [r["chosen"] for r in table].count("True") == 1
    assert (doc["chosen"]["linear_probe"]["lr"], doc["chosen"]["linear_probe"]["epochs"]) == \
        (best["lr"], best["epochs"])
    assert doc["protocol"]["trials_per_strategy"] == SMALL.trials
    # A rerun reuses the recorded trials (nothing trains again) and picks the same winner.
    real_trial = tune.run_trial

    def no_rerun(cell, *args):
        if cell.strategy == "linear_probe":
            pytest.fail("a recorded trial was run again")
        return real_trial(cell, *args)  # zero-shot: nothing recorded, found again to train nothing

    monkeypatch.setattr(tune, "run_trial", no_rerun)
    tune_suite(suite, tmp_path / "t.yaml", SMALL, torch.device("cpu"), say=lambda _: None)
    assert yaml.safe_load((tmp_path / "tuning" / "t.yaml").read_text())["chosen"] == doc["chosen"]
    monkeypatch.undo()
    # Retuning one label keeps the others' rows.
    suite.strategies.append(StrategyEntry(name="naive"))
    tune_suite(suite, tmp_path / "t.yaml", SMALL, torch.device("cpu"), labels=["naive"], say=lambda _: None)
    table = list(csv.DictReader((tmp_path / "tuning" / "t.csv").open()))
    assert {r["label"] for r in table} == {"linear_probe", "naive"}


@pytest.mark.parametrize("name", TUNED_SUITES)
def test_tuned_suites_carry_the_tuned_values(name):
    path = suite_path(name)
    doc = yaml.safe_load((path.parent / "tuning" / f"{name}.yaml").read_text())
    chosen = doc["chosen"]
    suite = load_suite(name)
    assert (doc["suite"], doc["suite_version"]) == (suite.name, suite.version)
    budget = dataclasses.asdict(TuneBudget.for_suite(suite))  # the grid the table was searched with
    assert {k: doc["protocol"][k] for k in budget} == {k: list(v) if isinstance(v, tuple) else v
                                                       for k, v in budget.items()}
    tuned = 0
    for entry in suite.strategies:
        label = entry.label or entry.name
        if label in chosen and is_seq2seq(entry.name):  # steps a task, not epochs (bench/run/tune_seq2seq.py)
            assert (entry.config.get("lr"), entry.config.get("steps")) == \
                (chosen[label]["lr"], chosen[label]["steps"]), label
            tuned += 1
        elif label in chosen:
            assert (entry.config.get("lr"), entry.config.get("epochs")) == \
                (chosen[label]["lr"], chosen[label]["epochs"]), label
            for knob in tune.METHOD_KNOBS.get(entry.name, ({},))[0]:
                assert entry.config.get(knob) == chosen[label][knob], (label, knob)
            tuned += 1
        else:  # only strategies with nothing to train are left out
            assert entry.name in TRAINING_FREE, label
    assert tuned == len([e for e in suite.strategies if e.name not in TRAINING_FREE])


def test_a_suite_sets_its_own_tuning_budget_and_a_wrong_one_is_named_before_anything_runs():
    from bench.run.suite import TUNING_FIELDS, SuiteError, check_suite

    assert set(TUNING_FIELDS) == {f.name for f in dataclasses.fields(TuneBudget)}
    suite = tiny_suite(StrategyEntry(name="linear_probe", families=["vit"]))
    assert TuneBudget.for_suite(suite) == TuneBudget()
    longer = suite.model_copy(update={"tuning": {"steps_seq2seq": [60, 120]}})
    assert TuneBudget.for_suite(longer).steps_seq2seq == (60, 120)
    assert TuneBudget.for_suite(longer).epochs_pixels == TuneBudget().epochs_pixels  # the rest as by default
    with pytest.raises(ValueError, match="same budget"):  # every grid keeps one length: one budget for all
        TuneBudget.for_suite(suite.model_copy(update={"tuning": {"steps_seq2seq": [60, 120, 240]}}))
    with pytest.raises((ValueError, SuiteError), match="steps_seq2seqq"):
        Suite.model_validate({**suite.model_dump(), "tuning": {"steps_seq2seqq": [60, 120]}})
    assert load_suite("multimodal").tuning == {"steps_seq2seq": [120, 240]}
    assert not load_suite("default").tuning
    check_suite(longer)
