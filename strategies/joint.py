"""Joint training: every task's data at once, the upper bound of each family of learners.

`joint` bounds the learners that fine-tune the backbone (full fine-tuning, naive, EWC, LwF, replay, PETL methods that
change the features); `joint_probe` and `joint_ridge` bound the learners that keep the backbone frozen and learn a
head on its features (linear probe, SimpleCIL, RanPAC, prompt methods whose features stay frozen): a frozen-feature
learner cannot beat the best head the same features allow on the merged problem, but it can beat joint fine-tuning
of a small backbone that overfits (on di_styles RanPAC did: 77.7 against 73.0). Which family each bound bounds is
`BOUND_FAMILY` in bench/report/columns.py: the reports read it by name, without importing the strategies.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.core.strategy import Flags, register_strategy
from strategies.linear_probe import LinearProbe, LinearProbeConfig
from strategies.naive import Naive, NaiveConfig
from strategies.ranpac import RanPAC, RanPACConfig

INCREMENTAL = ("class_incremental", "domain_incremental")


@dataclass(frozen=True)
class JointConfig(NaiveConfig):
    pass


@register_strategy("joint", config=JointConfig)
class Joint(Naive):
    """Joint training (avalanche-lib's `JointTraining`): the runner merges every training step into one, so the
    model sees all tasks at once; the upper bound of learners that fine-tune the backbone, not a learner itself.
    Trains: the whole backbone and a linear head. Freezes: nothing."""

    paper = "upper bound of fine-tuning learners (avalanche-lib JointTraining)"
    flags = Flags(joint_training=True)
    supported_scenarios = INCREMENTAL


@dataclass(frozen=True)
class JointProbeConfig(LinearProbeConfig):
    pass


@register_strategy("joint_probe", config=JointProbeConfig)
class JointProbe(LinearProbe):
    """A linear probe trained once on every task's data together: the upper bound of learners that train a head on
    the frozen backbone's features. Trains: a linear head. Freezes: the backbone."""

    paper = "upper bound of frozen-feature learners (joint linear probe)"
    flags = Flags(joint_training=True)
    supported_scenarios = INCREMENTAL


@dataclass(frozen=True)
class JointRidgeConfig(RanPACConfig):
    pass


@register_strategy("joint_ridge", config=JointRidgeConfig)
class JointRidge(RanPAC):
    """RanPAC's random-feature ridge head solved once on every task's data together: the closed-form upper bound of
    frozen-feature learners. On a domain stream (the same classes in every step) RanPAC's accumulated Gram matrix is
    this joint solution, so the two must agree there. Trains: nothing (closed form). Freezes: the backbone."""

    paper = "upper bound of frozen-feature learners (joint ridge regression, McDonnell et al. 2023's head)"
    flags = Flags(joint_training=True)
    supported_scenarios = INCREMENTAL
