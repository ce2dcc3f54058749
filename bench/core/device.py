"""Where a cell computes: device choice and autocast."""
from __future__ import annotations

import contextlib
import os

import torch


def select_device(choice: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cuda` without a GPU is an error, not a silent fallback."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    if choice not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}; valid: auto, cpu, cuda")
    return torch.device(choice)


def flush_denormals() -> bool:
    """Treat subnormal floats as zero in this process's CPU arithmetic (x86 FTZ/DAZ; True where supported).

    Intel cores slow down many times over on subnormal operands: `vpt_shallow` on `ci5_glyphs` trained 4.7x
    slower on a Xeon than on an EPYC with identical accuracies (issue 23). Call it before any compute thread
    starts: threads inherit the setting from the thread that creates them (POSIX fenv), not from a later call."""
    return torch.set_flush_denormal(True)


CPU_AUTOCAST_ENV = "PROMPTSHIFT_CPU_AUTOCAST"  # "bf16": the GPU's mixed-precision path, run on the CPU (tests)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision on CPU, where bf16 matmuls are slower than fp32 on most cores.
    `PROMPTSHIFT_CPU_AUTOCAST=bf16` runs the CUDA path's bf16 autocast on the CPU (torch's CPU autocast), so the
    mixed-precision code path is tested where no GPU is lent."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if os.environ.get(CPU_AUTOCAST_ENV) == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def inference_batch_size(device: torch.device) -> int:
    """Images per forward pass where nothing trains (evaluation, frozen features, prototypes).

    64 on the CPU: at 256 the activations of the embedded backbones outgrow the core's caches (one core,
    vit_glyph_tiny on 402 test images: 0.34 ms per image at 64 against 0.40-0.47 at 256; VPT-deep 0.56 against
    0.64, L2P 1.20 against 1.38). A GPU is filled by larger batches: 256 there."""
    return 256 if device.type == "cuda" else 64
