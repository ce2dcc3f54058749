"""Device check for the real-data path: one real-format fixture end to end on CUDA, with randomly initialised
ViT-B/16 (timm) and CLIP ViT-B/16 (open_clip); no weights are fetched.

Writes a miniature ImageNet-R tree (200 wnid folders of JPEGs) and a CoOp split JSON (Oxford Pets layout), then
  1. runs one cell per backbone through the runner (linear probe on imagenet_r_10t; CoOp on coop_oxford_pets_b2n),
  2. prints frozen-encoder throughput (images/s: on-disk JPEG -> loader -> encoder under bf16 autocast),
  3. prints the bf16-vs-fp32 difference of the encoders' outputs on one batch (max |diff| relative to max |fp32|,
     and the share of images whose argmax over a random linear head agrees).

  4. with --paper: the GPU rows of the paper-suite cost table instead (bench/perf_paper.py on CUDA, in one
     process, batch 32 or the recipe's, capped by the miniature task's images: 40 for CIFAR): seconds per step and CUDA peak memory of every paper-suite entry on the
     real architectures, and the suites projected from them.

    python scripts/device_check_real.py                 # on the GPU (a few minutes)
    python scripts/device_check_real.py --paper         # the paper-suite GPU rows (aimed at under 5 minutes)
    python scripts/device_check_real.py --tiny          # CPU, micro backbones, seconds: checks the script runs
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def throughput(encoder: torch.nn.Module, data, device: torch.device, batch_size: int, bf16: bool) -> float:
    from bench.core.data import image_batches

    cast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    n = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad(), cast:
        for _, images in image_batches(data, batch_size):
            encoder(images.to(device, non_blocking=True).float().div_(255))
            n += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


@torch.no_grad()
def bf16_gap(encoder: torch.nn.Module, pixels: torch.Tensor, device: torch.device) -> tuple[float, float]:
    fp32 = encoder(pixels).float()
    with torch.autocast(device.type, dtype=torch.bfloat16):
        bf16 = encoder(pixels).float()
    head = torch.randn(fp32.shape[-1], 100, generator=torch.Generator().manual_seed(0)).to(device)
    agree = ((fp32 @ head).argmax(-1) == (bf16 @ head).argmax(-1)).float().mean().item()
    return ((fp32 - bf16).abs().max() / fp32.abs().max()).item(), agree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="micro backbones on CPU: only checks the script runs")
    parser.add_argument("--per-class", type=int, default=None, help="images per ImageNet-R class")
    parser.add_argument("--paper", action="store_true", help="the paper-suite GPU rows (bench/perf_paper.py)")
    parser.add_argument("--out", default=str(Path(os.environ.get("OUT", "results")) / "perf_paper"),
                        help="--paper: folder for the tables (default $OUT/perf_paper)")
    args = parser.parse_args(argv)
    if args.paper:
        from bench.perf_paper import main as perf_paper

        return perf_paper((["--tiny", "--device", "cpu", "--only", "coop_b2n_m4,l2p_cifar"] if args.tiny else
                           ["--device", "cuda", "--batch", "32", "--per-class", "4"])
                          + ["--in-process", "--out", args.out])
    import strategies  # noqa: F401  (registers every strategy)
    from bench.contract import mini_data
    from bench.core.device import select_device
    from bench.models.backbones import create_backbone
    from bench.run.runner import CellConfig, run_cell
    from scenarios.catalog import build_scenario
    from scenarios.source_streams import configure_preprocess

    device = torch.device("cpu") if args.tiny else select_device("cuda")
    vit, clip = (("vit_test_micro", "clip_test_micro") if args.tiny
                 else ("vit_base_patch16_224.augreg_in21k", "ViT-B-16.openai"))
    per_class = args.per_class or (2 if args.tiny else 10)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["PROMPTSHIFT_DATA"] = str(root)
        os.environ.setdefault("PROMPTSHIFT_LOADER_WORKERS", "0" if args.tiny else "8")
        start = time.perf_counter()
        mini_data.write_imagenet_r(root, per_class=per_class, size=64 if args.tiny else 256)
        mini_data.write_coop_pets(root, num_classes=10, train_per_class=4, size=64 if args.tiny else 256)
        print(f"fixtures written in {time.perf_counter() - start:.1f}s under {root}")
        print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")

        cells = [CellConfig(scenario="imagenet_r_10t", strategy="linear_probe", backbone=vit, seed=0,
                            weights="none", strategy_config={"epochs": 2}),
                 CellConfig(scenario="coop_oxford_pets_b2n", strategy="coop", backbone=clip, seed=1,
                            weights="none", strategy_config={"epochs": 2, "batch_size": 8},
                            scenario_overrides={"shots": 2})]
        ok = True
        for cell in cells:
            record = run_cell(cell, root / "results", device.type, show_progress=False)
            status = record["status"]
            ok &= status == "ok"
            detail = (record["metrics"] if status == "ok" else record["error"].splitlines()[0])
            print(f"cell {cell.scenario} / {cell.strategy} on {cell.backbone}: {status} "
                  f"({record['timing']['total_seconds']:.1f}s) {detail}")

        scenario = build_scenario("imagenet_r_10t", 0)
        data = scenario.steps[0].data
        for name in (vit, clip):
            backbone = create_backbone(name, "none").to(device).eval()
            configure_preprocess(scenario, backbone)
            encoder = backbone.visual if hasattr(backbone, "visual") else backbone
            batch = data.images[torch.arange(min(32, len(data)))].to(device).float().div_(255)
            gap, agree = bf16_gap(encoder, batch, device)
            fp32_rate = throughput(encoder, data, device, 64, bf16=False)
            bf16_rate = throughput(encoder, data, device, 64, bf16=True)
            print(f"{name}: input {scenario.preprocess.size}px (crop_pct {scenario.preprocess.crop_pct}); "
                  f"{len(data)} on-disk JPEGs: fp32 {fp32_rate:.1f} images/s, bf16 {bf16_rate:.1f} images/s; "
                  f"bf16 vs fp32: max|diff|/max|fp32| = {gap:.4f}, argmax agreement {100 * agree:.1f}%")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
