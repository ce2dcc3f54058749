"""What DualPrompt and CODA-Prompt share (`strategies._vit_prompting.TaskPoolPrompting`): past tasks' slices of the
pool never move (weight decay refused), and a stream longer than the pool fails before training its extra step."""
from __future__ import annotations

import pytest
import torch

from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("class_incremental", 4, ["a", "b", "c", "d"])
POOLS = {  # strategy -> (a small config with room for 2 tasks, the setting that sizes the pool, what is frozen)
    "dualprompt": ({"g_length": 2, "e_length": 3, "pool_size": 2}, "pool_size", "E-prompts of past tasks"),
    "coda_prompt": ({"components_per_task": 3, "max_tasks": 2, "length": 4}, "max_tasks",
                    "components of past tasks"),
}


def ctx(index: int, num_steps: int = 3) -> TaskContext:
    return TaskContext(index=index, num_steps=num_steps, train_classes=[index], seen_classes=list(range(index + 1)),
                       domain=None, train_data=TensorData(torch.zeros(0, 3, 32, 32, dtype=torch.uint8),
                                                          torch.zeros(0, dtype=torch.long)))


@pytest.mark.parametrize("name", sorted(POOLS))
def test_weight_decay_is_refused_since_it_would_move_past_tasks(name):
    config, _, frozen = POOLS[name]
    with pytest.raises(ValueError, match=rf"^{name}: weight_decay must be 0 \(got 0.01\): it would change the "
                                         rf"frozen {frozen}$"):
        build_strategy(name, create_backbone("vit_test_micro"), INFO, {**config, "weight_decay": 0.01})


@pytest.mark.parametrize("name", sorted(POOLS))
def test_each_step_becomes_the_task_until_the_pool_runs_out(name):
    config, setting, _ = POOLS[name]
    strategy = build_strategy(name, create_backbone("vit_test_micro"), INFO, config)
    assert int(strategy.task) == 0
    for index in (0, 1):
        strategy.before_task(ctx(index))
        assert int(strategy.task) == index
    with pytest.raises(ValueError, match=rf"^{name}: step 3 of 3 .*2; set {setting} >= 3$"):
        strategy.before_task(ctx(2))
    assert int(strategy.task) == 1  # the failed step changed nothing


@pytest.mark.parametrize("name", sorted(POOLS))
def test_the_query_is_the_frozen_pooled_feature(name):
    strategy = build_strategy(name, create_backbone("vit_test_micro"), INFO, POOLS[name][0]).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(strategy.frozen_inputs(x), strategy.backbone(x))
