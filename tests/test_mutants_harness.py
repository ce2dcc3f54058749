"""The training/evaluation loop's duties that no strategy test sees (issue 20): every training batch of an
adaptation step carries an unlabelled target batch, and every evaluation pass runs the strategy in eval mode
(no dropout, no prompt dropout at test time). `scripts/mutate.py` deletes each line and checks this file fails."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import EvalSet, ScenarioInfo, TensorData, TrainStep
from bench.core.strategy import Strategy, StrategyConfig
from bench.train.harness import evaluate, run_stream, to_pixels

CPU = torch.device("cpu")


class Recorder(Strategy):
    """A linear probe on mean pixels that records the target batches it is handed and the mode of every call."""

    def __init__(self) -> None:
        super().__init__(StrategyConfig(epochs=2, batch_size=4, lr=0.01), nn.Identity(),
                         ScenarioInfo("domain_adaptation", 2, ["a", "b"]))
        self.head = nn.Linear(3, 2)
        self.targets: list[torch.Tensor | None] = []
        self.modes: list[tuple[str, bool]] = []

    def forward(self, x: torch.Tensor | None, cached: torch.Tensor | None = None) -> torch.Tensor:
        self.modes.append(("forward", self.training))
        return self.head(x.mean(dim=(2, 3)))

    def training_loss(self, batch, ctx) -> torch.Tensor:
        self.targets.append(None if batch.target_x is None else batch.target_x.clone())
        return F.cross_entropy(self(batch.x), batch.y)

    def before_eval(self) -> None:
        self.modes.append(("before_eval", self.training))


def images(n: int, seed: int) -> TensorData:
    gen = torch.Generator().manual_seed(seed)
    return TensorData(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=gen),
                      torch.arange(n) % 2)


def test_every_training_batch_of_an_adaptation_step_carries_an_unlabelled_target_batch():
    source, target = images(8, seed=0), images(6, seed=1)
    unlabelled = TensorData(target.images, torch.full((6,), -1))
    strategy = Recorder()
    run_stream(strategy, [TrainStep(source, [0, 1], unlabelled=unlabelled)], [EvalSet("target", target)], CPU,
               seed=0, show_progress=False)
    assert len(strategy.targets) == 2 * 2  # 2 epochs of 2 batches
    assert all(t is not None and t.shape[0] > 0 for t in strategy.targets)
    # the target batches are the unlabelled images themselves (as pixels), every one of them within an epoch
    target_pixels = to_pixels(unlabelled.images, CPU)
    handed = torch.cat(strategy.targets[:2])
    for row in handed:
        assert any(torch.equal(row, t) for t in target_pixels)
    assert {int(t.sum() * 1000) for t in handed} == {int(t.sum() * 1000) for t in target_pixels}


def test_evaluation_runs_in_eval_mode_from_the_first_hook_to_the_last_forward():
    strategy = Recorder()
    data = images(8, seed=2)
    run_stream(strategy, [TrainStep(data, [0, 1])], [EvalSet("all", data)], CPU, seed=0, show_progress=False)
    hooks = [mode for kind, mode in strategy.modes if kind == "before_eval"]
    assert len(hooks) == 2 and not any(hooks)  # before training, after the step
    strategy.train()
    strategy.modes.clear()
    evaluate(strategy, data, None, CPU)  # called directly on a model left in training mode
    assert strategy.modes and not any(mode for _, mode in strategy.modes)
