"""Golden values for DualPrompt from the PyTorch port of the official code (JH-LEE-KR/dualprompt-pytorch:
vision_transformer.py, prompt.py, attention.py, engine.py's loss).

    python scripts/golden/dualprompt.py /path/to/dualprompt-pytorch      # a fetched snapshot of the repository

The port's `VisionTransformer` (12 blocks, width 16, 2 heads, 16-pixel images in 8-pixel patches) with the CIFAR
config's structure (G-prompt prefixes at layers 0-1, E-prompt prefixes at 2-4, top-1 of a 4-prompt pool keyed by
the frozen model's [CLS] feature, prefix tuning for both, head on the class token), G length 2, E length 3.
Recorded: the frozen query, the training loss of task 1 (E-prompt 1 by the prompt mask, classes outside the task
at -inf, CE - 1.0 * reduce_sim), its gradients, and test-time logits (top-1 key over the whole pool).

Known bug followed around, not patched: `EPrompt.forward` turns the selected prefixes `(layers, 2, B, ...)` into
`(layers, B, 2, ...)` with `reshape` where a transpose is meant, which mixes images and key/value halves when the
batch holds more than one image (https://github.com/JH-LEE-KR/dualprompt-pytorch, prompt.py). With one image per
call the reshape is exactly the transpose, so every image runs through the official code alone and the batch loss
and gradients are the means over images, as the official batch would give without the bug (the JAX original has
no such bug). No other patch: the port imports with timm 1.x as is.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import import_snapshot, save_fixture, snapshot_commit  # noqa: E402

DIM, HEADS, DEPTH, IMAGE, PATCH, CLASSES, POOL = 16, 2, 12, 16, 8, 4, 4
ARCH = dict(img_size=IMAGE, patch_size=PATCH, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, mlp_ratio=2.0,
            num_classes=CLASSES)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    from vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(**ARCH, prompt_length=3, embedding_key="cls", prompt_init="uniform", prompt_pool=True,
                              prompt_key=True, pool_size=POOL, top_k=1, batchwise_prompt=False,
                              prompt_key_init="uniform", head_type="token", use_prompt_mask=True, use_g_prompt=True,
                              g_prompt_length=2, g_prompt_layer_idx=[0, 1], use_prefix_tune_for_g_prompt=True,
                              use_e_prompt=True, e_prompt_layer_idx=[2, 3, 4], use_prefix_tune_for_e_prompt=True,
                              same_key_value=False)
    with torch.no_grad():  # off the constant inits (LayerNorm 1/0, zero biases, near-zero head)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    original = VisionTransformer(**ARCH)  # engine.py's `original_model`: the same frozen ViT without prompts
    original.load_state_dict(model.state_dict(), strict=False)
    model.eval()
    original.eval()
    x = torch.rand(3, 3, IMAGE, IMAGE)
    y = torch.tensor([2, 3, 2])
    task, class_mask = 1, [2, 3]

    with torch.no_grad():
        query = original(x)["pre_logits"]
    not_mask = torch.tensor([c for c in range(CLASSES) if c not in class_mask])
    total, logits_rows = 0.0, []
    for i in range(x.shape[0]):  # one image per call: see the docstring (the port's reshape bug)
        out = model(x[i:i + 1], task_id=task, cls_features=query[i:i + 1], train=True)
        logits = out["logits"]
        logits_rows.append(logits.detach())
        masked = logits.index_fill(dim=1, index=not_mask, value=float("-inf"))
        loss = (F.cross_entropy(masked, y[i:i + 1]) - 1.0 * out["reduce_sim"]) / x.shape[0]
        loss.backward()
        total += float(loss)
    eval_rows, chosen = [], []
    with torch.no_grad():
        for i in range(x.shape[0]):
            out = model(x[i:i + 1], task_id=-1, cls_features=query[i:i + 1], train=False)
            eval_rows.append(out["logits"])
            chosen.append(out["prompt_idx"].reshape(1).float())

    vit = {k: v for k, v in original.state_dict().items() if not k.startswith("head.")}
    tensors = {f"vit.{k}": v for k, v in vit.items()}
    tensors.update({
        "x": x, "y": y.float(), "query": query, "train_logits": torch.cat(logits_rows),
        "loss": torch.tensor([total]), "eval_logits": torch.cat(eval_rows), "eval_prompt_idx": torch.cat(chosen),
        "g_prompt": model.g_prompt, "e_prompt": model.e_prompt.prompt, "prompt_key": model.e_prompt.prompt_key,
        "head.weight": model.head.weight, "head.bias": model.head.bias,
        "grad.g_prompt": model.g_prompt.grad, "grad.e_prompt": model.e_prompt.prompt.grad,
        "grad.prompt_key": model.e_prompt.prompt_key.grad, "grad.head.weight": model.head.weight.grad,
        "grad.head.bias": model.head.bias.grad})
    save_fixture("dualprompt", tensors, {
        "method": "dualprompt", "repository": "JH-LEE-KR/dualprompt-pytorch", "commit": snapshot_commit(root),
        "official": "vision_transformer.py VisionTransformer (+ prompt.py EPrompt, attention.py PreT_Attention), "
                    "engine.py train_one_epoch's loss",
        "patches": [],
        "setting": {"embed_dim": DIM, "heads": HEADS, "depth": DEPTH, "image": IMAGE, "patch": PATCH,
                    "classes": CLASSES, "pool_size": POOL, "g_layers": [0, 1], "e_layers": [2, 3, 4],
                    "g_length": 2, "e_length": 3, "pull_weight": 1.0, "task": task, "train_classes": class_mask,
                    "pixels": "raw [0, 1] (mean 0, std 1)"},
        "follows": "the PyTorch port with its prefix reshape bug avoided by one image per call (equal to the JAX "
                   "original's transpose); the loss is the port's CE - reduce_sim, ours CE + (1 - cos): equal up "
                   "to the constant pull_weight, same gradients",
    })


if __name__ == "__main__":
    main()
