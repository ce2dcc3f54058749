"""bench.train.guards and their use in run_cell: non-finite numbers and moved frozen weights fail the cell."""
from __future__ import annotations

import re

import pytest
import torch

from bench.core.store import ResultStore
from bench.run.runner import CellConfig, ResultWriteError, run_cell
from bench.train.guards import (FrozenWeightsChanged, NonFiniteError, check_finite_logits, check_finite_loss,
                                check_frozen, frozen_state)

TINY_CI = {"num_tasks": 2, "num_classes": 6, "train_per_font": 1, "test_per_font": 1}


def cell(**kw) -> CellConfig:
    return CellConfig(**{**dict(scenario="ci5_glyphs", strategy="linear_probe", backbone="vit_test_micro", seed=0,
                                strategy_config={"epochs": 1}, scenario_overrides=TINY_CI), **kw})


def test_non_finite_numbers_raise_with_a_message():
    check_finite_loss(torch.tensor(0.3), 0, 0)
    with pytest.raises(NonFiniteError, match="non-finite training loss \\(nan\\) at training step 1, epoch 2"):
        check_finite_loss(torch.tensor(float("nan")), 1, 2)
    with pytest.raises(NonFiniteError, match="non-finite logits"):
        check_finite_logits(torch.tensor([[0.0, float("inf")]]), "8 images")


def test_the_checksum_sees_one_changed_bit_and_ignores_trainable_parameters(tiny):
    from bench.run.runner import prepare

    _, _, strategy = prepare(cell())
    before = frozen_state(strategy)
    for _, param in strategy.trainable_parameters():
        param.data.add_(1.0)  # trainable: may move
    check_frozen(strategy, before)
    weight = next(strategy.backbone.parameters())
    bits = weight.data.view(-1).view(torch.int32)
    bits[0] ^= 1  # the lowest mantissa bit of one element
    with pytest.raises(FrozenWeightsChanged, match="frozen weights changed during the cell: parameter backbone\\."):
        check_frozen(strategy, before)


def test_a_diverging_cell_is_recorded_failed_with_the_reason(tmp_path, monkeypatch):
    from strategies.linear_probe import LinearProbe

    original = LinearProbe.forward  # diverges in training only: the untrained start row is scored first
    monkeypatch.setattr(LinearProbe, "forward", lambda self, x, cached=None: torch.full(
        (len(cached), self.info.num_classes), float("nan"), requires_grad=True) if self.training
        else original(self, x, cached))
    record = run_cell(cell(), tmp_path, "cpu", show_progress=False)
    assert record["status"] == "failed" and "non-finite training loss" in record["error"]


def test_a_result_the_folder_refuses_is_kept_aside_and_named(tmp_path, monkeypatch):
    def refuse(self, record):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ResultStore, "write", refuse)
    with pytest.raises(ResultWriteError, match="could not write the result of cell .* kept at") as caught:
        run_cell(cell(), tmp_path, "cpu", show_progress=False)
    kept = str(caught.value).split("kept at ")[1].split(":")[0]
    import json

    assert json.loads(open(kept).read())["status"] == "ok"


def test_a_changed_backbone_buffer_is_seen_after_the_module_moved(tiny):
    from bench.run.runner import prepare

    _, _, strategy = prepare(cell())
    strategy.backbone.register_buffer("running_thing", torch.zeros(3))
    before = frozen_state(strategy)
    strategy.to("cpu")  # `.to` replaces buffers by new tensors: they are looked up by name
    check_frozen(strategy, before)
    strategy.backbone.running_thing.add_(1)
    with pytest.raises(FrozenWeightsChanged, match="backbone buffer running_thing"):
        check_frozen(strategy, before)


def test_a_frozen_parameter_replaced_by_a_new_object_is_seen(tiny):
    from bench.run.runner import prepare

    _, _, strategy = prepare(cell())
    before = frozen_state(strategy)
    trainable = {id(p) for _, p in strategy.trainable_parameters()}
    name, frozen = next((n, p) for n, p in strategy.named_parameters() if id(p) not in trainable)
    kept = frozen.detach().clone()
    owner, _, attr = name.rpartition(".")
    setattr(strategy.get_submodule(owner), attr, torch.nn.Parameter(frozen.detach() + 0.01, requires_grad=False))
    assert torch.equal(frozen, kept)  # the old object, all the checksum looked at, is untouched
    with pytest.raises(FrozenWeightsChanged, match=rf"parameter {re.escape(name)} \(replaced by a new object\)"):
        check_frozen(strategy, before)
