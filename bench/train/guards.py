"""Run-time guards of a cell: numbers that are not numbers, and frozen weights that moved.

`check-plugin` catches both on tiny models, but a strategy (or a plugin given to `run --plugin`) that only goes
wrong on the real scenario would otherwise be recorded "ok" with meaningless numbers.
"""
from __future__ import annotations

import torch

from bench.core.strategy import Strategy

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class NonFiniteError(FloatingPointError):
    """A training loss or a logit is NaN or infinite."""


class FrozenWeightsChanged(RuntimeError):
    """A parameter the strategy does not declare trainable (or a backbone buffer) changed during the cell."""


def check_finite_loss(loss: torch.Tensor, step: int, epoch: int) -> None:
    """Fail at once on a non-finite loss (one check per optimiser step; the loss is read every step anyway)."""
    if not bool(torch.isfinite(loss.detach()).all()):
        raise NonFiniteError(f"non-finite training loss ({float(loss.detach().float().reshape(-1)[0])}) at training step "
                             f"{step}, epoch {epoch}: diverged (lower lr?) or the strategy computes NaN")


def check_finite_logits(logits: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(logits).all()):
        raise NonFiniteError(f"the strategy returned non-finite logits (NaN or inf) while evaluating {where}")


def _checksum(tensor: torch.Tensor) -> tuple[int, int]:
    # Sums of the raw bit patterns, plain and position-weighted: exact (no float rounding) and a few ms for a
    # ViT-B; any single changed element changes the first sum, and a swap of two elements the second.
    flat = tensor.detach().contiguous().reshape(-1)
    bits = flat.view(_BITS[flat.element_size()]).to(torch.int64)
    weights = torch.arange(1, bits.numel() + 1, dtype=torch.int64, device=bits.device)
    return int(bits.sum()), int((bits * weights).sum())


def frozen_state(strategy: Strategy) -> dict[str, tuple[torch.Tensor | None, tuple[int, int]]]:
    """Checksums of every parameter (kept with the parameter: `.to(device)` moves it in place, and a strategy may
    rename it by wrapping its module) and every backbone buffer (by name: `.to(device)` replaces buffers)."""
    state = {f"parameter {n}": (p, _checksum(p)) for n, p in strategy.named_parameters()}
    state.update({f"backbone buffer {n}": (None, _checksum(b)) for n, b in strategy.backbone.named_buffers()})
    return state


def check_frozen(strategy: Strategy, before: dict[str, tuple[torch.Tensor | None, tuple[int, int]]]) -> None:
    """Raise FrozenWeightsChanged naming every frozen tensor whose checksum changed since `frozen_state`, and every
    frozen parameter that is not one of the objects `frozen_state` saw: replacing a Parameter (`layer.weight =
    nn.Parameter(...)`) leaves the old object's checksum intact but changes what the model computes."""
    trainable = {id(p) for _, p in strategy.trainable_parameters()}
    # By name: a parameter created later (a new task's prompt, frozen after its task) is no replacement.
    replaced = sorted(f"parameter {n} (replaced by a new object)" for n, p in strategy.named_parameters()
                      if f"parameter {n}" in before and before[f"parameter {n}"][0] is not p
                      and id(p) not in trainable)
    buffers = {f"backbone buffer {n}": b for n, b in strategy.backbone.named_buffers()}
    changed = sorted(name for name, (tensor, checksum) in before.items()
                     if (tensor is None and (name not in buffers or _checksum(buffers[name]) != checksum))
                     or (tensor is not None and id(tensor) not in trainable and _checksum(tensor) != checksum))
    changed += replaced
    if changed:
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise FrozenWeightsChanged(f"frozen weights changed during the cell: {', '.join(changed[:4])}{more} (the "
                                   f"strategy edits weights it does not declare in trainable_parameters())")
