"""Real-format presets built by the protocols, lazy on-disk images through the loader, and Split CIFAR-100 end
to end through `run --data-root` on miniature official files (vit_test_micro)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

from bench.contract import mini_data
from bench.core.data import LazyImages, TensorData, image_batches
from scenarios.catalog import build_scenario
from scenarios.protocols import class_order


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path))
    return tmp_path


def test_split_cifar100_ten_tasks_of_ten_in_the_recorded_order(root):
    mini_data.write_cifar100_binary(root, train_per_class=2, test_per_class=1)
    s = build_scenario("split_cifar100_10t", 0)
    assert len(s.steps) == 10 and s.class_order == class_order(100, 0, "seeded")
    for j, (step, ev) in enumerate(zip(s.steps, s.eval_sets)):
        assert step.classes == sorted(s.class_order[10 * j:10 * j + 10])
        assert set(step.data.labels.tolist()) == set(step.classes) and len(step.data) == 20 and len(ev.data) == 10
    assert isinstance(s.steps[0].data.images, torch.Tensor)  # 32-px arrays live in memory
    record = s.describe()
    assert record["source"]["name"] == "cifar100" and record["source"]["class_order"] == "seeded"
    pycil = build_scenario("split_cifar100_10t_pycil", 4)
    assert pycil.class_order[:5] == [68, 56, 78, 8, 23] and pycil.steps[0].classes == sorted(pycil.class_order[:10])


def test_coop_base_to_new_on_the_split_json(root):
    mini_data.write_coop_pets(root, num_classes=5, train_per_class=6)
    s = build_scenario("coop_oxford_pets_b2n", 1, shots=2)
    (step,), (base, new) = s.steps, s.eval_sets
    assert step.classes == [0, 1, 2] and (base.label_space, new.label_space) == ([0, 1, 2], [3, 4])
    assert np.bincount(step.data.labels.numpy()).tolist() == [2, 2, 2]
    assert set(new.data.labels.tolist()) == {3, 4} and len(base.data) == 6
    assert isinstance(step.data.images, LazyImages)
    assert build_scenario("coop_oxford_pets_b2n", 2, shots=2).steps[0].data.images.rows.tolist() != \
        step.data.images.rows.tolist()  # CoOp's seeds 1, 2, 3 draw different shots


def test_office_home_adaptation_hides_target_labels(root):
    mini_data.write_office_home(root, num_classes=3, per_class=2)
    s = build_scenario("office_home_art_real_world", 0)
    step = s.steps[0]
    assert (s.source_domain, s.target_domain) == ("art", "real_world")
    assert step.unlabelled.labels.tolist() == [-1] * 6 and [e.name for e in s.eval_sets] == ["source", "target"]
    assert sorted(s.eval_sets[1].data.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    paths = [s.eval_sets[1].data.images.describe(i) for i in range(6)]
    assert all("/Real World/" in p for p in paths)


def test_domainnet_domain_incremental_decodes_lazily_with_workers(root, monkeypatch):
    mini_data.write_domainnet(root, num_classes=2, per_class=2)
    s = build_scenario("domainnet_di", 0)
    assert [st.domain for st in s.steps] == list(mini_data.DOMAINNET_DOMAINS)
    data = s.eval_sets[5].data
    s.preprocess.size = 8
    direct = data.images[torch.arange(len(data))]
    assert direct.shape == (2, 3, 8, 8) and direct.dtype == torch.uint8
    monkeypatch.setenv("PROMPTSHIFT_LOADER_WORKERS", "2")
    merged = TensorData.concat([st.data for st in s.steps])  # views, nothing decoded
    assert isinstance(merged.images, LazyImages) and len(merged) == 12
    batches = list(image_batches(merged, 5))
    assert [len(b) for _, b in batches] == [5, 5, 2]
    assert torch.equal(torch.cat([b for _, b in batches]), merged.images[torch.arange(12)])
    sub = merged.subset(torch.tensor([11, 0]))
    assert torch.equal(sub.images[torch.arange(2)], merged.images[torch.tensor([11, 0])])


@pytest.fixture
def no_boards(monkeypatch):
    """The leaderboard pages (plots) are tested elsewhere and take longer than these cells: skip them here."""
    import bench.report.leaderboard as leaderboard

    monkeypatch.setattr(leaderboard, "build_leaderboards", lambda results, boards, **_: [])


def _micro_suite(tmp_path, scenarios):
    path = tmp_path / "micro_real.yaml"
    path.write_text(json.dumps({
        "name": "micro_real", "version": 1, "seeds": [0], "backbones": {"vit": "vit_test_micro"},
        "scenarios": scenarios,
        "strategies": [{"name": "linear_probe", "config": {"epochs": 3, "lr": 0.05, "batch_size": 32}}]}))
    return path


def test_run_split_cifar100_end_to_end_from_a_data_root(tmp_path, monkeypatch, no_boards):
    from bench.cli import main

    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / "unset"))  # restored after the test
    data = tmp_path / "data"
    mini_data.write_cifar100_binary(data, train_per_class=4, test_per_class=2)
    mini_data.write_imagenet_r(data, per_class=2)
    suite = _micro_suite(tmp_path, ["split_cifar100_10t", "imagenet_r_10t"])
    results, boards = tmp_path / "results", tmp_path / "boards"
    rc = main(["run", "--suite", str(suite), "--data-root", str(data), "--results", str(results),
               "--leaderboards", str(boards), "--no-progress"])
    assert rc == 0
    records = {r["config"]["scenario"]: r for r in (json.loads(p.read_text()) for p in results.glob("*.json"))}
    cifar = records["split_cifar100_10t"]
    assert cifar["status"] == "ok" and cifar["scenario"]["source"]["name"] == "cifar100"
    assert len(cifar["results"]["acc_matrix"]) == 10 and cifar["scenario"]["num_steps"] == 10
    # the classes are colours: a linear probe on a random micro ViT separates the first task well above chance
    assert cifar["results"]["acc_matrix"][0][0] > 0.3
    assert records["imagenet_r_10t"]["status"] == "ok"
    schema = json.loads((Path(__file__).resolve().parents[1] / "bench/schema/result.schema.json").read_text())
    for record in records.values():
        jsonschema.validate(record, schema)
    assert records["imagenet_r_10t"]["scenario"]["class_names"][0] == "goldfish"


def test_missing_root_or_a_corrupt_image_runs_nothing(tmp_path, monkeypatch, capsys, no_boards):
    from bench.cli import main

    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path / "nowhere"))
    suite = _micro_suite(tmp_path, ["split_cifar100_10t", "imagenet_r_10t"])
    results = tmp_path / "results"
    args = ["run", "--suite", str(suite), "--results", str(results), "--leaderboards", str(tmp_path / "b"),
            "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cifar100" in err and "cifar-100-binary" in err and "imagenet_r" in err
    assert not results.exists() or not list(results.glob("*.json"))
    data = tmp_path / "data"
    mini_data.write_cifar100_binary(data, train_per_class=1, test_per_class=1)
    tree = mini_data.write_imagenet_r(data, per_class=2)
    victim = next((tree / "n01443537").iterdir())
    victim.write_bytes(victim.read_bytes()[:30])
    # every image is decoded before any cell trains: the run is refused, naming the file, and nothing is written
    assert main(args + ["--data-root", str(data)]) == 2
    err = capsys.readouterr().err
    assert "imagenet_r: 1 image(s)" in err and victim.name in err
    assert not list(results.glob("*.json"))


def test_plan_names_missing_sources_and_weights(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("PROMPTSHIFT_DATA", str(tmp_path))
    mini_data.write_cifar100_binary(tmp_path, train_per_class=1, test_per_class=1)
    assert main(["plan", "--suite", "paper_vit_b16"]) == 2  # imagenet_r is missing: nothing would run
    out = capsys.readouterr().out
    assert "cifar100" in out and f"found in {tmp_path}" in out
    assert "imagenet_r" in out and f"missing in {tmp_path}" in out
    assert "vit_base_patch16_224.augreg_in21k" in out
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["scenarios"]
    assert listed["split_cifar100_10t"] == {**listed["split_cifar100_10t"], "source": "cifar100",
                                            "needs_root": True, "found": True}
    assert listed["imagenet_r_10t"]["found"] is False and listed["ci5_glyphs"]["needs_root"] is False


def test_replay_memory_joins_on_disk_task_data(root):
    """A replay memory comes back from avalanche as decoded tensors; it must concatenate with the next task's
    on-disk images without decoding them."""
    from bench.core.strategy import build_strategy
    from bench.core.data import TaskContext
    from bench.models.backbones import create_backbone

    mini_data.write_imagenet_r(root, per_class=2)
    s = build_scenario("imagenet_r_10t", 0)
    s.preprocess.size = 32
    replay = build_strategy("replay", create_backbone("vit_test_micro"), s.info(), {"memory_size": 10})
    first = TaskContext(0, 10, s.steps[0].classes, s.steps[0].classes, None, s.steps[0].data)
    replay.after_task(first)
    second = TaskContext(1, 10, s.steps[1].classes, s.steps[0].classes + s.steps[1].classes, None, s.steps[1].data)
    joined = replay.adapt_train_set(s.steps[1].data, second)
    assert isinstance(joined.images, LazyImages) and len(joined) == len(s.steps[1].data) + 10
    pixels = joined.images[torch.arange(len(joined))]
    assert pixels.shape[1:] == (3, 32, 32)
    assert set(joined.labels[-10:].tolist()) <= set(s.steps[0].classes)


def test_domainnet_adaptation_trains_on_train_lists_and_tests_on_test_lists(root):
    mini_data.write_domainnet(root, num_classes=2, per_class=3)
    s = build_scenario("domainnet_real_sketch", 0)
    step, (source, target) = s.steps[0], s.eval_sets
    assert len(step.data) == 4 and step.unlabelled.labels.tolist() == [-1] * 4
    paths = [target.data.images.describe(i) for i in range(len(target.data))]
    assert len(paths) == 2 and all("/sketch/" in p and p.endswith("000002.jpg") for p in paths)  # the test images
