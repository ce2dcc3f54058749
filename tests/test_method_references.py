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
