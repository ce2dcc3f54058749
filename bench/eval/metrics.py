"""Continual-learning metrics computed from an accuracy matrix.

An accuracy matrix ``A`` has shape (T, E): row i holds the accuracies measured
after training step i (0-based), column j the accuracy on evaluation set j, all
as fractions in [0, 1]. For class- and domain-incremental streams E == T and
column j is task j's test set. Base-to-new uses T == 1 with eval sets
["base", "new"]; domain adaptation uses T == 1 with ["source", "target"].

Every function here is pure: numpy (or nested lists) in, Python float out.
avalanche-lib is deliberately not imported; it is only used by the tests as a
cross-check, because importing it costs ~15 s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "INCREMENTAL_KINDS",
    "KINDS",
    "as_accuracy_matrix",
    "average_incremental_accuracy",
    "backward_transfer",
    "final_average_accuracy",
    "forgetting_avalanche",
    "forgetting_max",
    "forward_transfer",
    "harmonic_mean",
    "summarize",
]

INCREMENTAL_KINDS: frozenset[str] = frozenset({"class_incremental", "domain_incremental"})
KINDS: tuple[str, ...] = (
    "class_incremental",
    "domain_incremental",
    "base_to_new",
    "domain_adaptation",
    "joint",
)


def as_accuracy_matrix(A: ArrayLike, *, square: bool = False) -> np.ndarray:
    """Return ``A`` as a float (T, E) array after checking it is a valid accuracy matrix.

    Raises ValueError unless ``A`` is 2-D, non-empty, finite, within [0, 1] and,
    when ``square`` is set, of shape (T, T).
    """
    try:
        arr = np.asarray(A, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"accuracy matrix is not a numeric rectangular array: {exc}") from exc
    if arr.ndim != 2:
        raise ValueError(
            f"accuracy matrix must be 2-D (training steps x eval sets), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"accuracy matrix is empty (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError("accuracy matrix contains NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        # The usual culprit is a matrix in percent rather than fractions.
        raise ValueError(
            f"accuracies must lie in [0, 1] (fractions, not percentages); "
            f"got values in [{lo:g}, {hi:g}]"
        )
    if square and arr.shape[0] != arr.shape[1]:
        raise ValueError(
            f"this metric needs a square accuracy matrix (one eval set per task), "
            f"got shape {arr.shape}"
        )
    return arr


def final_average_accuracy(A: ArrayLike) -> float:
    """Mean accuracy after the last training step: ``mean_j A[T-1, j]``.

    For a square (incremental) matrix this averages over all T tasks, i.e. every
    task seen; for other shapes every evaluation set of the last row is averaged.
    This is the "average accuracy" A_T reported by L2P, DualPrompt and
    CODA-Prompt and Mammoth's mean accuracy after the last task. avalanche-lib's
    stream accuracy and PyCIL's top-1 accuracy weight by test samples instead,
    which coincides with this value when the task test sets are equally sized.
    """
    arr = as_accuracy_matrix(A)
    return float(arr[-1].mean())


def average_incremental_accuracy(A: ArrayLike) -> float:
    """Average incremental accuracy: ``mean_i mean(A[i, :i+1])`` over steps i = 0..T-1.

    This is the mean of the accuracy curve, the "average (incremental) accuracy"
    of iCaRL and PyCIL (PILOT reports the same quantity). PyCIL scores each step
    on the union of the seen test sets, which equals the per-task mean used here
    when the task test sets are equally sized. Square matrices only.
    """
    arr = as_accuracy_matrix(A, square=True)
    steps = arr.shape[0]
    return float(np.mean([arr[i, : i + 1].mean() for i in range(steps)]))


def forgetting_avalanche(A: ArrayLike) -> float:
    """avalanche-lib forgetting: ``mean_{j < T-1} (A[j, j] - A[T-1, j])``.

    Accuracy on task j right after training task j minus its accuracy after the
    last step, averaged over the T-1 earlier tasks. This is the mean of the last
    row of ``avalanche.evaluation.functional.forgetting`` without its (always
    zero) last column, and what avalanche's StreamForgetting reports at the end
    of a stream (the task just trained is excluded). Positive means forgetting.

    For T == 1 there is no earlier task; we return 0.0, as avalanche does (its
    functional form gives a zero matrix and its running mean of nothing is 0.0).
    Square matrices only.
    """
    arr = as_accuracy_matrix(A, square=True)
    last = arr.shape[0] - 1
    if last == 0:
        return 0.0
    diag = np.diag(arr)[:last]
    return float(np.mean(diag - arr[last, :last]))


def forgetting_max(A: ArrayLike) -> float:
    """Mammoth's forgetting: ``mean_{j < T-1} (max_{l in [j, T-1]} A[l, j] - A[T-1, j])``.

    Best accuracy task j ever had from the step that trained it on, the final
    step included, minus its final accuracy (Chaudhry et al. 2018, RWalk), as
    ``mammoth/utils/metrics.py::forgetting`` computes it: the max runs over all
    rows (rows before task j are padded with 0 there), so no term is negative.
    PyCIL and PILOT agree; Continuum also lets rows l < j enter the max
    (accuracy on a task before training it), which differs only when a model
    scores an untrained task above its later best.

    T == 1 returns 0.0 (no earlier task), matching :func:`forgetting_avalanche`.
    Square matrices only.
    """
    arr = as_accuracy_matrix(A, square=True)
    last = arr.shape[0] - 1
    if last == 0:
        return 0.0
    best = np.array([arr[j:, j].max() for j in range(last)])
    return float(np.mean(best - arr[last, :last]))


def forward_transfer(A: ArrayLike, initial: Sequence[float | None] | None) -> float:
    """Forward transfer (Lopez-Paz & Ranzato 2017, GEM): ``mean_{j >= 1} (A[j-1, j] - b_j)``.

    Accuracy on task j just before training it minus ``b_j``, the untrained
    model's accuracy on task j (``initial``, measured once before the first
    step). Terms with a missing entry (None/NaN: not evaluated) are left out;
    NaN when no term is left, when ``initial`` is missing, or for T == 1.
    Square matrices only; the caller passes fractions.
    """
    arr = np.asarray(A, dtype=float)
    if initial is None or arr.ndim != 2 or arr.shape[0] != arr.shape[1] or len(initial) != arr.shape[1]:
        return float("nan")
    start = np.array([np.nan if v is None else float(v) for v in initial])
    terms = [arr[j - 1, j] - start[j] for j in range(1, arr.shape[0])]
    terms = [t for t in terms if np.isfinite(t)]
    return float(np.mean(terms)) if terms else float("nan")


def backward_transfer(A: ArrayLike) -> float:
    """Backward transfer (Lopez-Paz & Ranzato 2017, GEM): ``mean_{j < T-1} (A[T-1, j] - A[j, j])``.

    Negative values mean forgetting; it is exactly ``-forgetting_avalanche(A)``
    (avalanche's StreamBWT is defined the same way). T == 1 returns 0.0.
    Square matrices only.
    """
    return 0.0 - forgetting_avalanche(A)  # negation is exact; `0.0 -` keeps T == 1 at +0.0


def harmonic_mean(base: float, new: float) -> float:
    """Harmonic mean of base and new accuracy: ``2*b*n / (b + n)``, 0.0 when both are 0.

    The base-to-new headline number of CoOp/CoCoOp, MaPLe and PromptSRC.
    Inputs are fractions in [0, 1].
    """
    b, n = float(base), float(new)
    for label, value in (("base", b), ("new", n)):
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{label} accuracy must be a fraction in [0, 1], got {value!r}")
    if b + n == 0.0:
        return 0.0
    return 2.0 * b * n / (b + n)


def _column(arr: np.ndarray, names: list[str], wanted: str, kind: str) -> float:
    """Last-row accuracy of the eval set called ``wanted``."""
    if wanted not in names:
        raise ValueError(f"kind {kind!r} needs an eval set named {wanted!r}, got {names}")
    return float(arr[-1, names.index(wanted)])


def summarize(A: ArrayLike, eval_names: Sequence[str], kind: str) -> dict[str, float]:
    """The metrics that make sense for a scenario ``kind``, keyed by name.

    - class_incremental / domain_incremental (square): final_accuracy,
      avg_incremental_accuracy, forgetting_avalanche, forgetting_max, bwt.
    - base_to_new (T == 1, eval sets "base" and "new"): base_acc, new_acc,
      harmonic_mean.
    - domain_adaptation (T == 1, eval sets "source" and "target"): source_acc,
      target_acc.
    - joint (T == 1, any eval sets): final_accuracy, the mean over eval sets.

    Raises ValueError for an unknown kind, a malformed matrix, or eval names that
    do not match the matrix columns.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown scenario kind {kind!r}; expected one of {list(KINDS)}")
    if isinstance(eval_names, str):
        # A bare string would otherwise be split into characters.
        raise ValueError("eval_names must be a sequence of names, not a single string")
    arr = as_accuracy_matrix(A, square=kind in INCREMENTAL_KINDS)
    names = [str(name) for name in eval_names]
    if len(names) != arr.shape[1]:
        raise ValueError(
            f"got {len(names)} eval names for an accuracy matrix with {arr.shape[1]} columns"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"eval names must be unique, got {names}")

    if kind in INCREMENTAL_KINDS:
        return {
            "final_accuracy": final_average_accuracy(arr),
            "avg_incremental_accuracy": average_incremental_accuracy(arr),
            "forgetting_avalanche": forgetting_avalanche(arr),
            "forgetting_max": forgetting_max(arr),
            "bwt": backward_transfer(arr),
        }
    if arr.shape[0] != 1:
        raise ValueError(f"kind {kind!r} expects a single training step (T == 1), got T = {arr.shape[0]}")
    if kind == "joint":
        return {"final_accuracy": final_average_accuracy(arr)}
    if kind == "base_to_new":
        base = _column(arr, names, "base", kind)
        new = _column(arr, names, "new", kind)
        return {"base_acc": base, "new_acc": new, "harmonic_mean": harmonic_mean(base, new)}
    # domain_adaptation
    return {
        "source_acc": _column(arr, names, "source", kind),
        "target_acc": _column(arr, names, "target", kind),
    }
