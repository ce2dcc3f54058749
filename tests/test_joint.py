"""The joint upper bounds: joint ridge accumulates exactly RanPAC's statistics on the merged data, the joint probe
learns, and what a training-free strategy stores is counted from its buffers."""
from __future__ import annotations

import torch

from bench.contract.tiny import tiny_scenario
from bench.core.strategy import STRATEGIES, build_strategy, count_stored, count_trainable
from bench.models.backbones import create_backbone
from bench.run.runner import merged_step
from bench.train.harness import run_stream


def _build(name: str, scenario, **config):
    torch.manual_seed(0)
    return build_strategy(name, create_backbone("vit_test_micro"), scenario.info(), config)


def test_joint_ridge_holds_ranpacs_statistics_of_the_merged_stream():
    """On a domain stream RanPAC's accumulated Gram matrix and class sums are the joint problem's: the bound and the
    learner share their sufficient statistics (only lambda, chosen on the last step vs the merged data, may differ)."""
    scenario = tiny_scenario("domain_incremental")
    ranpac, ridge = _build("ranpac", scenario, projection_dim=32), _build("joint_ridge", scenario, projection_dim=32)
    assert torch.equal(ranpac.projection, ridge.projection)  # same seed, same random features
    run_stream(ranpac, scenario.steps, [], torch.device("cpu"), 0, show_progress=False)
    run_stream(ridge, [merged_step(scenario.steps)], [], torch.device("cpu"), 0, show_progress=False)
    assert torch.allclose(ranpac.gram, ridge.gram, rtol=1e-10, atol=1e-8)
    assert torch.allclose(ranpac.class_sums, ridge.class_sums, rtol=1e-10, atol=1e-8)
    assert STRATEGIES.get("joint_ridge").flags.joint_training and count_trainable(ridge) == 0


def test_joint_probe_learns_the_merged_problem_above_chance():
    from bench.train.harness import evaluate

    scenario = tiny_scenario("class_incremental")
    probe = _build("joint_probe", scenario, epochs=20, lr=0.1)
    step = merged_step(scenario.steps)
    run_stream(probe, [step], [], torch.device("cpu"), 0, show_progress=False)
    accuracy = evaluate(probe, step.data, step.classes, torch.device("cpu"))
    assert accuracy > 2.0 / len(step.classes)  # chance is 1 / classes
    assert STRATEGIES.get("joint_probe").flags.joint_training


def test_stored_values_are_the_strategys_own_buffers():
    scenario = tiny_scenario("class_incremental")
    ranpac = _build("ranpac", scenario, projection_dim=32)
    d, m, c = ranpac.backbone.num_features, 32, scenario.info().num_classes
    # projection d x M, Gram M x M, class sums and head M x C each, the ridge scalar
    assert count_stored(ranpac) == d * m + m * m + 2 * m * c + 1
    assert count_stored(_build("linear_probe", scenario)) == 0
