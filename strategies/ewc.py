"""EWC: full fine-tuning with a quadratic penalty that anchors parameters important to past tasks."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import count_trainable, hp, mask_logits, register_strategy
from strategies.naive import Naive, NaiveConfig


@dataclass(frozen=True)
class EWCConfig(NaiveConfig):
    ewc_lambda: float = hp(100.0, "weight of the EWC penalty")
    mode: str = hp("separate", "separate: one penalty per past task | online: one running penalty (decayed)")
    decay_factor: float = hp(1.0, "online mode: factor on the previous importances")


class _PixelsWithTask(torch.utils.data.Dataset):
    """(pixels in [0, 1], label, task label 0): the batch layout avalanche's importance pass unpacks."""

    def __init__(self, data: TensorData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.data.images[i].float() / 255.0, self.data.labels[i], 0


@register_strategy("ewc", config=EWCConfig)
class EWC(Naive):
    """Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017) through avalanche-lib's `EWCPlugin`: after
    each task the plugin estimates diagonal importances (squared gradients of the task loss) and stores the
    parameters; later losses add lambda * sum importance * (theta - theta_old)^2.
    Trains: the whole backbone and a linear head. Freezes: nothing."""

    paper = "Kirkpatrick et al., Overcoming catastrophic forgetting in neural networks, PNAS 2017"

    def __init__(self, cfg: EWCConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        from avalanche.training.plugins import EWCPlugin

        super().__init__(cfg, backbone, info)
        if cfg.mode not in ("separate", "online"):
            raise ValueError(f"ewc: unknown mode {cfg.mode!r}; valid: separate, online")
        decay = cfg.decay_factor if cfg.mode == "online" else None
        self.plugin = EWCPlugin(cfg.ewc_lambda, mode=cfg.mode, decay_factor=decay)

    def _agent(self, ctx: TaskContext, device: torch.device, **extra: object) -> SimpleNamespace:
        """The few fields of an avalanche training template that EWCPlugin's hooks read."""
        return SimpleNamespace(model=self, device=device, clock=SimpleNamespace(train_exp_counter=ctx.index),
                               **extra)

    def penalty(self, ctx: TaskContext, device: torch.device) -> torch.Tensor:
        """The plugin's penalty for step `ctx.index` (zero during the first task), lambda included."""
        agent = self._agent(ctx, device, loss=torch.zeros((), device=device))
        self.plugin.before_backward(agent)
        return agent.loss

    def training_loss(self, batch: Batch, ctx: TaskContext) -> torch.Tensor:
        return super().training_loss(batch, ctx) + self.penalty(ctx, batch.y.device)

    def after_task(self, ctx: TaskContext) -> None:
        device = next(self.parameters()).device
        trainable = [p for _, p in self.trainable_parameters()]

        def criterion(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(mask_logits(logits, ctx.seen_classes), y)

        agent = self._agent(ctx, device, _criterion=criterion, train_mb_size=self.cfg.batch_size,
                            optimizer=torch.optim.SGD(trainable, lr=0.0),  # the plugin only calls zero_grad()
                            experience=SimpleNamespace(dataset=_PixelsWithTask(ctx.train_data)))
        self.plugin.after_training_exp(agent)

    def params_per_new_task(self, new_classes: int) -> int:
        head = (self.head.in_features + 1) * new_classes
        # separate mode keeps a parameter snapshot and an importance per past task; online keeps one of each.
        return head + (2 * count_trainable(self) if self.cfg.mode == "separate" else 0)
