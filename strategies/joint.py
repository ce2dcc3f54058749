"""Joint training: the whole model trained once on every task's data together (the upper bound)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.strategy import Flags, register_strategy
from strategies.naive import Naive, NaiveConfig


@dataclass(frozen=True)
class JointConfig(NaiveConfig):
    pass


@register_strategy("joint", config=JointConfig)
class Joint(Naive):
    """Joint training (avalanche-lib's `JointTraining`): the runner merges every training step into one, so the
    model sees all tasks at once; an upper bound for continual learners, not one itself.
    Trains: the whole backbone and a linear head. Freezes: nothing."""

    paper = "upper bound (avalanche-lib JointTraining)"
    flags = Flags(joint_training=True)
    supported_scenarios = ("class_incremental", "domain_incremental")
