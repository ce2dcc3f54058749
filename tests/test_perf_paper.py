"""The paper-scale dry run (bench/perf_paper.py): the projection's arithmetic against hand-computed values, the
FLOP fit against a known cost model, the real split sizes, and one entry end to end on micro backbones."""
from __future__ import annotations

import csv
import math

import pytest

from bench.perf_paper import fit_step_flops, main, project_cell, real_sizes


def test_the_step_fit_recovers_a_bilinear_cost_exactly():
    def cost(b, c):  # fixed text cost per class, image cost per image, per image-and-class (CoCoOp)
        return 5.0 + 3.0 * b + 7.0 * c + 0.5 * b * c
    points = {(b, c): cost(b, c) for b in (1, 2) for c in (4, 8)}
    assert fit_step_flops(points, 32, 1000) == pytest.approx(cost(32, 1000))
    assert fit_step_flops({(1, 100): 10.0, (2, 100): 16.0}, 16, 100) == pytest.approx(10.0 + 15 * 6.0)


def test_real_sizes_follow_the_official_splits():
    assert real_sizes("split_cifar100_10t_pycil") == (50000, 10000, 100)
    assert real_sizes("imagenet_r_10t") == (24000, 6000, 200)
    assert real_sizes("coop_imagenet_b2n") == (16 * 500, 50000, 1000)
    assert real_sizes("coop_oxford_pets_b2n") == (16 * 19, 3669, 37)
    assert real_sizes("office_home_real_world_art") == (4357, 2427, 65)
    with pytest.raises(KeyError):
        real_sizes("cub200_10t")


def test_a_cell_is_projected_from_its_measurement_by_hand():
    point = {"trains": True, "epochs": 5, "recipe_batch": 16, "batch": 2, "views": 1, "cached": False,
             "train_shares": [0.1] * 10, "step_flops_1": 10e9, "step_flops_b": 16e9, "step_seconds": 2.0,
             "frozen_flops_per_image": 0.0, "frozen_seconds_per_image": 0.0, "eval_passes": 6.5,
             "eval_flops_per_image": 3e9, "eval_seconds_per_image": 0.5}
    cost = project_cell({"points": {100: point}}, "split_cifar100_10t")
    steps = 10 * 5 * math.ceil(5000 / 16)  # 313 steps an epoch
    step_flops = 10e9 + 15 * 6e9  # linear in the batch from batch 1 and 2
    assert cost.steps == steps == 15650
    assert cost.flops == pytest.approx(steps * step_flops + 6.5 * 10000 * 3e9)
    assert cost.cpu_seconds == pytest.approx(steps * 2.0 * step_flops / 16e9 + 6.5 * 10000 * 0.5)
    cached = project_cell({"points": {100: {**point, "cached": True, "views": 2, "frozen_flops_per_image": 1e9,
                                            "frozen_seconds_per_image": 0.25}}}, "split_cifar100_10t")
    assert cached.flops - cost.flops == pytest.approx((2 * 50000 + 10000) * 1e9)
    assert cached.cpu_seconds - cost.cpu_seconds == pytest.approx((2 * 50000 + 10000) * 0.25)


def test_one_entry_end_to_end_on_micro_backbones(tmp_path):
    # CoOp on CLIP: two miniatures (4 and 8 pet classes) for the class-dependent fit, each in a worker process
    assert main(["--tiny", "--suites", "paper_clip_b16", "--only", "coop_b2n_m4", "--out", str(tmp_path),
                 "--image-size", "32"]) == 0
    (row,) = list(csv.DictReader(open(tmp_path / "perf_paper_cpu.csv")))
    assert row["entry"] == "coop_b2n_m4" and row["measured_on"] == "coop_oxford_pets_b2n"
    assert int(row["cells"]) == 11 * 3 and int(row["recipe_batch"]) == 32
    assert float(row["s_per_step"]) > 0 and float(row["gflop_per_step"]) >= 0 and float(row["cpu_hours"]) > 0
    # 200 epochs x ceil(16 shots x ceil(C/2) / 32) steps, averaged over the 11 data sets
    expected = sum(200 * math.ceil(16 * math.ceil(c / 2) / 32)
                   for c in (1000, 100, 37, 196, 102, 101, 100, 397, 47, 10, 101)) / 11
    assert int(row["steps_per_cell"]) == round(expected)
    text = (tmp_path / "perf_paper_cpu.md").read_text()
    assert "ESTIMATE" in text and "| paper_clip_b16 | 0" not in text
