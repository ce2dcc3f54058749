"""Is the loader the bottleneck of a frozen-feature cell? A benchmark script, not a test.

Writes a few thousand 224-px JPEGs into a temporary folder in the `image_folder` layout, then measures, side by
side in one run: images per second decoded and resized by the loader (`image_batches` over `LazyImages`, the
path the harness uses to fill a frozen cache), with the main process alone and with worker processes, and images
per second through a frozen, randomly initialised ViT-B/16 forward pass on the same CPU. Prints both and their
ratio (> 1: the loader keeps up with the model).

    OMP_NUM_THREADS=1 python -m bench.perf_loader --images 2000 --workers 0,1
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_photos(root: Path, count: int, size: int, classes: int = 20, seed: int = 0) -> Path:
    """`count` JPEGs (quality 90) of smooth colour fields plus texture: about the entropy of a photo, so decoding
    costs what a real one does (flat images decode much faster)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(count):
        c = i % classes
        a, b, ph = rng.uniform(1, 6, size=3)
        base = np.stack([np.sin(a * xx * 6.28 + ph), np.cos(b * yy * 6.28 + c), np.sin((xx + yy) * a + b)], -1)
        pixels = (127 + 90 * base + rng.normal(0, 18, size=(size, size, 3))).clip(0, 255).astype(np.uint8)
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, "RGB").save(folder / f"{i:05d}.jpg", "JPEG", quality=90)
    return root


def loader_rate(root: Path, workers: int, batch_size: int, size: int) -> float:
    from bench.core.data import LazyImages, Preprocess, TensorData, image_batches
    from scenarios.sources import open_source

    records = open_source("image_folder", root).split("train")
    data = TensorData(LazyImages.of(records, range(len(records)), Preprocess(size=size)),
                      torch.from_numpy(records.labels))
    os.environ["PROMPTSHIFT_LOADER_WORKERS"] = str(workers)
    start = time.perf_counter()
    n = sum(len(images) for _, images in image_batches(data, batch_size))
    return n / (time.perf_counter() - start)


def random_access_rate(root: Path, threads: int, batch_size: int, size: int) -> float:
    """Shuffled training batches (`images[index]`, the path of strategies that read pixels), decoded by threads."""
    from bench.core.data import LazyImages, Preprocess
    from scenarios.sources import open_source

    records = open_source("image_folder", root).split("train")
    images = LazyImages.of(records, range(len(records)), Preprocess(size=size))
    os.environ["PROMPTSHIFT_LOADER_WORKERS"] = str(threads)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    n = sum(len(images[order[i:i + batch_size]]) for i in range(0, len(images), batch_size))
    return n / (time.perf_counter() - start)


@torch.no_grad()
def vit_rate(batches: int, batch_size: int, size: int) -> float:
    import timm

    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0).eval()
    x = torch.rand(batch_size, 3, size, size)
    model(x[:2])  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        model(x)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=224, help="model input size (the loader resizes to it)")
    parser.add_argument("--photo-size", type=int, default=224, help="side of the JPEGs written")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", default="0,1", help="comma-separated worker counts to measure")
    parser.add_argument("--vit-batches", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"torch threads: {torch.get_num_threads()}, cpu cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = write_photos(Path(tmp) / "photos", args.images, args.photo_size)
        print(f"wrote {args.images} {args.photo_size}-px JPEGs in {time.perf_counter() - start:.1f}s")
        vit = vit_rate(args.vit_batches, 16, args.size)
        print(f"frozen ViT-B/16 forward (random init): {vit:8.1f} images/s")
        for workers in [int(w) for w in args.workers.split(",")]:
            rate = loader_rate(root, workers, args.batch_size, args.size)
            print(f"loader, {workers} worker(s):            {rate:8.1f} images/s   ratio loader/ViT = "
                  f"{rate / vit:5.1f}")
            rate = random_access_rate(root, workers, args.batch_size, args.size)
            print(f"shuffled batches, {workers} thread(s):   {rate:8.1f} images/s   ratio loader/ViT = "
                  f"{rate / vit:5.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
