"""Shared by the golden-value generators: import the official code from a fetched snapshot, write a fixture.

A fixture is two plain files under tests/golden/ (nothing in them can run code): `<name>.safetensors` with the
tensors (weights, inputs, outputs, gradients) and `<name>.json` with where they came from (repository, commit,
the patches applied to import it offline, which reference a known bug follows and why)."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

GOLDEN = Path(__file__).resolve().parents[2] / "tests" / "golden"


def import_snapshot(path: str) -> Path:
    """Put the snapshot's root first on sys.path (the official repositories import their modules top-level)."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise SystemExit(f"snapshot {root} is not a folder: fetch the official repository and pass its root")
    sys.path.insert(0, str(root))
    return root


def snapshot_commit(root: Path) -> str:
    """The commit of a git checkout, else the COMMIT file a `git archive` extraction may carry (in the snapshot
    or a folder above it, when the official code sits in a subfolder), else 'unknown'."""
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        for folder in (root, *root.parents[:2]):
            if (folder / "COMMIT").exists():
                return (folder / "COMMIT").read_text().strip()
        return "unknown"


def cpu_only_cuda_patch() -> None:
    """The official codes call `.cuda()` on fresh tensors; on a CPU-only machine make it a copy on the CPU (as on
    a GPU, the copy of a leaf that requires grad is a non-leaf, which the official code relies on)."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self.clone()  # type: ignore[method-assign]


def save_fixture(name: str, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().contiguous().float().cpu() for k, v in tensors.items()}
    save_file(plain, str(GOLDEN / f"{name}.safetensors"))
    meta = {**meta, "torch": torch.__version__, "tensors": sorted(plain)}
    (GOLDEN / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    print(f"wrote tests/golden/{name}.safetensors ({len(plain)} tensors) and {name}.json")


class AttrDict(dict):
    """Dassl's config node as the official trainers read it: keys as attributes."""

    __getattr__ = dict.__getitem__


# Dassl's trainer registry, as the official trainer modules use it at import time: a decorator that changes nothing.
DASSL_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: (lambda cls: cls))


def stub_modules(modules: dict[str, dict]) -> None:
    """Plain namespaces in sys.modules for what the official code imports but cannot use offline (Dassl, ...)."""
    for name, attrs in modules.items():
        sys.modules[name] = types.SimpleNamespace(**attrs)  # type: ignore[assignment]


def stub_dassl() -> None:
    """The Dassl names CoOp's, KgCoOp's and MaPLe's trainer modules import."""
    stub_modules({"dassl": {}, "dassl.engine": {"TRAINER_REGISTRY": DASSL_REGISTRY, "TrainerX": object},
                  "dassl.metrics": {"compute_accuracy": None},
                  "dassl.utils": {"load_pretrained_weights": None, "load_checkpoint": None},
                  "dassl.optim": {"build_optimizer": None, "build_lr_scheduler": None}})
