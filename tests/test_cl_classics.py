"""Mechanism checks of the continual-learning classics (EWC, LwF, replay) built on avalanche-lib pieces."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy, freeze_all_but_trainable, mask_logits
from bench.models.backbones import create_backbone

INFO = ScenarioInfo("class_incremental", 6, [f"c{i}" for i in range(6)])
TASKS = ([0, 1], [2, 3], [4, 5])


def task_data(classes: list[int], per_class: int = 4, seed: int = 0) -> TensorData:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor(classes).repeat_interleave(per_class)
    return TensorData(torch.randint(0, 256, (len(labels), 3, 32, 32), dtype=torch.uint8, generator=gen), labels)


def context(index: int, data: TensorData) -> TaskContext:
    seen = sorted(c for t in TASKS[: index + 1] for c in t)
    return TaskContext(index=index, num_steps=len(TASKS), train_classes=list(TASKS[index]), seen_classes=seen,
                       domain=None, train_data=data)


def batch_of(data: TensorData) -> Batch:
    return Batch(x=data.images.float() / 255.0, y=data.labels)


def build(name: str, **config):
    torch.manual_seed(0)
    strategy = build_strategy(name, create_backbone("vit_test_micro"), INFO, {"batch_size": 4, **config})
    freeze_all_but_trainable(strategy)
    return strategy


def nudge(strategy) -> torch.Tensor:
    """Move the head's weights at random (a constant shift would be lost: LayerNorm features sum to zero)."""
    delta = 0.1 * torch.randn(strategy.head.weight.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        strategy.head.weight.add_(delta)
    return delta


# ------------------------------------------------------------------------------------------------------ EWC
def test_ewc_penalty_is_zero_until_a_task_ends_then_grows_with_the_distance_to_the_anchor():
    strategy = build("ewc", ewc_lambda=10.0)
    data0 = task_data(TASKS[0])
    ctx0, ctx1 = context(0, data0), context(1, task_data(TASKS[1], seed=1))
    assert float(strategy.penalty(ctx0, torch.device("cpu"))) == 0.0  # nothing learned yet to protect

    strategy.after_task(ctx0)  # avalanche's importance pass over the task's data, then the parameter snapshot
    importances = strategy.plugin.importances[0]
    assert sum(float(imp.data.sum()) for imp in importances.values()) > 0
    assert float(strategy.penalty(ctx1, torch.device("cpu")).detach()) == 0.0  # at the anchor itself

    delta = nudge(strategy)
    penalty = float(strategy.penalty(ctx1, torch.device("cpu")).detach())
    assert penalty > 0
    expected = 10.0 * float((importances["head.weight"].data * delta ** 2).sum())  # only the head moved
    assert abs(penalty - expected) <= 1e-5 * max(1.0, expected)

    # the penalty is part of the training loss and pulls the moved weights back
    loss = strategy.training_loss(batch_of(ctx1.train_data), ctx1)
    loss.backward()
    assert strategy.head.weight.grad is not None


# ------------------------------------------------------------------------------------------------------ LwF
def test_lwf_distils_towards_the_previous_models_outputs_on_old_classes():
    strategy = build("lwf", alpha=2.0, temperature=2.0)
    data0, data1 = task_data(TASKS[0]), task_data(TASKS[1], seed=1)
    ctx0, ctx1 = context(0, data0), context(1, data1)
    batch = batch_of(data1)

    def cross_entropy(ctx: TaskContext) -> torch.Tensor:
        return F.cross_entropy(mask_logits(strategy(batch.x), ctx.seen_classes), batch.y)

    # first task: no previous model, the loss is plain cross-entropy
    assert torch.allclose(strategy.training_loss(batch, ctx0), cross_entropy(ctx0))

    strategy.after_task(ctx0)
    teacher = strategy.lwf.prev_model
    assert teacher is not None and teacher is not strategy
    assert teacher.lwf.prev_model is None, "the snapshot must not nest earlier teachers"
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(id(p) not in {id(q) for q in teacher.parameters()} for _, p in strategy.trainable_parameters())
    # identical to its teacher: distillation adds nothing
    assert torch.allclose(strategy.training_loss(batch, ctx1), cross_entropy(ctx1), atol=1e-6)

    nudge(strategy)
    with torch.no_grad():
        old = TASKS[0]
        log_p = F.log_softmax(strategy(batch.x)[:, old] / 2.0, dim=1)
        q = F.softmax(teacher(batch.x)[:, old] / 2.0, dim=1)
        kd = F.kl_div(log_p, q, reduction="batchmean")
        loss = strategy.training_loss(batch, ctx1)
    assert float(kd) > 0
    assert torch.allclose(loss, cross_entropy(ctx1) + 2.0 * kd, atol=1e-6)

    # it is the previous model's outputs that are matched: change the teacher and the loss changes
    with torch.no_grad():
        teacher.head.bias[old[0]] += 1.0
        assert not torch.allclose(strategy.training_loss(batch, ctx1), loss)


# --------------------------------------------------------------------------------------------------- replay
def test_replay_memory_stays_within_its_size_and_keeps_every_past_task():
    for policy in ("experience_balanced", "class_balanced", "reservoir"):
        strategy = build("replay", memory_size=6, policy=policy)
        assert strategy.flags.replay_memory
        for index, classes in enumerate(TASKS):
            data = task_data(classes, seed=index)
            ctx = context(index, data)
            trained = strategy.adapt_train_set(data, ctx)
            memory = strategy.memory()
            # training data = this task's data + the memory of earlier tasks, never more
            assert len(trained) == len(data) + (len(memory) if memory is not None else 0)
            strategy.after_task(ctx)
            memory = strategy.memory()
            assert memory is not None and len(memory) <= 6, policy
            held = set(memory.labels.tolist())
            assert held <= {c for t in TASKS[: index + 1] for c in t}
            if policy != "reservoir":  # reservoir sampling is uniform over the stream: no per-task guarantee
                assert all(held & set(t) for t in TASKS[: index + 1]), (policy, index, held)
        if policy == "class_balanced":
            assert held == set(range(6))  # 6 slots, 6 classes: one image of each
