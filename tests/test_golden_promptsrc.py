"""PromptSRC against numbers produced by the official code (tests/golden/promptsrc.json says how; regenerate with
scripts/golden/promptsrc.py): the same tiny CLIP (BPE vocabulary, OpenAI layout), prompts and images, then the
frozen template-averaged text features, the prompted and frozen image features, both logits, the loss (CE and the
three self-regulating terms), the gradients of every prompt and the Gaussian epoch weights."""
from __future__ import annotations


import torch

from bench.core.data import Batch, ScenarioInfo, TaskContext, TensorData
from bench.core.strategy import build_strategy
from strategies.promptsrc import TEMPLATES, gaussian_epoch_weights
from golden_fixtures import TOL, load, tiny_clip


def test_promptsrc_matches_the_official_code():
    tensors, meta = load("promptsrc")
    s = meta["setting"]
    assert list(TEMPLATES) == s["templates"]  # the teacher the official one was run with
    info = ScenarioInfo("base_to_new", len(s["classes"]), s["classes"])
    strategy = build_strategy("promptsrc", tiny_clip(tensors, s), info,
                              {"n_ctx_text": s["n_ctx_text"], "n_ctx_vision": s["n_ctx_vision"],
                               "ctx_init": s["ctx_init"], "prompt_depth": s["our_prompt_depth"],
                               "text_weight": s["text_weight"], "image_weight": s["image_weight"]})
    assert strategy.depth == s["official_prompt_depth"]
    torch.testing.assert_close(strategy.ctx.detach(), tensors["init.ctx"], **TOL)
    torch.testing.assert_close(strategy.frozen_text, tensors["frozen_text"], **TOL)
    # the deeper prompts are seed-drawn there: copied in
    ours = {"ctx": (strategy.ctx, None), "deep_text.0": (strategy.deep_text, 0),
            "vision.0": (strategy.vision_prompts, 0), "vision.1": (strategy.vision_prompts, 1)}
    with torch.no_grad():
        for name, (p, i) in ours.items():
            (p if i is None else p[i]).copy_(tensors[f"init.{name}"])
    strategy.train()
    x, y = tensors["x"], tensors["y"].long()
    with torch.no_grad():
        image, text = strategy.image_features(x), strategy.encode_text_features()
        frozen_image = strategy.frozen_inputs(x)
        torch.testing.assert_close(image, tensors["image"], **TOL)
        torch.testing.assert_close(text, tensors["text"], **TOL)
        torch.testing.assert_close(frozen_image, tensors["frozen_image"], **TOL)
        scale = strategy.backbone.logit_scale
        torch.testing.assert_close(scale * image @ text.t(), tensors["logits"], **TOL)
        torch.testing.assert_close(scale * frozen_image @ strategy.frozen_text.t(), tensors["zero_shot_logits"], **TOL)
    classes = list(range(len(s["classes"])))
    empty = TensorData(torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    ctx = TaskContext(index=0, num_steps=1, train_classes=classes, seen_classes=classes, domain=None,
                      train_data=empty)
    loss = strategy.training_loss(Batch(x=x, y=y, cached=None), ctx)
    torch.testing.assert_close(loss.reshape(1), tensors["loss"], **TOL)
    loss.backward()
    for name, (p, i) in ours.items():
        grad = p.grad if i is None else p.grad[i]
        torch.testing.assert_close(grad, tensors[f"grad.{name}"], **TOL,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")
    g = s["gpa"]
    weights = torch.tensor(gaussian_epoch_weights(g["epochs"], g["mean"], g["std"]))
    torch.testing.assert_close(weights, tensors["gpa_weights"], atol=1e-7, rtol=1e-6)
