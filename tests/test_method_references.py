"""The published numbers added with the newer methods: exactly the official sources' values, labelled."""
from __future__ import annotations

from bench.report.references import load_references


def test_newer_methods_references_are_the_official_values():
    refs = load_references()
    table = {(r.method, r.metric, r.value) for r in refs}
    for method, values in {"KgCoOp": (80.73, 73.6, 77.0), "MaPLe": (82.28, 75.14, 78.55),
                           "PromptSRC": (84.26, 76.10, 79.97)}.items():
        for metric, value in zip(("base_acc", "new_acc", "harmonic_mean"), values):
            assert (method, metric, value) in table
    ranpac = {(r.backbone, r.value) for r in refs if r.strategy == "ranpac"}
    assert ranpac == {("ViT-B/16 ImageNet-21k (timm vit_base_patch16_224_in21k)", 89.0),
                      ("ViT-B/16 (timm vit_base_patch16_224)", 71.8)}
    assert all("official repository" in r.paper for r in refs if r.method in ("KgCoOp", "MaPLe", "PromptSRC"))


def test_ofa_pt_references_are_the_sources_values_labelled_with_their_source():
    refs = [r for r in load_references() if r.protocol in ("COCO captions, Karpathy test split", "VQA v2", "SNLI-VE",
                                                           "RefCOCO")]
    finetuned = {(r.backbone.split()[0], r.protocol, r.metric): r.value
                 for r in refs if r.strategy != "seq2seq_deep_prompt"}
    # the OFA README's results table (OFA-Sys/OFA at 67ffbcf): OFA-Base and OFA-Large fine-tuned
    captions = "COCO captions, Karpathy test split"
    assert finetuned[("OFA-Base", captions, "CIDEr (x100), after CIDEr optimisation")] == 146.7
    assert finetuned[("OFA-Large", "VQA v2", "VQA accuracy, test-std")] == 80.7
    assert finetuned[("OFA-Large", "SNLI-VE", "accuracy, test")] == 90.2
    assert finetuned[("OFA-Base", "RefCOCO", "accuracy at IoU >= 0.5, testA")] == 90.67
    assert len(finetuned) == 2 * 9
    prompt = {(r.protocol, r.metric): r.value for r in refs if r.strategy == "seq2seq_deep_prompt"}
    assert prompt == {("COCO captions, Karpathy test split", "CIDEr (x100)"): 141.4,
                      ("COCO captions, Karpathy test split", "BLEU-4 (x100)"): 41.81,
                      ("VQA v2", "VQA accuracy, test-std"): 78.53, ("SNLI-VE", "accuracy, val"): 90.04,
                      ("SNLI-VE", "accuracy, test"): 90.12}
    # CIDEr and BLEU are not percentages; every number names where it was read
    assert all(r.unit == "x100" for r in refs if "CIDEr" in r.metric or "BLEU" in r.metric)
    assert all("OFA-Sys/OFA" in r.paper or "Papers with Code" in r.paper for r in refs)
