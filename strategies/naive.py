"""Naive sequential fine-tuning: the continual-learning lower bound (avalanche-lib's `Naive`)."""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.strategy import StrategyConfig, hp, register_strategy
from strategies.full_finetune import FullFinetune


@dataclass(frozen=True)
class NaiveConfig(StrategyConfig):
    lr: float = hp(0.01, "peak learning rate")


@register_strategy("naive", config=NaiveConfig)
class Naive(FullFinetune):
    """Naive (avalanche-lib `avalanche.training.Naive`): the whole model is fine-tuned on each task in turn with
    plain cross-entropy, nothing done against forgetting. Trains: the whole backbone and a linear head.
    Freezes: nothing.

    The computation is full fine-tuning's; it is a separate entry because it is the base and the reference of the
    continual-learning classics (ewc, lwf, replay, joint share its config), so that their comparison holds the
    optimisation fixed while `full_finetune` keeps the VPT baseline's settings."""

    family = "continual"
    same_computation_as = "full_finetune"  # with the same config, a run computes the pair once
    paper = "avalanche-lib Naive (Lomonaco et al., 2021); lower bound in Kirkpatrick et al., PNAS 2017"
    supported_scenarios = ("class_incremental", "domain_incremental")
