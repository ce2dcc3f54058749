"""A cell's config and id: importable without torch, so a plan (`promptshift plan`) names the same cells a run does."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.core.store import config_hash

# Bump when the harness, a scenario or a metric changes what a cell computes: old results then rerun.
# 2: untrained class-incremental tasks stored as null (not scored), initial_accuracy recorded.
PROTOCOL_VERSION = 2


@dataclass(frozen=True)
class CellConfig:
    """Everything that determines a cell's numbers (and nothing that does not, such as the device)."""

    scenario: str
    strategy: str
    backbone: str
    seed: int
    strategy_config: dict[str, Any] = field(default_factory=dict)  # overrides of the strategy's config fields
    scenario_overrides: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # a local weights file for the backbone; None = the backbone's default
    robustness: dict[str, Any] | None = None  # robustness evaluation settings; None = clean accuracy only
    label: str | None = None  # leaderboard name of a variant; part of the id when set, so it gets its own row
    data: dict[str, Any] | None = None  # what the cell reads (bench.run.data_identity); set before any id is used

    def resolved(self, config_cls: type | None = None) -> dict[str, Any]:
        """The canonical config: strategy defaults filled in, so changing a default changes the cell id.
        `config_cls`: the strategy's config class when the caller has it without the registry (the torch-free
        plan, `bench.run.catalog`); by default the registered strategy's."""
        if config_cls is None:
            from bench.core.strategy import STRATEGIES
            from bench.run.seq2seq_strategies import config_class_of, is_seq2seq

            config_cls = (config_class_of(self.strategy) if is_seq2seq(self.strategy) and self.strategy not in
                          STRATEGIES else STRATEGIES.get(self.strategy).config_cls)
        cfg = config_cls.from_dict(dict(self.strategy_config))
        out = dataclasses.asdict(self)
        if not self.label or self.label == self.strategy:
            del out["label"]  # unlabelled cells keep their ids; a labelled variant is its own cell (own row)
        out["strategy_config"] = cfg.to_dict()
        if self.robustness:  # defaults filled in too: a changed attack default must not reuse old numbers
            from bench.eval.robustness_config import RobustnessConfig
            from bench.run.seq2seq_strategies import ROBUSTNESS_WHEN, is_seq2seq, seq2seq_attacks

            out["robustness"] = RobustnessConfig.from_dict(self.robustness).model_dump(mode="json")
            if is_seq2seq(self.strategy) and seq2seq_attacks(self.robustness,
                                                             out["strategy_config"].get("robustness", "off")):
                out["robustness"]["when"] = ROBUSTNESS_WHEN
        out["protocol_version"] = PROTOCOL_VERSION
        if out["data"] is None:  # embedded data is named by its generator version; on-disk data once attached
            from scenarios.identity import embedded_identity
            out["data"] = embedded_identity(self.scenario)
        return out

    def cell_id(self, config_cls: type | None = None) -> str:
        return config_hash(self.resolved(config_cls))
