"""Data identity (scenarios/identity.py, bench/run/data_identity.py): changed data is a new cell, the same data
reuses its record, a cell builds its scenario from the listing cached under its fingerprint."""
from __future__ import annotations

import json

import pytest

import strategies  # noqa: F401
from bench.contract import mini_data
from bench.run.data_identity import SUPERSEDED, attach_data_identity
from bench.run.runner import CellConfig, run_grid
from scenarios import identity
from scenarios.cache import DATA_VERSION
from scenarios.catalog import build_scenario

CLASSES = ("american_bulldog", "apple_pie", "car_side", "owl", "The_Eiffel_Tower")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    mini_data.write_image_folder(tmp_path / "data", classes=CLASSES, per_class=4)
    return tmp_path / "data"


def cell(seed: int = 0) -> CellConfig:
    return CellConfig("image_folder_ci5", "simplecil", "vit_test_micro", seed)


def test_rerun_on_changed_data_recomputes_and_same_data_reuses(root, tmp_path):
    results = tmp_path / "results"
    (first,) = run_grid([cell()], results, "cpu", show_progress=False)
    assert first["status"] == "ok" and first["config"]["data"]["records"] == 20
    (again,) = run_grid([cell()], results, "cpu", show_progress=False)
    assert again["cell_id"] == first["cell_id"] and again["timing"] == first["timing"]  # read, not recomputed
    mini_data.write_image_folder(root, classes=CLASSES, per_class=8)  # twice the images
    (changed,) = run_grid([cell()], results, "cpu", show_progress=False)
    assert changed["cell_id"] != first["cell_id"] and changed["config"]["data"]["records"] == 40
    assert changed["timing"] != first["timing"]
    assert sorted(p.stem for p in results.glob("*.json")) == [changed["cell_id"]]  # tables see only the new one
    assert json.loads((results / SUPERSEDED / f"{first['cell_id']}.json").read_text())["cell_id"] == first["cell_id"]


def test_same_sizes_but_a_changed_split_list_is_other_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path))
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    mini_data.write_coop_pets(tmp_path, num_classes=4, train_per_class=3)
    before = identity.data_identity("coop_oxford_pets_b2n")
    split = tmp_path / "oxford_pets" / "split_zhou_OxfordPets.json"
    raw = json.loads(split.read_text())
    raw["train"], raw["val"] = raw["val"], raw["train"]  # the same files, listed in other splits
    split.write_text(json.dumps(raw))
    after = identity.data_identity("coop_oxford_pets_b2n")
    assert before["fingerprint"] != after["fingerprint"] and before["records"] == after["records"]


def test_same_data_under_another_root_has_the_same_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    prints = []
    for where in ("a", "b"):
        mini_data.write_image_folder(tmp_path / where, classes=CLASSES, per_class=3)
        monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / where))
        prints.append(identity.data_identity("image_folder_ci5"))
    assert prints[0]["fingerprint"] == prints[1]["fingerprint"] and prints[0]["root"] != prints[1]["root"]


def test_a_cell_builds_from_the_cached_listing_without_walking(root, monkeypatch):
    (attached,) = attach_data_identity([cell()])
    walked = build_scenario("image_folder_ci5", 0)

    def no_walk(*args, **kwargs):
        raise AssertionError("the source was opened again")

    monkeypatch.setattr(identity, "open_source", no_walk)
    listed = build_scenario("image_folder_ci5", 0, fingerprint=attached.data["fingerprint"])
    assert listed.class_names == walked.class_names == sorted(CLASSES)
    for a, b in zip(listed.steps, walked.steps):
        assert a.data.images.rows.tolist() == b.data.images.rows.tolist()
        assert a.data.labels.tolist() == b.data.labels.tolist()


def test_embedded_data_is_named_by_its_generator_version_without_reading_disk(monkeypatch):
    monkeypatch.setattr(identity, "open_source", lambda *a, **k: (_ for _ in ()).throw(AssertionError("opened")))
    (attached,) = attach_data_identity([CellConfig("ci5_glyphs", "simplecil", "vit_test_micro", 0)])
    assert attached.data == {"source": "embedded", "data_version": DATA_VERSION}
    raw = CellConfig("ci5_glyphs", "simplecil", "vit_test_micro", 0)
    assert attached.cell_id() == raw.cell_id() and raw.resolved()["data"] == attached.data


def test_glyph_and_scene_presets_in_one_grid_each_keep_their_own_identity():
    # one grid holds the glyph presets and the multimodal scenes (the default suite): each must be named by its own
    # generator, whichever comes first (the scenes' version is what retires their records when they change)
    from scenarios.multimodal import SCENES_VERSION

    glyph = CellConfig("ci5_glyphs", "simplecil", "vit_test_micro", 0)
    scene = CellConfig("mm_tasks", "seq2seq_lora", "scene_coca", 0)
    for order in ([glyph, scene], [scene, glyph]):
        attached = {c.scenario: c.data for c in attach_data_identity(order)}
        assert attached["mm_tasks"]["scenes_version"] == SCENES_VERSION
        assert attached["ci5_glyphs"] == {"source": "embedded", "data_version": DATA_VERSION}


def test_tuning_trials_name_their_data_except_the_glyph_generators_version_the_committed_trials_predate(
        root, monkeypatch):
    from bench.run.data_identity import UNNAMED_TRIAL_DATA, trial_data_key

    glyph = CellConfig("ci5_glyphs", "simplecil", "vit_test_micro", 0)
    assert glyph.resolved()["data"] == UNNAMED_TRIAL_DATA and trial_data_key(glyph) == {}
    scene = CellConfig("mm_tasks", "seq2seq_lora", "scene_coca", 0)
    assert trial_data_key(scene)["data"]["scenes_version"] >= 2
    (on_disk,) = attach_data_identity([cell()])
    first = trial_data_key(on_disk)["data"]["fingerprint"]
    mini_data.write_image_folder(root, classes=CLASSES, per_class=8)
    (changed,) = attach_data_identity([cell()])
    assert trial_data_key(changed)["data"]["fingerprint"] != first  # changed data: another trial
    from bench.run.tune import TuneBudget, trial_id

    assert trial_id(on_disk, TuneBudget()) != trial_id(changed, TuneBudget())
