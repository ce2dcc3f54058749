"""A suite-wide disk cache of frozen features: a strategy's `frozen_inputs` on one image set, computed once and
read by every cell (strategy, seed, variant) that needs the same function of the same backbone on the same images.

Correctness rests on the key. An entry is addressed by the sha256 of:
- the strategy's `frozen_key()` (a string naming its frozen function and that function's parameters), trusted
  only when the class that defines `frozen_key` also defines (or inherits the definition of) `frozen_inputs`;
- a fingerprint of the backbone: every parameter and buffer (name, dtype, shape, bytes, persistent or not: the
  pixel mean/std are non-persistent buffers) and every module's class and plain attributes (image size, prefix
  tokens), taken before the first training step;
- the image set's bytes and shape, the chunking the harness computes it in, the device type, autocast, torch's
  version and thread count (each can change the last bit of a float, and cached must equal recomputed exactly).

Storage is safetensors (no pickle), one file per entry, written to a temporary name and moved into place with
`os.replace`; a per-entry `filelock` makes concurrent workers compute an entry once, the others wait and read it.
The key's JSON is kept in the file's metadata and checked on every read, so a damaged or foreign file is
recomputed, never used. Hand-written because no library caches a module's outputs keyed by weights and inputs.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from bench.core.strategy import Strategy

CACHE_VERSION = 1  # bump when the key or the file layout changes
PLAIN = (int, float, str, bool, type(None))


def trusted_frozen_key(strategy: Strategy) -> str | None:
    """The strategy's `frozen_key()`, or None when it cannot be trusted: a subclass that overrides
    `frozen_inputs` below the class declaring the key would otherwise share entries of a different function."""
    key = strategy.frozen_key()
    if key is None:
        return None
    mro = type(strategy).__mro__
    owner_of_key = next(c for c in mro if "frozen_key" in c.__dict__)
    owner_of_inputs = next(c for c in mro if "frozen_inputs" in c.__dict__)
    return key if issubclass(owner_of_key, owner_of_inputs) else None


def _update_tensor(digest: "hashlib._Hash", name: str, tensor: torch.Tensor) -> None:
    data = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (a logit scale) cannot be viewed as bytes
    digest.update(f"{name}|{data.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")


def _describe(value: object) -> object:
    """A plain attribute as itself; a function patched onto an instance (a hook, a wrapped forward) by its
    qualified name, so that patching a module changes its fingerprint; anything else is left out (None)."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, tuple) and all(isinstance(item, PLAIN) for item in value):
        return list(value)
    if callable(value) and not isinstance(value, (nn.Module, torch.Tensor, type)):
        func = getattr(value, "__func__", value)
        return f"callable:{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', type(func).__name__)}"
    return None


def module_fingerprint(module: nn.Module) -> str:
    """sha256 of a module's weights, buffers and structure (class names and plain attributes of every submodule)."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters(remove_duplicate=False):
        _update_tensor(digest, f"p:{name}", param)
    for name, buf in module.named_buffers(remove_duplicate=False):
        _update_tensor(digest, f"b:{name}", buf)
    for name, sub in module.named_modules(remove_duplicate=False):
        attrs = {k: _describe(v) for k, v in sorted(vars(sub).items()) if not k.startswith("_") and k != "training"}
        digest.update(f"m:{name}|{type(sub).__module__}.{type(sub).__qualname__}|"
                      f"{json.dumps(attrs, sort_keys=True, default=str)}\n".encode())
    return digest.hexdigest()


def data_fingerprint(images: object) -> str | None:
    """sha256 of an image tensor's bytes; for lazily decoded images, their own `fingerprint()` if they have one;
    None (not shareable: computed inside the cell) for anything else."""
    if isinstance(images, torch.Tensor):
        digest = hashlib.sha256()
        _update_tensor(digest, "images", images)
        return digest.hexdigest()
    identity = getattr(images, "fingerprint", None)
    return f"{type(images).__qualname__}:{identity()}" if callable(identity) else None


class FeatureStore:
    """Frozen features on disk under `root`, shared by every cell and process that uses the same folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def key(self, frozen_key: str, backbone: str, images: object, batch_size: int, device: torch.device,
            precision: str | None = None) -> dict[str, str | int] | None:
        """Everything the frozen features depend on, as a JSON-able dict; None when the images have no identity.
        `precision`: "fp32" or "bf16"; default: the harness's autocast on this device."""
        identity = data_fingerprint(images)
        if identity is None:
            return None
        return {"cache_version": CACHE_VERSION, "frozen_key": frozen_key, "backbone": backbone,
                "images": identity, "batch_size": batch_size, "device": device.type,
                "autocast": precision or ("bf16" if device.type == "cuda" else "fp32"), "torch": torch.__version__,
                "threads": torch.get_num_threads()}

    def path(self, key: dict) -> Path:
        text = json.dumps(key, sort_keys=True, separators=(",", ":"))
        return self.root / f"{hashlib.sha256(text.encode()).hexdigest()}.safetensors"

    def _read(self, path: Path, key_text: str) -> torch.Tensor | None:
        try:
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as handle:
                if (handle.metadata() or {}).get("key") != key_text:
                    return None  # a foreign or damaged entry: never trust it
            return load_file(str(path))["features"]
        except (OSError, SafetensorError, KeyError, ValueError):
            return None

    def _write(self, path: Path, features: torch.Tensor, key_text: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
        os.close(fd)
        try:
            save_file({"features": features.contiguous()}, tmp, metadata={"key": key_text})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_or_compute(self, key: dict, compute: Callable[[], torch.Tensor | None]) -> torch.Tensor | None:
        """The stored features for `key`, else `compute()` stored (None from `compute` is returned, not stored).
        One process computes a missing entry; concurrent ones wait on its lock and then read it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        key_text = json.dumps(key, sort_keys=True)
        hit = self._read(path, key_text) if path.exists() else None
        if hit is not None:
            self.hits += 1
            return hit
        with FileLock(str(path) + ".lock"):
            hit = self._read(path, key_text) if path.exists() else None
            if hit is not None:
                self.hits += 1
                return hit
            self.misses += 1
            features = compute()
            if features is not None:
                self._write(path, features, key_text)
            return features


def default_feature_store() -> FeatureStore | None:
    """The suite-wide store under the project's cache folder (scenarios/cache.py `cache_dir()`);
    PROMPTSHIFT_FEATURE_CACHE=0 turns it off (results are the same either way: cached equals recomputed)."""
    if os.environ.get("PROMPTSHIFT_FEATURE_CACHE", "1").lower() in ("0", "off", "false", "no"):
        return None
    from scenarios.cache import cache_dir  # imports nothing of the project: no circle

    return FeatureStore(cache_dir() / "features")
