"""Everything checked before the first step: overrides against the builder that will use them, hidden and
AppleDouble files skipped, every image decoded once before any cell trains, the real structure in `plan`."""
from __future__ import annotations

import pytest

from scenarios.catalog import override_problems


@pytest.mark.parametrize("preset, overrides", [
    ("cub200_10t", {"order": "sorted"}), ("split_cifar100_10t", {"num_tasks": 5, "shots": 10}),
    ("coop_oxford_pets_b2n", {"shots": 4}), ("domainnet_di", {"domains": ["real", "sketch"]}),
    ("ci5_glyphs", {"num_classes": 6, "train_per_font": 1})])
def test_valid_overrides_pass(preset, overrides):
    assert override_problems(preset, overrides) == []


@pytest.mark.parametrize("preset, overrides, message", [
    ("cub200_10t", {"num_classes": 5}, "num_classes: not a parameter of 'cub200_10t'; valid: num_tasks, order, shots"),
    ("cub200_10t", {"order": "random"}, "order: 'random' is not a class order; valid: seeded, pycil, sorted"),
    ("cub200_10t", {"dataset": "cifar100"}, "dataset: not a parameter"),
    ("coop_oxford_pets_b2n", {"num_tasks": 2}, "num_tasks: not a parameter of 'coop_oxford_pets_b2n'; valid: shots"),
    ("office_home_art_clipart", {"data_root": "/x"}, "data_root: not a parameter")])
def test_invalid_overrides_name_the_valid_keys(preset, overrides, message):
    (problem,) = override_problems(preset, overrides)
    assert problem.replace(" (did you mean 'num_tasks'?)", "").startswith(message), problem


# ------------------------------------------------------------------------------ hidden files, decoding, plan
from bench.contract import mini_data  # noqa: E402
from scenarios.identity import open_with_identity  # noqa: E402
from scenarios.sources import DataSourceError, open_source  # noqa: E402


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_hidden_and_appledouble_files_are_not_images(tmp_path):
    mini_data.write_image_folder(tmp_path, classes=("car_side", "owl"), per_class=2)
    (tmp_path / "owl" / "._0.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork
    (tmp_path / "owl" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "owl" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / ".Trashes").mkdir()
    src = open_source("image_folder", tmp_path)
    listed = sorted(src.split("train").paths + src.split("test").paths)
    assert src.class_names == ["car_side", "owl"]
    assert listed == ["car_side/0.jpg", "car_side/1.jpg", "owl/0.jpg", "owl/1.jpg"]


def test_every_bad_image_is_named_before_anything_trains(tmp_path, cache):
    mini_data.write_image_folder(tmp_path / "d", classes=("a", "b", "c"), per_class=3)
    victims = [tmp_path / "d" / "a" / "2.jpg", tmp_path / "d" / "c" / "0.jpg"]
    for victim in victims:
        victim.write_bytes(victim.read_bytes()[:40])  # truncated JPEGs
    with pytest.raises(DataSourceError) as error:
        open_with_identity("image_folder", tmp_path / "d")
    message = str(error.value)
    assert "2 image(s)" in message and all(str(v) in message for v in victims)
    assert not (cache / "verified").exists() or not list((cache / "verified").iterdir())  # not remembered


def test_a_clean_pass_is_remembered_per_fingerprint(tmp_path, cache, monkeypatch):
    import scenarios.verify as verify

    mini_data.write_image_folder(tmp_path / "d", classes=("a", "b"), per_class=2)
    open_with_identity("image_folder", tmp_path / "d")
    monkeypatch.setattr(verify, "bad_images", lambda *a, **k: pytest.fail("decoded again"))
    open_with_identity("image_folder", tmp_path / "d")  # same data: nothing decoded
    mini_data.write_image_folder(tmp_path / "d", classes=("a", "b", "new_class"), per_class=2)
    with pytest.raises(pytest.fail.Exception):
        open_with_identity("image_folder", tmp_path / "d")  # other data: decoded again


def test_plan_reads_the_real_structure(tmp_path):
    from scenarios.structure import structure

    tree = mini_data.write_imagenet_r(tmp_path, per_class=2, size=4)
    ok, line = structure("imagenet_r", tmp_path)
    assert ok and line.startswith("200 classes;"), line
    import shutil

    shutil.rmtree(next(p for p in sorted(tree.iterdir()) if p.is_dir()))
    ok, line = structure("imagenet_r", tmp_path)
    assert not ok and "has 199 class folders, expected the 200" in line
    mini_data.write_cub200(tmp_path, num_classes=6, per_class=2, size=4)
    ok, line = structure("cub200", tmp_path)
    assert not ok and line.startswith("6 classes (the official release has 200); test 6 (1-1 per class); train 6")
