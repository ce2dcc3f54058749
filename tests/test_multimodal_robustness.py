"""Robustness for generation (bench.multimodal.robustness): FGSM / PGD on the pixels ascend the task's own loss and
do not raise its metric on a trained model; eps = 0 is the clean evaluation; corruptions reuse the classification
suite's corruption function."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.eval.robustness_config import RobustnessConfig
from bench.multimodal.loop import evaluate, pixels_of
from bench.multimodal.pretrain import alt_text_caption_examples
from bench.multimodal.robustness import attack_pixels, generation_robustness, task_losses
from bench.multimodal.scene_model import load_scene_coca
from bench.multimodal.seq2seq import DecodeSettings
from scenarios.multimodal.streams import build_split

CFG = {"subset_size": 12, "batch_size": 12, "eps": ["0", "8/255"], "pgd_steps": 3, "autoattack": False,
       "corruptions": False}


@pytest.fixture(scope="module")
def captioner():
    return load_scene_coca()  # pretrained on captioning: a trained model for the caption kind


def test_attacks_raise_the_caption_loss_and_do_not_raise_cider(captioner):
    # the scenes scored in the captioner's own grammar, which it was trained to write (about 0.36 CIDEr-D): the
    # benchmark's references are a style it has not learned yet, where its clean score is already near the floor
    examples = alt_text_caption_examples(0, "test", 12)
    decode = DecodeSettings(max_new_tokens=24)
    out = generation_robustness(captioner, examples, CFG, decode)
    assert out["clean"]["cider"] == pytest.approx(evaluate(captioner, examples, decode)["cider"])
    for attack in ("fgsm", "pgd"):
        zero, full = out[attack]["0"], out[attack]["8/255"]
        assert zero == pytest.approx(out["clean"])  # eps 0: the clean images, metric and loss
        assert full["loss"] > out["clean"]["loss"] + 0.1, (attack, full, out["clean"])
        assert full["cider"] <= out["clean"]["cider"], (attack, full, out["clean"])
    assert out["decoding"]["decoding"] == "greedy" and out["autoattack"].startswith("not run")


def test_attacks_on_entailment_ascend_the_candidate_scoring_loss(scene_coca_entailment_finetuned):
    model, method, _, _ = scene_coca_entailment_finetuned  # shared with the method-learning tests (conftest)
    examples = build_split("entailment", "test", 0, 8)
    out = generation_robustness(model, examples, {**CFG, "fgsm": False}, method=method)
    assert out["metric"] == "accuracy" and out["clean"]["accuracy"] > 0.5
    assert out["pgd"]["8/255"]["loss"] > out["clean"]["loss"]
    assert out["pgd"]["8/255"]["accuracy"] <= out["clean"]["accuracy"]
    # The loss is cross-entropy of the gold answer among the three candidates: one example by hand.
    x = pixels_of(examples[:1])
    with torch.no_grad():
        scores = torch.stack([evaluate_scores(model, examples[0], x, answer) for answer in ("yes", "no", "maybe")])
        manual = -float(scores.log_softmax(0)[("yes", "no", "maybe").index(examples[0].target)])
        assert float(task_losses(model, examples[:1], x)[0]) == pytest.approx(manual, abs=1e-4)


def evaluate_scores(model, example, x, answer):
    from bench.multimodal.seq2seq import candidate_scores

    return candidate_scores(model, x, [example.instruction], [answer])[0, 0]


def test_budget_is_respected_and_eps_zero_returns_the_images(captioner):
    examples = build_split("vqa", "test", 0, 3)
    x = pixels_of(examples)
    for attack in ("fgsm", "pgd"):
        assert torch.equal(attack_pixels(captioner, examples, x, attack, 0.0, steps=2), x)
        adv = attack_pixels(captioner, examples, x, attack, 4 / 255, steps=2)
        assert float((adv - x).abs().max()) <= 4 / 255 + 1e-6 and 0 <= float(adv.min()) and float(adv.max()) <= 1
        assert not torch.equal(adv, x)
    with pytest.raises(ValueError, match="unknown attack"):
        attack_pixels(captioner, examples, x, "cw", 0.1)


def test_corruptions_use_the_classification_corruptions(captioner, monkeypatch):
    """The corrupted images are bench.eval.robustness.corrupt_images' (with the same seeds), evaluated per
    corruption and averaged over severities."""
    import bench.eval.robustness as classification

    seen = []
    real = classification.corrupt_images

    def spy(images, name, severity, seed):
        seen.append((name, severity, images.shape))
        return real(images, name, severity, seed)

    monkeypatch.setattr(classification, "corrupt_images", spy)
    examples = build_split("caption", "test", 0, 4)
    cfg = RobustnessConfig.from_dict({**CFG, "fgsm": False, "pgd": False, "corruptions": True,
                                      "corruption_names": ["gaussian_noise", "contrast"], "severities": [1, 5]})
    # Short captions: this test is about which images are evaluated, not about the captions' quality.
    out = generation_robustness(captioner, examples, cfg, DecodeSettings(max_new_tokens=8))["corruptions"]
    assert [s[:2] for s in seen] == [("gaussian_noise", 1), ("gaussian_noise", 5), ("contrast", 1), ("contrast", 5)]
    assert seen[0][2] == (4, 64, 64, 3)
    assert out["metric"] == "cider" and set(out["per_corruption"]) == {"gaussian_noise", "contrast"}
    assert out["mean"] == pytest.approx(np.mean(list(out["per_corruption"].values())))
