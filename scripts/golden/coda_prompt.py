"""Golden values for CODA-Prompt from the official code (GT-RIPL/CODA-Prompt: models/vit.py, models/zoo.py).

    python scripts/golden/coda_prompt.py /path/to/CODA-Prompt      # a fetched snapshot of the repository

Runs the official `VisionTransformer` (12 blocks, width 16, 16-pixel images in 8-pixel patches) with the official
`CodaPrompt` (pool 4 = 2 tasks x 2 components, length 4, prompted layers 0-4) on a fixed input, in task 1 (task 0's
components detached, task 1's re-drawn by the official Gram-Schmidt), with the official learner's loss (logits cut
to the classes seen, past classes at -inf, mean CE + the prompt loss), and records logits, loss and gradients.
Two fixtures:
  coda_prompt_shared   every layer given layer 0's keys and attention vectors, ortho_mu 0: what a model with one
                       K and A for all layers computes (today's strategy);
  coda_prompt_layered  the official per-layer K and A, ortho_mu 0.1 (penalty counted per layer).
Patches to run offline on CPU: `Tensor.cuda` makes a CPU copy. Nothing else of the official code is changed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_only_cuda_patch, import_snapshot, save_fixture, snapshot_commit  # noqa: E402

DIM, HEADS, DEPTH, IMAGE, PATCH, CLASSES = 16, 2, 12, 16, 8, 4


def run(root: Path, layered: bool) -> None:
    from models.vit import VisionTransformer
    from models.zoo import CodaPrompt

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=IMAGE, patch_size=PATCH, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                            mlp_ratio=2.0)
    with torch.no_grad():  # move every weight off its constant init (LayerNorm 1/0, zero biases)
        for p in vit.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mu = 0.1 if layered else 0.0
    prompt = CodaPrompt(DIM, 2, [4, 4, mu], key_dim=DIM)
    prompt.process_task_count()  # task 1: components 2-3 re-drawn by Gram-Schmidt, 0-1 kept
    with torch.no_grad():
        for p in [getattr(prompt, f"e_p_{l}") for l in prompt.e_layers]:  # distinct, non-trivial components
            p.add_(0.3 * torch.randn_like(p))
    if not layered:
        for l in prompt.e_layers[1:]:
            setattr(prompt, f"e_k_{l}", torch.nn.Parameter(prompt.e_k_0.detach().clone()))
            setattr(prompt, f"e_a_{l}", torch.nn.Parameter(prompt.e_a_0.detach().clone()))
    head = torch.nn.Linear(DIM, CLASSES)
    x = torch.rand(3, 3, IMAGE, IMAGE)
    y = torch.tensor([2, 3, 2])

    # ViTZoo.forward + learners/prompt.py update_model (valid_out_dim 4, last_valid_out_dim 2, weights 1)
    with torch.no_grad():
        q = vit(x)[0][:, 0, :]
    out, prompt_loss = vit(x, prompt=prompt, q=q, train=True, task_id=None)
    logits = head(out[:, 0, :])[:, :CLASSES]
    masked = logits.clone()
    masked[:, :2] = -float("inf")
    loss = F.cross_entropy(masked, y) + prompt_loss.sum()
    loss.backward()
    with torch.no_grad():
        eval_out, _ = vit(x, prompt=prompt, q=q, train=False)
        eval_logits = head(eval_out[:, 0, :])

    tensors = {f"vit.{k}": v for k, v in vit.state_dict().items()}
    tensors.update({"head.weight": head.weight, "head.bias": head.bias, "x": x, "y": y.float(), "query": q,
                    "train_logits": logits, "loss": loss.reshape(1), "prompt_loss": prompt_loss.reshape(1),
                    "eval_logits": eval_logits, "grad.head.weight": head.weight.grad,
                    "grad.head.bias": head.bias.grad})
    for l in prompt.e_layers:
        for part in ("k", "a", "p"):
            param = getattr(prompt, f"e_{part}_{l}")
            tensors[f"e_{part}_{l}"] = param
            tensors[f"grad.e_{part}_{l}"] = param.grad if param.grad is not None else torch.zeros_like(param)
    name = "coda_prompt_layered" if layered else "coda_prompt_shared"
    save_fixture(name, tensors, {
        "method": "coda_prompt", "repository": "GT-RIPL/CODA-Prompt", "commit": snapshot_commit(root),
        "official": "models/vit.py VisionTransformer, models/zoo.py CodaPrompt + ViTZoo.forward, "
                    "learners/prompt.py update_model (loss)",
        "patches": ["torch.Tensor.cuda -> a CPU copy (clone)"],
        "setting": {"embed_dim": DIM, "heads": HEADS, "depth": DEPTH, "image": IMAGE, "patch": PATCH,
                    "pool": 4, "tasks": 2, "length": 4, "ortho_mu": mu, "layers": [0, 1, 2, 3, 4], "task": 1,
                    "classes": CLASSES, "train_classes": [2, 3], "pixels": "raw [0, 1] (mean 0, std 1)"},
        "keys_and_attention": "per layer (official)" if layered else "layer 0's copied to every layer",
        "follows": "the official code as is",
    })


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    cpu_only_cuda_patch()
    run(root, layered=False)
    run(root, layered=True)


if __name__ == "__main__":
    main()
