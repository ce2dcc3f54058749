"""Protocol rules as pure functions: class orders (seeded, PyCIL's 1993), exact task splits, CoOp's base/new and
few-shot rules, the glyph few-shot rule, adaptation indices."""
from __future__ import annotations

import random

import numpy as np
import pytest

from scenarios.protocols import (adaptation_indices, base_new_classes, class_order, coop_few_shot, exact_split,
                                 indices_of, seeded_few_shot)


def test_seeded_order_depends_on_the_seed_and_pycil_order_does_not():
    assert class_order(100, 0) != class_order(100, 1)
    assert sorted(class_order(100, 0)) == list(range(100))
    state = np.random.get_state()
    pycil = class_order(100, 0, "pycil")
    assert pycil == class_order(100, 5, "pycil")
    np.random.seed(1993)  # PyCIL's data_manager: np.random.seed(seed); np.random.permutation(n)
    assert pycil == np.random.permutation(100).tolist()
    np.random.set_state(state)
    assert pycil[:5] == [68, 56, 78, 8, 23]  # the order PyCIL logs for CIFAR-100
    assert class_order(4, 0, "sorted") == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown class order 'random'"):
        class_order(4, 0, "random")


def test_exact_split_keeps_every_class_in_order():
    assert exact_split([5, 3, 9, 1, 0], 2) == [[5, 3, 9], [1, 0]]
    assert [len(g) for g in exact_split(list(range(200)), 10)] == [20] * 10


def test_coop_base_new_rule_first_half_rounded_up():
    assert base_new_classes(5) == ([0, 1, 2], [3, 4])
    base, new = base_new_classes(101)  # an odd count: base gets the extra class
    assert (len(base), len(new)) == (51, 50) and base[-1] == 50 and new[0] == 51
    seeded = base_new_classes(10, "seeded", seed=3)
    assert sorted(seeded[0] + seeded[1]) == list(range(10)) and seeded != base_new_classes(10)


def test_coop_few_shot_is_dassls_draw_with_pythons_random():
    labels = [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 1]  # label 2 first appears first
    train, val = coop_few_shot(labels, 2, seed=1, val_labels=[0, 0, 1, 1, 1])
    rng = random.Random(1)  # Dassl: set_random_seed(1); then per label, in order of first appearance
    expected = (rng.sample([0, 3, 6, 9], 2) + rng.sample([1, 4, 7, 10], 2) + rng.sample([2, 5, 8, 11, 12], 2))
    assert train.tolist() == expected
    assert val.tolist() == rng.sample([0, 1], 2) + rng.sample([2, 3, 4], 2)  # min(shots, 4), same stream
    assert coop_few_shot(labels, 2, seed=2)[0].tolist() != train.tolist()
    few, _ = coop_few_shot([0, 0, 1], 2, seed=1)  # a class with fewer items keeps all of them
    assert sorted(few.tolist()) == [0, 1, 2]


def test_glyph_few_shot_rule_k_per_class_and_refuses_too_few():
    labels = np.repeat(np.arange(4), 6)
    keep = seeded_few_shot(labels, 3, seed=0)
    assert np.bincount(labels[keep]).tolist() == [3, 3, 3, 3] and keep.tolist() == sorted(keep.tolist())
    with pytest.raises(ValueError, match="fewer than shots=7"):
        seeded_few_shot(labels, 7, seed=0)


def test_indices_and_adaptation_split():
    assert indices_of(np.array([3, 1, 3, 2]), [3]).tolist() == [0, 2]
    src, tgt = adaptation_indices(["art", "clipart", "art", "product"], "art", "product")
    assert (src.tolist(), tgt.tolist()) == ([0, 2], [3])
    with pytest.raises(ValueError, match="domain 'real_world' not in this source"):
        adaptation_indices(["art", "clipart"], "art", "real_world")
