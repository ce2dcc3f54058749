"""Scenario contracts: exact class partitions, pinned sizes, purity under the seed, avalanche guards."""
from __future__ import annotations

import pytest
import torch

from scenarios import glyphs
from scenarios.catalog import SCENARIOS, build_scenario
from scenarios.streams import exact_split, few_shot

N_CLASSES = len(glyphs.GLYPH_CLASSES)
N_FONTS = len(glyphs.BENCH_FONTS)


def test_exact_split_never_drops_a_class():
    # avalanche-lib's own split would drop 67 % 5 = 2 classes; ours keeps them all.
    groups = exact_split(list(range(67)), 5)
    assert [len(g) for g in groups] == [14, 14, 13, 13, 13]
    assert sorted(c for g in groups for c in g) == list(range(67))
    with pytest.raises(ValueError, match="cannot split"):
        exact_split([0, 1], 3)


def test_class_incremental_default_sizes_are_pinned():
    s = build_scenario("ci5_glyphs", 0)
    per_task = [len(g) for g in exact_split(list(range(N_CLASSES)), 5)]
    assert [len(step.classes) for step in s.steps] == per_task
    assert [len(step.data) for step in s.steps] == [n * N_FONTS * 3 for n in per_task]
    assert [len(e.data) for e in s.eval_sets] == [n * N_FONTS * 2 for n in per_task]
    all_classes = [c for step in s.steps for c in step.classes]
    assert sorted(all_classes) == list(range(N_CLASSES))  # an exact partition
    for step, ev in zip(s.steps, s.eval_sets):
        assert set(step.data.labels.tolist()) == set(step.classes) == set(ev.data.labels.tolist())
    # tasks take consecutive groups of the recorded class order
    assert [sorted(g) for g in exact_split(s.class_order, 5)] == [step.classes for step in s.steps]


def test_class_order_comes_from_the_seed_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = build_scenario("ci5_glyphs", 0, num_classes=12, train_per_font=1, test_per_font=1)
    b = build_scenario("ci5_glyphs", 1, num_classes=12, train_per_font=1, test_per_font=1)
    assert torch.equal(state, torch.random.get_rng_state()), "building a scenario touched the global torch RNG"
    assert a.class_order != b.class_order


def test_same_seed_same_bytes():
    from scenarios.catalog import _build_cached
    _build_cached.cache_clear()
    a = build_scenario("ci5_glyphs", 3, num_classes=6, train_per_font=1, test_per_font=1)
    _build_cached.cache_clear()
    b = build_scenario("ci5_glyphs", 3, num_classes=6, train_per_font=1, test_per_font=1)
    assert a is not b
    assert a.class_order == b.class_order
    for sa, sb in zip(a.steps, b.steps):
        assert torch.equal(sa.data.images, sb.data.images) and torch.equal(sa.data.labels, sb.data.labels)


def test_domain_incremental_default_sizes():
    s = build_scenario("di_styles", 0)
    assert [step.domain for step in s.steps] == ["clean", "outline", "texture", "noisy"]
    assert all(len(step.classes) == N_CLASSES for step in s.steps)
    assert [len(step.data) for step in s.steps] == [N_CLASSES * N_FONTS] * 4
    assert [len(e.data) for e in s.eval_sets] == [N_CLASSES * N_FONTS] * 4
    assert [e.name for e in s.eval_sets] == ["clean", "outline", "texture", "noisy"]


def test_base_to_new_splits_classes_in_half_and_few_shot():
    s = build_scenario("b2n_glyphs", 0)
    base, new = s.eval_sets[0].label_space, s.eval_sets[1].label_space
    assert len(base) == (N_CLASSES + 1) // 2 and len(new) == N_CLASSES // 2
    assert set(base).isdisjoint(new) and sorted(base + new) == list(range(N_CLASSES))
    train = s.steps[0]
    assert set(train.data.labels.tolist()) == set(base)
    assert len(train.data) == 16 * len(base)  # 16 shots per base class
    assert len(s.eval_sets[0].data) == len(base) * N_FONTS * 2
    assert set(s.eval_sets[1].data.labels.tolist()) == set(new)


def test_adaptation_to_handwritten_digits_hides_target_labels():
    s = build_scenario("uda_digits", 0)
    step = s.steps[0]
    assert s.class_names[:3] == [glyphs.GLYPH_CLASSES[i].name for i in range(3)] and len(s.class_names) == 10
    assert len(step.data) == 10 * N_FONTS * 3
    assert (step.unlabelled.labels == -1).all()
    assert len(step.unlabelled) + len(s.eval_sets[1].data) == 1797
    assert [e.name for e in s.eval_sets] == ["source", "target"]
    assert set(s.eval_sets[1].data.labels.tolist()) == set(range(10))


def test_few_shot_keeps_k_per_class_and_refuses_too_few():
    s = build_scenario("ci5_glyphs_5shot", 0, num_classes=10, num_tasks=2)
    for step in s.steps:
        counts = torch.bincount(step.data.labels, minlength=10)[step.classes]
        assert (counts == 5).all()
    with pytest.raises(ValueError, match="fewer than shots"):
        few_shot(s.steps[0].data, 50, 0)


def test_glyphs_4shot_is_one_task_of_4_images_a_class_drawn_per_seed_with_the_full_test_split():
    s0, s1 = build_scenario("glyphs_4shot", 0, num_classes=10), build_scenario("glyphs_4shot", 1, num_classes=10)
    assert len(s0.steps) == 1 and s0.steps[0].classes == list(range(10)) and len(s0.eval_sets) == 1
    assert (torch.bincount(s0.steps[0].data.labels, minlength=10) == 4).all()
    # the test split is the whole one: the same images ci5_glyphs tests on for that seed, all tasks together
    full = build_scenario("ci5_glyphs", 0, num_classes=10, num_tasks=2)
    assert len(s0.eval_sets[0].data) == 10 * N_FONTS * 2 == sum(len(e.data) for e in full.eval_sets)
    key = lambda data: sorted(zip(data.labels.tolist(), data.images.flatten(1).sum(1).tolist()))  # noqa: E731
    assert key(s0.eval_sets[0].data) == sorted(k for e in full.eval_sets for k in key(e.data))
    # the 4 shots are drawn per seed
    assert not torch.equal(s0.steps[0].data.images, s1.steps[0].data.images)


def test_every_registered_scenario_is_built_by_a_known_builder():
    from scenarios.multimodal.scenario import MULTIMODAL_BUILDERS
    from scenarios.streams import BUILDERS
    for name in SCENARIOS.names():
        assert SCENARIOS.get(name).kind in {**BUILDERS, **MULTIMODAL_BUILDERS}


def test_scenarios_are_avalanche_benchmarks():
    from avalanche.benchmarks.scenarios.generic_scenario import CLScenario
    s = build_scenario("ci5_glyphs", 0, num_classes=10, num_tasks=2, train_per_font=1, test_per_font=1)
    assert isinstance(s.benchmark, CLScenario)
    assert len(s.benchmark.train_stream) == 2
