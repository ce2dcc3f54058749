"""Golden values for L2P from the PyTorch port of the official code (JH-LEE-KR/l2p-pytorch: vision_transformer.py,
prompt.py, engine.py's loss).

    python scripts/golden/l2p.py /path/to/l2p-pytorch      # a fetched snapshot of the repository

The port's `VisionTransformer` (12 blocks, width 16, 2 heads, 16-pixel images in 8-pixel patches) with a pool of
5 prompts of length 2, top-2 by the frozen model's [CLS] feature, the head on the mean of the prompt tokens
(head_type 'prompt'), on a fixed input of 4 images. Two fixtures:
  l2p_perimage   each image its own top-2 (batchwise_prompt False) in training and at test;
  l2p_vote       batch-wise voting in training (batchwise_prompt True, the official CIFAR config), per image at
                 test; the input is chosen so the vote has no tie (the port and ours may break ties differently).
Recorded: the query, the training loss (classes outside the task at -inf, CE - 0.5 * reduce_sim), its gradients,
test-time logits.

Reference followed: the JAX original, which adds no position embedding to the prompt slots. The port adds the
learned position embeddings of its longer sequence there; the fixture zeroes those slots of the port's position
embedding (a weight, not a code change), so the port computes the JAX function. Avalanche's L2P (not used here)
masks logits differently; the port's mask (-inf outside the task) is the one followed. No code is patched.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import import_snapshot, save_fixture, snapshot_commit  # noqa: E402

DIM, HEADS, DEPTH, IMAGE, PATCH, CLASSES = 16, 2, 12, 16, 8, 4
POOL, LENGTH, TOP_K, PULL = 5, 2, 2, 0.5
ARCH = dict(img_size=IMAGE, patch_size=PATCH, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, mlp_ratio=2.0,
            num_classes=CLASSES)


def run(root: Path, vote: bool) -> None:
    from vision_transformer import VisionTransformer

    for seed in range(50):  # the voting fixture needs an input whose vote has no tie
        torch.manual_seed(seed)
        model = VisionTransformer(**ARCH, prompt_length=LENGTH, embedding_key="cls", prompt_init="uniform",
                                  prompt_pool=True, prompt_key=True, pool_size=POOL, top_k=TOP_K,
                                  batchwise_prompt=vote, prompt_key_init="uniform", head_type="prompt",
                                  use_prompt_mask=False)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
            model.pos_embed[:, 1:1 + LENGTH * TOP_K] = 0  # JAX: no position on prompt slots (see docstring)
        original = VisionTransformer(**ARCH)  # engine.py's `original_model`
        plain = {k: v for k, v in model.state_dict().items() if not k.startswith(("prompt.", "head."))}
        plain["pos_embed"] = torch.cat([model.pos_embed[:, :1], model.pos_embed[:, 1 + LENGTH * TOP_K:]], dim=1)
        original.load_state_dict(plain, strict=False)
        model.eval()
        original.eval()
        x = torch.rand(4, 3, IMAGE, IMAGE)
        with torch.no_grad():
            query = original(x)["pre_logits"]
        if not vote:
            break
        cos = F.normalize(query, dim=-1) @ F.normalize(model.prompt.prompt_key, dim=-1).t()
        counts = torch.bincount(cos.topk(TOP_K, dim=1).indices.flatten(), minlength=POOL).sort(descending=True)
        if counts.values[TOP_K - 1] > counts.values[TOP_K] and len(set(counts.values[:TOP_K].tolist())) == TOP_K:
            break
    else:
        raise SystemExit("no tie-free vote in 50 seeds")
    y = torch.tensor([2, 3, 3, 2])
    class_mask = [2, 3]
    out = model(x, task_id=1, cls_features=query, train=True)
    not_mask = torch.tensor([c for c in range(CLASSES) if c not in class_mask])
    logits = out["logits"]
    loss = F.cross_entropy(logits.index_fill(1, not_mask, float("-inf")), y) - PULL * out["reduce_sim"]
    loss.backward()
    model.prompt.batchwise_prompt = False  # test time: per image (ours votes only in the flagged l2p_batchvote)
    with torch.no_grad():
        test = model(x, task_id=-1, cls_features=query, train=False)

    tensors = {f"vit.{k}": v for k, v in original.state_dict().items() if not k.startswith("head.")}
    tensors.update({
        "x": x, "y": y.float(), "query": query, "train_logits": logits, "train_prompt_idx": out["prompt_idx"].float(),
        "loss": loss.reshape(1), "eval_logits": test["logits"], "eval_prompt_idx": test["prompt_idx"].float(),
        "prompts": model.prompt.prompt, "keys": model.prompt.prompt_key, "head.weight": model.head.weight,
        "head.bias": model.head.bias, "grad.prompts": model.prompt.prompt.grad,
        "grad.keys": model.prompt.prompt_key.grad, "grad.head.weight": model.head.weight.grad,
        "grad.head.bias": model.head.bias.grad})
    save_fixture("l2p_vote" if vote else "l2p_perimage", tensors, {
        "method": "l2p", "repository": "JH-LEE-KR/l2p-pytorch", "commit": snapshot_commit(root),
        "official": "vision_transformer.py VisionTransformer (+ prompt.py Prompt), engine.py train_one_epoch's loss",
        "patches": [],
        "setting": {"embed_dim": DIM, "heads": HEADS, "depth": DEPTH, "image": IMAGE, "patch": PATCH,
                    "classes": CLASSES, "pool_size": POOL, "length": LENGTH, "top_k": TOP_K, "pull_weight": PULL,
                    "train_voting": vote, "train_classes": class_mask, "pixels": "raw [0, 1] (mean 0, std 1)",
                    "seed": seed},
        "follows": "the JAX original: the port with zero position embedding on the prompt slots (the port adds "
                   "learned ones); the port's -inf class mask (not avalanche's)",
    })


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = import_snapshot(sys.argv[1])
    run(root, vote=False)
    run(root, vote=True)


if __name__ == "__main__":
    main()
