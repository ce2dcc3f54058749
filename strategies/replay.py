"""Experience replay: full fine-tuning on each task's data plus a bounded memory of past training images."""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from torch import nn

from bench.core.data import ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import Flags, hp, register_strategy
from strategies.naive import Naive, NaiveConfig

POLICIES = ("experience_balanced", "class_balanced", "reservoir")


@dataclass(frozen=True)
class ReplayConfig(NaiveConfig):
    memory_size: int = hp(200, "images kept in the replay memory, over all past tasks")
    policy: str = hp("experience_balanced", "experience_balanced (avalanche ReplayPlugin's default) | "
                                            "class_balanced | reservoir")


def make_buffer(policy: str, size: int):
    """An avalanche-lib storage policy by name."""
    from avalanche.training.storage_policy import ClassBalancedBuffer, ExperienceBalancedBuffer, ReservoirSamplingBuffer

    builders = {"experience_balanced": ExperienceBalancedBuffer, "class_balanced": ClassBalancedBuffer,
                "reservoir": ReservoirSamplingBuffer}
    if policy not in builders:
        raise ValueError(f"replay: unknown policy {policy!r}; valid: {', '.join(POLICIES)}")
    return builders[policy](size)


@register_strategy("replay", config=ReplayConfig)
class Replay(Naive):
    """Experience replay (as avalanche-lib's `ReplayPlugin`; Chaudhry et al., 2019): each task trains on its data
    concatenated with the memory; after the task, an avalanche storage policy updates the memory from the task's
    data. Trains: the whole backbone and a linear head. Freezes: nothing. Stores: `memory_size` past images."""

    paper = "Chaudhry et al., On Tiny Episodic Memories in Continual Learning, 2019 (avalanche ReplayPlugin)"
    flags = Flags(replay_memory=True)

    def __init__(self, cfg: ReplayConfig, backbone: nn.Module, info: ScenarioInfo) -> None:
        super().__init__(cfg, backbone, info)
        self.buffer = make_buffer(cfg.policy, cfg.memory_size)

    def memory(self) -> TensorData | None:
        """The memory's images and labels, read back from the avalanche buffer (None while empty)."""
        from scenarios.streams import from_avalanche

        return from_avalanche(self.buffer.buffer) if len(self.buffer.buffer) else None

    def adapt_train_set(self, data: TensorData, ctx: TaskContext) -> TensorData:
        memory = self.memory()
        return data if memory is None else TensorData.concat([data, memory])

    def after_task(self, ctx: TaskContext) -> None:
        from scenarios.streams import to_avalanche

        # Only the task's own data enters the memory (the replayed images are already there).
        self.buffer.post_adapt(None, SimpleNamespace(dataset=to_avalanche(ctx.train_data)))
