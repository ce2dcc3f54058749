"""Every sequence-to-sequence method trains above its untrained start on held-out scenes, from the embedded
pretrained scene CoCa (captioning-pretrained: VQA and entailment are new tasks to it), with the metric each kind is
scored by. Numbers measured when the thresholds were set are in the comments (train 40 scenes, test 10 scenes,
seed 0, one CPU thread)."""
from __future__ import annotations

import copy

import pytest

from bench.multimodal.loop import PRIMARY_METRIC, TrainSettings, evaluate, train
from bench.multimodal.methods import build_method
from bench.multimodal.scene_model import load_scene_coca
from bench.multimodal.seq2seq import DecodeSettings
from scenarios.multimodal.streams import build_split

# method, params, kind, steps, batch size, lr, start below, end above. Measured (start -> end on the 30 held-out
# examples, training seeds 0 / 1):
CASES = [
    ("finetune", {}, "vqa", 20, 16, 3e-3, 0.05, 0.15),                          # 0.00 -> 0.27 / 0.33
    ("adapter", {}, "vqa", 60, 16, 3e-3, 0.05, 0.1),                            # 0.00 -> 0.23
    ("lora", {}, "vqa", 20, 16, 1e-2, 0.05, 0.15),                              # 0.00 -> 0.33 / 0.40
    ("bitfit", {}, "vqa", 150, 8, 3e-2, 0.05, 0.15),                            # 0.00 -> 0.30 / 0.33
    ("deep_prompt", {"length": 8, "reparam": True}, "vqa", 150, 8, 1e-2, 0.05, 0.2),  # 0.00 -> 0.27 / 0.33
    ("lora", {}, "entailment", 150, 16, 3e-3, 0.3, 0.4),                        # 0.20 -> 0.50
]
# Fine-tuning on entailment (75 steps lr 2e-3: 0.20 -> 0.67 / 0.73, asserted start < 0.3, end > 0.5) is trained
# once per session by the conftest fixture the robustness tests share. Smaller budgets measured below the
# thresholds: adapter 20 steps lr 1e-2 or 40 steps lr 3e-3 (0.00-0.03) and 60 steps batch 8 (0.03 / 0.23) on VQA,
# BitFit 30 steps lr 1e-1 and deep prompts 30 steps lr 3e-2 (0.00), LoRA on entailment 75 steps lr 6e-3 or 100 steps
# lr 5e-3 (0.40) and 150 steps batch 8 (0.33), fine-tuning entailment 30 steps lr 3e-3 (0.33).
# Not asserted, measured with the same budget: on entailment adapter 0.20 -> 0.33, BitFit 0.20 -> 0.33, deep prompts
# 0.20 -> 0.30 (the label prior, not reading: the captioning-pretrained decoder, frozen, does not learn to compare
# premise and hypothesis in 150 steps). Input prompts beat their start on no kind: VQA 0.00 -> 0.00 (60 steps lr 3e-2;
# 150 steps lr 1e-1), entailment 0.27 -> 0.30, captioning CIDEr-D 0.73 -> 0.65 (100 steps lr 3e-2): tokens at the
# image encoder's input alone do not switch a frozen captioner's decoder to answering.

@pytest.fixture(scope="module")
def pretrained():
    return load_scene_coca()  # loaded once; each test trains its own copy


@pytest.fixture(scope="module")
def splits():
    return {kind: (build_split(kind, "train", 0, 40), build_split(kind, "test", 0, 10))
            for kind in ("vqa", "entailment")}


@pytest.mark.parametrize("name, params, kind, steps, batch_size, lr, start_below, end_above", CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_method_learns_above_its_untrained_start(pretrained, splits, name, params, kind, steps, batch_size, lr,
                                                 start_below, end_above):
    train_set, test_set = splits[kind]
    model = copy.deepcopy(pretrained)
    method = build_method(name, **params)
    method.attach(model)
    decode = DecodeSettings(max_new_tokens=4)
    start = evaluate(model, test_set, decode, method)[PRIMARY_METRIC[kind]]
    train(model, train_set, TrainSettings(steps=steps, batch_size=batch_size, lr=lr), method)
    end = evaluate(model, test_set, decode, method)[PRIMARY_METRIC[kind]]
    assert start < start_below and end > end_above, (start, end)


def test_fine_tuning_learns_entailment_above_its_untrained_start(scene_coca_entailment_finetuned):
    model, method, start, held_out = scene_coca_entailment_finetuned
    end = evaluate(model, held_out, method=method)["accuracy"]
    assert start < 0.3 and end > 0.5, (start, end)
