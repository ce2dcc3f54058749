"""Golden values for VPT from the official code (KMnP/vpt: src/models/vit_prompt/vit.py `PromptedTransformer`,
on its ViT backbone src/models/vit_backbones/vit.py).

    python scripts/golden/vpt.py /path/to/vpt      # a fetched snapshot of the repository

The official `PromptedTransformer` (3 blocks, width 16, 2 heads, 16-pixel images in 8-pixel patches, 3 prompt
tokens, random init, dropout 0) shallow and deep, with a linear head on the class token as
`PromptedVisionTransformer.forward`; recorded: logits, CE loss and the gradients of the prompts and the head on a
fixed input, and the backbone's weights renamed to timm's layout (query/key/value -> qkv, out -> proj,
attention_norm/ffn_norm -> norm1/norm2, encoder_norm -> norm).
Patches to import offline: stub modules for `ml_collections` (a dict with attribute access, which is all
`ConfigDict` is used for here) and `src.utils.logging` (get_logger -> the standard library's). The model is
`PromptedTransformer` itself: `PromptedVisionTransformer` only adds a head and reads a named config.
"""
from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import AttrDict, import_snapshot, save_fixture, snapshot_commit  # noqa: E402

DIM, HEADS, DEPTH, IMAGE, PATCH, TOKENS, CLASSES = 16, 2, 3, 16, 8, 3, 4


def stub_imports() -> None:
    sys.modules["ml_collections"] = types.SimpleNamespace(ConfigDict=AttrDict)  # type: ignore[assignment]
    sys.modules["src.utils.logging"] = types.SimpleNamespace(get_logger=logging.getLogger)  # type: ignore


def timm_names(model) -> dict[str, torch.Tensor]:
    emb, enc = model.embeddings, model.encoder
    out = {"cls_token": emb.cls_token, "pos_embed": emb.position_embeddings,
           "patch_embed.proj.weight": emb.patch_embeddings.weight, "patch_embed.proj.bias": emb.patch_embeddings.bias,
           "norm.weight": enc.encoder_norm.weight, "norm.bias": enc.encoder_norm.bias}
    for i, block in enumerate(enc.layer):
        a = block.attn
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([a.query.weight, a.key.weight, a.value.weight])
        out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([a.query.bias, a.key.bias, a.value.bias])
        out[f"blocks.{i}.attn.proj.weight"], out[f"blocks.{i}.attn.proj.bias"] = a.out.weight, a.out.bias
        for ours, theirs in (("norm1", block.attention_norm), ("norm2", block.ffn_norm),
                             ("mlp.fc1", block.ffn.fc1), ("mlp.fc2", block.ffn.fc2)):
            out[f"blocks.{i}.{ours}.weight"], out[f"blocks.{i}.{ours}.bias"] = theirs.weight, theirs.bias
    return {f"vit.{k}": v.detach() for k, v in out.items()}


def run(root: Path, deep: bool) -> None:
    from src.models.vit_prompt.vit import PromptedTransformer

    torch.manual_seed(0)
    config = AttrDict(patches=AttrDict(size=(PATCH, PATCH)), hidden_size=DIM, classifier="token",
                      representation_size=None,
                      transformer=AttrDict(mlp_dim=2 * DIM, num_heads=HEADS, num_layers=DEPTH,
                                           attention_dropout_rate=0.0, dropout_rate=0.0))
    prompt = AttrDict(LOCATION="prepend", INITIATION="random", NUM_DEEP_LAYERS=None, DEEP_SHARED=False,
                      NUM_TOKENS=TOKENS, DROPOUT=0.0, PROJECT=-1, DEEP=deep)
    model = PromptedTransformer(prompt, config, IMAGE, False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "prompt" not in name:  # off the constant inits; prompts keep the official xavier-uniform init
                p.add_(0.1 * torch.randn_like(p))
    head = nn.Linear(DIM, CLASSES)
    model.train()
    x, y = torch.rand(3, 3, IMAGE, IMAGE), torch.tensor([0, 3, 1])
    encoded, _ = model(x)
    logits = head(encoded[:, 0])  # PromptedVisionTransformer.forward
    loss = F.cross_entropy(logits, y)
    loss.backward()
    prompts = model.prompt_embeddings.detach()
    grads = model.prompt_embeddings.grad
    if deep:
        prompts = torch.cat([prompts, model.deep_prompt_embeddings.detach()])
        grads = torch.cat([grads, model.deep_prompt_embeddings.grad])
    tensors = timm_names(model)
    tensors.update({"x": x, "y": y.float(), "prompts": prompts, "head.weight": head.weight, "head.bias": head.bias,
                    "logits": logits, "loss": loss.reshape(1), "grad.prompts": grads,
                    "grad.head.weight": head.weight.grad, "grad.head.bias": head.bias.grad})
    save_fixture("vpt_deep" if deep else "vpt_shallow", tensors, {
        "method": "vpt_deep" if deep else "vpt_shallow", "repository": "KMnP/vpt", "commit": snapshot_commit(root),
        "official": "src/models/vit_prompt/vit.py PromptedTransformer (+ the head of PromptedVisionTransformer)",
        "patches": ["stub ml_collections (ConfigDict -> dict with attribute access)",
                    "stub src.utils.logging (get_logger -> logging.getLogger)"],
        "setting": {"embed_dim": DIM, "heads": HEADS, "depth": DEPTH, "image": IMAGE, "patch": PATCH,
                    "length": TOKENS, "classes": CLASSES, "deep": deep, "dropout": 0.0,
                    "pixels": "raw [0, 1] (mean 0, std 1)"},
        "follows": "the official code as is",
    })


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    stub_imports()
    run(root, deep=False)
    run(root, deep=True)


if __name__ == "__main__":
    main()
