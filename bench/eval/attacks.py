"""L-infinity FGSM and PGD on pixels in [0, 1], for any classifier `model(x) -> logits`.

Hand-written on purpose: torchattacks pins an old `requests` (it cannot be a runtime dependency), and the PyPI
`robustbench` and `advertorch` no longer run with current torch/timm. Both attacks are a few lines; the tests
cross-check this PGD against torchattacks on a fixed model. Standard AutoAttack comes from `pyautoattack`
(see bench.eval.robustness).

Every attack checks its output against the budget before returning it (`check_budget`): a perturbation that
leaves the eps-ball or the pixel range would report a robustness that the threat model does not define.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Classifier = Callable[[torch.Tensor], torch.Tensor]
BUDGET_TOLERANCE = 1e-6  # float32 rounding of x + delta - x; far below one 8-bit grey level (1/255 = 3.9e-3)


class BudgetViolation(RuntimeError):
    """An adversarial example outside the eps-ball around its input or outside [0, 1]."""


Budget = float | torch.Tensor  # one eps for the batch, or one per image (shape (N,)): all budgets in one pass


def _per_image(eps: Budget, x: torch.Tensor) -> torch.Tensor:
    """`eps` as a tensor broadcastable against `x` (N, ...)."""
    eps = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    return eps.view(-1, *[1] * (x.dim() - 1)) if eps.dim() else eps


def check_budget(x_adv: torch.Tensor, x: torch.Tensor, eps: Budget) -> None:
    """Raise unless every pixel of `x_adv` is within `eps` of `x` and inside [0, 1]."""
    if x_adv.shape != x.shape:
        raise BudgetViolation(f"adversarial batch has shape {tuple(x_adv.shape)}, inputs {tuple(x.shape)}")
    if not x.numel():
        return
    excess = float(((x_adv - x).abs() - _per_image(eps, x)).max())
    if excess > BUDGET_TOLERANCE:
        raise BudgetViolation(f"perturbation exceeds eps by {excess:.6g}")
    low, high = float(x_adv.min()), float(x_adv.max())
    if low < 0.0 or high > 1.0:
        raise BudgetViolation(f"adversarial pixels leave [0, 1]: min {low:.6g}, max {high:.6g}")


def input_gradient(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the summed cross-entropy with respect to the pixels (a sum, so that an example's gradient
    does not shrink with the batch size and underflow to zero, which would freeze its sign step)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: Budget) -> torch.Tensor:
    """Back into the eps-ball around `x`, then into the pixel range."""
    eps = _per_image(eps, x)
    return (x + torch.minimum(torch.maximum(x_adv - x, -eps), eps)).clamp(0.0, 1.0)


def fgsm(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: Budget,
         sign: torch.Tensor | None = None) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al., ICLR 2015): one step of size eps along the gradient sign.

    `sign`: the sign of the loss gradient at `x`, if the caller has it. It does not depend on eps, so attacking
    the same images at several budgets needs one gradient per image, not one per budget."""
    x = x.detach()
    sign = input_gradient(model, x, y).sign() if sign is None else sign.to(x.dtype)
    x_adv = (x + _per_image(eps, x) * sign).clamp(0.0, 1.0).detach()
    check_budget(x_adv, x, eps)
    return x_adv


def pgd(model: Classifier, x: torch.Tensor, y: torch.Tensor, eps: Budget, steps: int, step_size: Budget,
        random_start: bool = True, generator: torch.Generator | None = None,
        start_noise: torch.Tensor | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al., ICLR 2018), L-infinity, returning the last iterate.

    `step_size` is absolute (pixel units). The random start is uniform in the eps-ball, drawn from `generator`
    (a CPU generator; never the global RNG, so an evaluation does not shift later training draws), or given as
    `start_noise` (uniform in [0, 1), x's shape): a caller attacking a subset of the rows it drew noise for."""
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        noise = (torch.rand(x.shape, generator=generator, dtype=x.dtype) if start_noise is None
                 else start_noise.to(x.dtype)).to(x.device)
        x_adv = project(x + (2 * noise - 1) * _per_image(eps, x), x, eps)
    step = _per_image(step_size, x)
    for _ in range(steps):
        x_adv = project(x_adv + step * input_gradient(model, x_adv, y).sign(), x, eps).detach()
    check_budget(x_adv, x, eps)
    return x_adv
