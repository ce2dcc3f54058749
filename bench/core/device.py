"""Where a cell computes: device choice and autocast."""
from __future__ import annotations

import contextlib

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


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision on CPU, where bf16 matmuls are slower than fp32 on most cores."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
