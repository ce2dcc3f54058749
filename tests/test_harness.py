"""The harness: freezing, frozen-computation reuse, training augmentation, label-space masking, devices."""
from __future__ import annotations

import pytest
import torch

from bench.core.data import EvalSet, TensorData, TrainStep
from bench.core.device import select_device
from bench.core.strategy import StrategyConfig, build_strategy, mask_logits
from bench.models.backbones import create_backbone
from bench.train.harness import TrainAugment, evaluate, fill_cache, run_stream, to_pixels

AUGMENT = {"augment": "shift_scale"}


def test_frozen_part_runs_once_per_image_across_epochs_and_evaluations(tiny):
    scenario = tiny("class_incremental")
    strategy = build_strategy("linear_probe", create_backbone("vit_test_micro"), scenario.info(), {"epochs": 3})
    calls = {"images": 0}
    original = strategy.backbone.forward

    def counting_forward(x):
        calls["images"] += x.shape[0]
        return original(x)

    strategy.backbone.forward = counting_forward
    run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), seed=0, show_progress=False)
    distinct = sum(len(s.data) for s in scenario.steps) + sum(len(e.data) for e in scenario.eval_sets)
    # 3 epochs x 2 steps of training and 2 evaluation passes would be far more without the cache.
    assert calls["images"] == distinct


def probe_with_recorded_inputs(scenario, overrides: dict) -> tuple:
    """A linear probe (random backbone and head from seed 0) whose frozen part records every pixel batch."""
    torch.manual_seed(0)
    strategy = build_strategy("linear_probe", create_backbone("vit_test_micro"), scenario.info(), overrides)
    seen: list[torch.Tensor] = []
    original = strategy.backbone.forward

    def recording_forward(x):
        seen.append(x.clone())
        return original(x)

    strategy.backbone.forward = recording_forward
    return strategy, seen


def run(strategy, scenario, seed: int = 0):
    return run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), seed, show_progress=False)


@pytest.mark.parametrize("epochs", [1, 3])
def test_k_views_run_the_frozen_part_k_times_per_training_image_whatever_the_epochs(tiny, epochs):
    scenario = tiny("class_incremental")
    strategy, seen = probe_with_recorded_inputs(scenario, {**AUGMENT, "augment_views": 2, "epochs": epochs})
    run(strategy, scenario)
    train = sum(len(s.data) for s in scenario.steps)
    assert sum(len(x) for x in seen) == 2 * train + sum(len(e.data) for e in scenario.eval_sets)
    # Evaluation never augments: each evaluation set reaches the frozen part as its plain pixels.
    for eval_set in scenario.eval_sets:
        assert any(torch.equal(x, to_pixels(eval_set.data.images, torch.device("cpu"))) for x in seen)
    # Training never sees its plain pixels (no cache of the unaugmented images is built).
    for step in scenario.steps:
        plain = to_pixels(step.data.images, torch.device("cpu"))
        assert not any(x.shape == plain.shape and torch.equal(x, plain) for x in seen)


def test_views_differ_and_the_same_seed_gives_the_same_cached_views(tiny):
    scenario = tiny("class_incremental")
    data = scenario.steps[0].data
    strategy = build_strategy("linear_probe", create_backbone("vit_test_micro"), scenario.info(),
                              {**AUGMENT, "augment_views": 2})
    plain = TensorData(data.images, data.labels)
    fill_cache(strategy, plain, torch.device("cpu"))

    def views(seed: int) -> list[torch.Tensor]:
        augmenter = TrainAugment.for_strategy(strategy, seed)
        return [v.cached for v in augmenter.frozen_views(strategy, data, torch.device("cpu"))]

    first, second = views(0)
    assert first.shape == second.shape == plain.cached.shape
    assert not torch.equal(first, second)
    assert not torch.equal(first, plain.cached) and not torch.equal(second, plain.cached)
    again = views(0)
    assert torch.equal(again[0], first) and torch.equal(again[1], second)
    assert not torch.equal(views(1)[0], first)


def test_on_the_fly_reruns_the_frozen_part_every_batch_and_is_seeded(tiny):
    scenario = tiny("class_incremental")
    results, counts = [], []
    for _ in range(2):
        strategy, seen = probe_with_recorded_inputs(scenario, {**AUGMENT, "epochs": 2})
        results.append(run(strategy, scenario))
        counts.append(sum(len(x) for x in seen))
    train = sum(len(s.data) for s in scenario.steps)
    assert counts[0] == 2 * train + sum(len(e.data) for e in scenario.eval_sets)  # 2 epochs, nothing cached
    assert results[0].acc_matrix == results[1].acc_matrix and results[0].losses == results[1].losses


def test_pixel_strategies_augment_on_the_fly_reproducibly(tiny):
    scenario = tiny("class_incremental")
    runs = []
    for config in (AUGMENT, AUGMENT, {"augment": "none"}):
        torch.manual_seed(0)
        strategy = build_strategy("full_finetune", create_backbone("vit_test_micro"), scenario.info(),
                                  {**config, "augment_views": 2, "epochs": 1})
        runs.append(run(strategy, scenario))
    assert runs[0].losses == runs[1].losses and runs[0].acc_matrix == runs[1].acc_matrix
    assert runs[0].losses != runs[2].losses  # the pixels were augmented


def test_augment_none_is_the_plain_cached_path_and_keeps_configs_as_they_were(tiny):
    scenario = tiny("class_incremental")
    plain, plain_seen = probe_with_recorded_inputs(scenario, {"epochs": 2})
    off, off_seen = probe_with_recorded_inputs(scenario, {"epochs": 2, "augment": "none", "augment_views": 3})
    a, b = run(plain, scenario), run(off, scenario)
    assert a.acc_matrix == b.acc_matrix and a.losses == b.losses
    assert torch.equal(plain.head.weight, off.head.weight)
    assert sum(len(x) for x in off_seen) == sum(len(x) for x in plain_seen)  # views are ignored when off
    # Off, the new knobs stay out of the canonical config, so cell ids of earlier results do not move.
    assert "augment" not in StrategyConfig().to_dict() and "augment_views" not in StrategyConfig().to_dict()
    on = StrategyConfig(augment="shift_scale", augment_views=2)
    assert on.to_dict()["augment"] == "shift_scale" and StrategyConfig.from_dict(on.to_dict()) == on
    with pytest.raises(ValueError, match="augment: .flip. must be one of .none., .shift_scale."):
        run(build_strategy("linear_probe", create_backbone("vit_test_micro"), scenario.info(),
                           {"augment": "flip"}), scenario)


def test_frozen_backbone_is_bit_for_bit_unchanged_and_head_moves(tiny):
    scenario = tiny("class_incremental")
    strategy = build_strategy("linear_probe", create_backbone("vit_test_micro"), scenario.info(), {"epochs": 1})
    before = {k: v.clone() for k, v in strategy.state_dict().items()}
    result = run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, False)
    after = strategy.state_dict()
    for key, value in before.items():
        if key.startswith("head."):
            assert not torch.equal(value, after[key]), key
        else:
            assert torch.equal(value, after[key]), key
    assert result.trainable_params == sum(p.numel() for p in strategy.head.parameters())
    assert len(result.acc_matrix) == 2 and all(len(row) == 2 for row in result.acc_matrix)


def test_same_seed_same_numbers(tiny):
    scenario = tiny("class_incremental")
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        strategy = build_strategy("full_finetune", create_backbone("vit_test_micro"), scenario.info(), {"epochs": 1})
        runs.append(run_stream(strategy, scenario.steps, scenario.eval_sets, torch.device("cpu"), 0, False))
    assert runs[0].acc_matrix == runs[1].acc_matrix


def test_mask_logits_keeps_only_the_label_space():
    logits = torch.tensor([[5.0, 1.0, 3.0, 4.0]])
    assert mask_logits(logits, [1, 2]).argmax(-1).item() == 2
    assert torch.equal(mask_logits(logits, None), logits)


def test_evaluate_predicts_within_the_label_space():
    class Fixed(torch.nn.Module):
        needs_pixels = True
        def forward(self, x, cached=None):
            return torch.tensor([[9.0, 0.0, 1.0]]).repeat(x.shape[0], 1)

    data = TensorData(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([2, 2, 0, 2]))
    strategy = Fixed()
    assert evaluate(strategy, data, None, torch.device("cpu")) == 0.25  # predicts class 0 everywhere
    assert evaluate(strategy, data, [1, 2], torch.device("cpu")) == 0.75  # class 0 excluded -> predicts 2


def test_device_selection():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            select_device("cuda")
