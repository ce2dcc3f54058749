"""Every sequence-to-sequence method trains above its untrained start on held-out scenes, from the embedded
pretrained scene CoCa (captioning-pretrained: VQA and entailment are new tasks to it), with the metric each kind is
scored by. Numbers measured when the thresholds were set are in the comments (train 40 scenes, test 10 scenes,
seed 0, one CPU thread)."""
from __future__ import annotations

import pytest

from bench.multimodal.loop import PRIMARY_METRIC, TrainSettings, evaluate, train
from bench.multimodal.methods import build_method
from bench.multimodal.scene_model import load_scene_coca
from bench.multimodal.seq2seq import DecodeSettings
from scenarios.multimodal.streams import build_split

# method, params, kind, steps, lr, start below, end above. Measured (start -> end on the 30 held-out examples):
CASES = [
    ("finetune", {}, "vqa", 60, 1e-3, 0.05, 0.15),                          # 0.00 -> 0.30
    ("adapter", {}, "vqa", 60, 3e-3, 0.05, 0.1),                            # 0.00 -> 0.23
    ("lora", {}, "vqa", 60, 3e-3, 0.05, 0.15),                              # 0.00 -> 0.33
    ("bitfit", {}, "vqa", 150, 3e-2, 0.05, 0.15),                           # 0.00 -> 0.37
    ("deep_prompt", {"length": 8, "reparam": True}, "vqa", 150, 1e-2, 0.05, 0.2),  # 0.00 -> 0.43
    ("finetune", {}, "entailment", 150, 1e-3, 0.3, 0.5),                    # 0.20 -> 0.77
    ("lora", {}, "entailment", 150, 3e-3, 0.3, 0.4),                        # 0.20 -> 0.50
]
# Not asserted, measured with the same budget: on entailment adapter 0.20 -> 0.33, BitFit 0.20 -> 0.33, deep prompts
# 0.20 -> 0.30 (the label prior, not reading: the captioning-pretrained decoder, frozen, does not learn to compare
# premise and hypothesis in 150 steps). Input prompts beat their start on no kind: VQA 0.00 -> 0.00 (60 steps lr 3e-2;
# 150 steps lr 1e-1), entailment 0.27 -> 0.30, captioning CIDEr-D 0.73 -> 0.65 (100 steps lr 3e-2): tokens at the
# image encoder's input alone do not switch a frozen captioner's decoder to answering.

@pytest.fixture(scope="module")
def splits():
    return {kind: (build_split(kind, "train", 0, 40), build_split(kind, "test", 0, 10))
            for kind in ("vqa", "entailment")}


@pytest.mark.parametrize("name, params, kind, steps, lr, start_below, end_above", CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_method_learns_above_its_untrained_start(splits, name, params, kind, steps, lr, start_below, end_above):
    train_set, test_set = splits[kind]
    model = load_scene_coca()
    method = build_method(name, **params)
    method.attach(model)
    decode = DecodeSettings(max_new_tokens=4)
    start = evaluate(model, test_set, decode, method)[PRIMARY_METRIC[kind]]
    train(model, train_set, TrainSettings(steps=steps, lr=lr), method)
    end = evaluate(model, test_set, decode, method)[PRIMARY_METRIC[kind]]
    assert start < start_below and end > end_above, (start, end)
