"""Every data source on a miniature copy of its official format: class names and count, labels of given files,
split membership by the official rule, domains, and a clear error naming the file for each kind of bad input."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from bench.contract import mini_data
from scenarios.sources import DataSourceError, open_source, source_status


# ------------------------------------------------------------------------------------------------- cifar100
def test_cifar100_binary_reads_all_100_classes_and_exact_pixels(tmp_path):
    mini_data.write_cifar100_binary(tmp_path, train_per_class=2, test_per_class=1)
    src = open_source("cifar100", tmp_path)
    assert src.class_names == mini_data.cifar100_names()
    train, test = src.split("train"), src.split("test")
    assert (len(train), len(test)) == (200, 100)
    assert train.labels[:3].tolist() == [0, 1, 2] and sorted(set(train.labels.tolist())) == list(range(100))
    # record 101 is class 1's second training image: same bytes as written, planes turned into HWC
    assert np.array_equal(np.asarray(train.load(101)), mini_data.class_image(1, 1, 32, seed=1))
    assert train.describe(7).endswith("train.bin record 7")


def test_cifar100_python_version_loads_through_the_restricted_unpickler(tmp_path):
    mini_data.write_cifar100_python(tmp_path)
    src = open_source("cifar100", tmp_path)
    assert src.num_classes == 100 and len(src.split("train")) == 100
    assert np.array_equal(np.asarray(src.split("test").load(5)), mini_data.class_image(5, 0, 32))


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_cifar100_python_file_that_would_run_code_is_refused(tmp_path):
    mini_data.write_cifar100_python(tmp_path)
    with open(tmp_path / "cifar-100-python" / "train", "wb") as handle:
        pickle.dump({b"data": _RunsCode()}, handle, protocol=2)
    with pytest.raises(DataSourceError, match=r"train.*(posix|os)\.system is not allowed"):
        open_source("cifar100", tmp_path)


def test_cifar100_truncated_binary_names_the_file(tmp_path):
    folder = mini_data.write_cifar100_binary(tmp_path)
    data = (folder / "test.bin").read_bytes()
    (folder / "test.bin").write_bytes(data[:-100])
    with pytest.raises(DataSourceError, match=r"test\.bin has \d+ bytes.*truncated"):
        open_source("cifar100", tmp_path)


# ----------------------------------------------------------------------------------------------- imagenet_r
def test_imagenet_r_200_wnids_named_and_split_80_20_per_class(tmp_path):
    mini_data.write_imagenet_r(tmp_path, per_class=5)
    src = open_source("imagenet_r", tmp_path)
    assert src.num_classes == 200
    assert src.class_names[:3] == ["goldfish", "great white shark", "hammerhead"]
    train, test = src.split("train"), src.split("test")
    assert (len(train), len(test)) == (800, 200)  # 4 / 1 of every class's 5 images
    assert np.bincount(test.labels, minlength=200).tolist() == [1] * 200
    assert not set(train.paths) & set(test.paths)
    assert train.paths[0].startswith("n01443537/") and train.labels[0] == 0
    again = open_source("imagenet_r", tmp_path)  # a fixed split: the same every time
    assert again.split("test").paths == test.paths


def test_imagenet_r_wrong_wnids_and_empty_class_folder(tmp_path):
    tree = mini_data.write_imagenet_r(tmp_path, per_class=1)
    (tree / "n99999999").mkdir()
    mini_data.write_jpeg(tree / "n99999999" / "x.jpg", mini_data.class_image(0, 0, 8))
    with pytest.raises(DataSourceError, match=r"(?s)201 class folders.*n99999999"):
        open_source("imagenet_r", tmp_path)
    for f in (tree / "n99999999").iterdir():
        f.unlink()
    with pytest.raises(DataSourceError, match=r"class folder .*n99999999 holds no images"):
        open_source("imagenet_r", tmp_path)


# --------------------------------------------------------------------------------------------------- cub200
def test_cub200_official_split_labels_and_names(tmp_path):
    mini_data.write_cub200(tmp_path, num_classes=6, per_class=4)
    src = open_source("cub200", tmp_path)
    assert src.class_names[0] == "Bird Number 1" and src.num_classes == 6
    train, test = src.split("train"), src.split("test")
    assert (len(train), len(test)) == (12, 12)
    # ids 1..4 are class 1 (ids 1 and 3 in train), so train row 2 is class 2's first image
    assert train.paths[2] == "002.Bird_Number_2/Bird_Number_2_0000.jpg" and train.labels[2] == 1
    assert test.paths[0] == "001.Bird_Number_1/Bird_Number_1_0001.jpg"


def test_cub200_list_naming_a_missing_file(tmp_path):
    tree = mini_data.write_cub200(tmp_path, num_classes=2, per_class=2)
    (tree / "images" / "002.Bird_Number_2" / "Bird_Number_2_0001.jpg").unlink()
    with pytest.raises(DataSourceError, match=r"images\.txt.*Bird_Number_2_0001\.jpg.*does not exist"):
        open_source("cub200", tmp_path)


# ------------------------------------------------------------------------------------------------ domainnet
def test_domainnet_lists_give_domains_labels_and_splits(tmp_path):
    mini_data.write_domainnet(tmp_path, num_classes=4, per_class=3)
    src = open_source("domainnet", tmp_path)
    assert src.domains == list(mini_data.DOMAINNET_DOMAINS) and src.class_names[2] == "thing_2"
    train, test = src.split("train"), src.split("test")
    assert (len(train), len(test)) == (6 * 8, 6 * 4)
    assert sorted(set(test.domains)) == sorted(mini_data.DOMAINNET_DOMAINS)
    row = test.paths.index("sketch/thing_3/sketch_003_000002.jpg")
    assert test.labels[row] == 3 and test.domains[row] == "sketch"


def test_domainnet_missing_list_names_it(tmp_path):
    tree = mini_data.write_domainnet(tmp_path, num_classes=2, per_class=2)
    (tree / "quickdraw_test.txt").unlink()
    with pytest.raises(DataSourceError, match=r"quickdraw_test\.txt does not exist"):
        open_source("domainnet", tmp_path)


# ---------------------------------------------------------------------------------------------- office_home
@pytest.mark.parametrize("real_world", ["Real World", "real_world"])
def test_office_home_four_domains_either_real_world_name(tmp_path, real_world):
    mini_data.write_office_home(tmp_path, 3, 2, folders=("Art", "Clipart", "Product", real_world))
    src = open_source("office_home", tmp_path)
    records = src.split("all")
    assert src.domains == ["art", "clipart", "product", "real_world"] and src.class_names == [
        "Object_0", "Object_1", "Object_2"]  # folder names are the ids
    assert len(records) == 4 * 3 * 2 and records.domains.count("real_world") == 6


def test_office_home_missing_domain_folder(tmp_path):
    mini_data.write_office_home(tmp_path, folders=("Art", "Clipart", "Product"))
    with pytest.raises(DataSourceError, match=r"no Real World / .*folder"):
        open_source("office_home", tmp_path)


# ----------------------------------------------------------------------------------------------------- coop
def test_coop_split_json_gives_three_splits_and_names(tmp_path):
    mini_data.write_coop_pets(tmp_path, num_classes=5, train_per_class=6)
    src = open_source("coop_oxford_pets", tmp_path)
    assert src.class_names == [f"pet {c}" for c in range(5)]
    assert [len(src.split(s)) for s in ("train", "val", "test")] == [30, 10, 10]
    assert src.split("train").paths[7] == "pet_2_train_1.jpg" and src.split("train").labels[7] == 2


def test_coop_split_naming_a_missing_image(tmp_path):
    tree = mini_data.write_coop_pets(tmp_path, num_classes=2, train_per_class=2)
    (tree / "images" / "pet_1_test_0.jpg").unlink()
    with pytest.raises(DataSourceError, match=r"split_zhou_OxfordPets\.json \(test\).*pet_1_test_0\.jpg"):
        open_source("coop_oxford_pets", tmp_path)


# --------------------------------------------------------------------------------------------- image_folder
def test_image_folder_flat_and_with_domains(tmp_path):
    flat = mini_data.write_image_folder(tmp_path / "flat", per_class=5)
    src = open_source("image_folder", flat)
    assert src.class_names == ["cat", "dog", "owl"] and src.domains == []
    assert len(src.split("train")) == 12 and len(src.split("test")) == 3
    doms = mini_data.write_image_folder(tmp_path / "doms", per_class=5, domains=("photo", "sketch"))
    src = open_source("image_folder", doms)
    assert src.domains == ["photo", "sketch"] and len(src.split("test")) == 6  # 1 of 5 per (domain, class)
    test = src.split("test")
    assert sorted(zip(test.domains, test.labels.tolist())) == [(d, c) for d in ("photo", "sketch") for c in range(3)]


# ---------------------------------------------------------------------------------------------- bad inputs
def test_missing_root_names_source_and_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMPTSHIFT_DATA", raising=False)
    with pytest.raises(DataSourceError, match=r"(?s)'cifar100' needs a data root.*PROMPTSHIFT_DATA.*train\.bin"):
        open_source("cifar100")
    with pytest.raises(DataSourceError, match=r"data root .*nowhere does not exist"):
        open_source("cub200", tmp_path / "nowhere")
    with pytest.raises(DataSourceError, match=r"(?s)no CIFAR-100 files under .*expected layout"):
        open_source("cifar100", tmp_path)
    assert source_status("cifar100", tmp_path) == (False, f"missing in {tmp_path}")


def test_truncated_image_fails_on_load_naming_the_file(tmp_path):
    from bench.core.data import ImageDecodeError, LazyImages, Preprocess

    root = mini_data.write_image_folder(tmp_path, per_class=3)
    broken = root / "dog" / "1.jpg"
    broken.write_bytes(broken.read_bytes()[:40])
    records = open_source("image_folder", root).split("train")
    images = LazyImages.of(records, range(len(records)), Preprocess(size=8))
    with pytest.raises(ImageDecodeError, match=r"dog/1\.jpg"):
        images[np.arange(len(records))]


def test_embedded_glyphs_and_digits_are_sources_with_the_scenario_bytes():
    from scenarios.sources.embedded import open_digits, open_glyphs
    from scenarios.streams import _digits_data, _glyph_data

    from bench.core.seeding import derive_seed

    src = open_glyphs([3, 1, 4], "clean", train_per_font=1, test_per_font=1, seed=5)
    data = _glyph_data([3, 1, 4], "clean", 1, derive_seed(5, "train"))
    train = src.split("train")
    assert len(src.class_names) == 3 and src.domains == ["clean"]
    assert np.array_equal(train.labels, data.labels.numpy())
    assert np.array_equal(np.asarray(train.load(2)), data.images[2].permute(1, 2, 0).numpy())
    digits = open_digits(seed=0)
    assert digits.num_classes == 10 and len(digits.split("train")) + len(digits.split("test")) == 1797
    assert np.array_equal(digits.split("test").labels, _digits_data("test", 0).labels.numpy())


def test_coop_fgvc_aircraft_variant_lists(tmp_path):
    mini_data.write_fgvc_aircraft(tmp_path, per_split=2)
    src = open_source("coop_fgvc_aircraft", tmp_path)
    assert src.class_names == ["707-320", "A300B4", "Cessna 172"]  # a variant with a space stays whole
    train = src.split("train")
    assert len(train) == 6 and train.paths[2] == "1000003.jpg" and train.labels[2] == 2
    listing = tmp_path / "fgvc_aircraft" / "images_variant_test.txt"
    listing.write_text(listing.read_text() + "1009999 Boeing 999\n")
    with pytest.raises(DataSourceError, match=r"images_variant_test\.txt line 7: variant 'Boeing 999'"):
        open_source("coop_fgvc_aircraft", tmp_path)


def test_coop_imagenet_classnames_and_val_as_test(tmp_path):
    mini_data.write_coop_imagenet(tmp_path, per_class=2)
    src = open_source("coop_imagenet", tmp_path)
    assert src.class_names == ["tench", "goldfish", "great white shark"]
    test = src.split("test")
    assert len(test) == 6 and test.paths[2].startswith("val/n01443537/") and test.labels[2] == 1
