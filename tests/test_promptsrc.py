"""PromptSRC: the self-regulating loss terms and Gaussian-weighted prompt aggregation over epochs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy, freeze_all_but_trainable
from bench.models.backbones import create_backbone
from strategies.promptsrc import gaussian_epoch_weights

INFO = ScenarioInfo("base_to_new", 3, ["the digit 0", "the digit 1", "the digit 2"])


def build(**config):
    torch.manual_seed(0)
    strategy = build_strategy("promptsrc", create_backbone("clip_test_micro"), INFO, config)
    freeze_all_but_trainable(strategy)
    return strategy


def test_gaussian_weights_peak_at_the_scaled_mean_and_sum_to_one():
    weights = gaussian_epoch_weights(20, 15.0, 1.0)
    assert abs(sum(weights) - 1) < 1e-9 and max(range(20), key=weights.__getitem__) == 14  # epoch 15
    assert max(range(4), key=gaussian_epoch_weights(4, 15.0, 1.0).__getitem__) == 2  # mean 3 of 4 epochs


def test_loss_is_cross_entropy_plus_the_three_regularisers():
    strategy = build(text_weight=25.0, image_weight=10.0, logits_weight=1.0)
    gen = torch.Generator().manual_seed(2)
    frozen_image = F.normalize(torch.randn(4, 32, generator=gen), dim=-1)
    image = F.normalize(frozen_image + 0.3 * torch.randn(4, 32, generator=gen), dim=-1)
    text = F.normalize(strategy.frozen_text + 0.3 * torch.randn(3, 32, generator=gen), dim=-1)
    y, classes = torch.tensor([0, 1, 1, 0]), [0, 1]
    scale = strategy.backbone.logit_scale.detach()
    with torch.no_grad():
        # no regularisation when the prompted features are the frozen ones: plain CE
        same = strategy.regularised_loss(frozen_image, frozen_image, strategy.frozen_text, y, classes)
        plain = F.cross_entropy(scale * frozen_image @ strategy.frozen_text[:2].t(), y)
        assert torch.allclose(same, plain, atol=1e-5)
        loss = strategy.regularised_loss(image, frozen_image, text, y, classes)
    logits = scale * image @ text[:2].t()
    zero_shot = scale * frozen_image @ strategy.frozen_text[:2].t()
    p_zs = F.softmax(zero_shot, dim=1)
    kl = (p_zs * (F.log_softmax(zero_shot, dim=1) - F.log_softmax(logits, dim=1))).sum() / logits.numel()
    expected = (F.cross_entropy(logits, y) + 25 * (text[:2] - strategy.frozen_text[:2]).abs().mean()
                + 10 * (image - frozen_image).abs().mean() + kl)
    assert torch.allclose(loss, expected, atol=1e-5)


def test_prompts_after_a_task_are_the_gaussian_weighted_sum_over_epochs():
    strategy = build(epochs=3, batch_size=2, gpa_mean=10.0, gpa_std=1.0)  # mean 1.5 of 3 epochs
    data = TensorData(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    ctx = TaskContext(index=0, num_steps=1, train_classes=[0, 1], seen_classes=[0, 1], domain=None, train_data=data)
    params = [p for _, p in strategy.trainable_parameters()]
    optimizer = torch.optim.SGD(params, lr=0.5)
    strategy.before_task(ctx)
    snapshots = []
    for _ in range(3):  # what the harness does: 2 batches per epoch, a step after each loss
        for index in (torch.tensor([0, 1]), torch.tensor([2, 3])):
            x = data.images[index].float() / 255
            loss = strategy.training_loss(Batch(x=x, y=data.labels[index]), ctx)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        snapshots.append([p.detach().clone() for p in params])
    strategy.after_task(ctx)
    weights = gaussian_epoch_weights(3, 10.0, 1.0)
    for i, param in enumerate(params):
        expected = sum(w * snap[i] for w, snap in zip(weights, snapshots))
        assert torch.allclose(param.detach(), expected, atol=1e-6)
        assert not torch.allclose(param.detach(), snapshots[-1][i])  # not simply the last epoch's prompts
