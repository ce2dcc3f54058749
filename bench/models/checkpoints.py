"""The committed checkpoints of the embedded backbones and their manifest (sha256, recipe, measured quality).

They ship inside the package (`bench/models/checkpoints_data/`, package data), so an installed `promptshift`
finds them through `importlib.resources` wherever it runs from, not only from a checkout.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from bench.core.resources import package_folder

# The shipped checkpoints, or the folder `promptshift pretrain` wrote (bench.models.checkpoint_out) when
# $PROMPTSHIFT_CHECKPOINTS names one.
CHECKPOINT_DIR: Path = (Path(os.environ["PROMPTSHIFT_CHECKPOINTS"]) if os.environ.get("PROMPTSHIFT_CHECKPOINTS")
                        else package_folder("bench.models", "checkpoints_data"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_checkpoint(stem: str) -> Path:
    """The shipped checkpoint `<stem>.safetensors`, checked against its manifest's sha256."""
    path = CHECKPOINT_DIR / f"{stem}.safetensors"
    manifest_path = CHECKPOINT_DIR / "MANIFEST.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: reinstall promptshift, or run `promptshift pretrain` "
                                f"to recreate it")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    expected = manifest.get(stem, {}).get("sha256")
    if expected is None:
        raise ValueError(f"{manifest_path} has no sha256 for {stem!r}; reinstall promptshift, or run "
                         f"`promptshift pretrain`")
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(f"{path} is corrupt: sha256 {actual[:12]}… != manifest {expected[:12]}…")
    return path


def update_manifest(stem: str, entry: dict) -> None:
    path = CHECKPOINT_DIR / "MANIFEST.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[stem] = {**manifest.get(stem, {}), **entry}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def weights_identity(backbone: str, weights: str | None) -> dict[str, str | None]:
    """Which weights a cell ran on, for its record: the backbone's full registry tag, the file (when one was given)
    and a sha256 (of that file, or of the embedded checkpoint from the manifest). Library-default weights (a hub
    download) have no file here: their tag is their identity."""
    if weights == "none":
        return {"backbone": backbone, "source": "random initialisation", "file": None, "sha256": None}
    if weights is not None:  # a missing file fails the cell when the backbone loads, with its own message
        path = Path(weights)
        return {"backbone": backbone, "source": "local file", "file": str(weights),
                "sha256": sha256_of(path) if path.is_file() else None}
    manifest_path = CHECKPOINT_DIR / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if backbone in manifest:
        return {"backbone": backbone, "source": "embedded checkpoint", "file": None,
                "sha256": manifest[backbone].get("sha256")}
    return {"backbone": backbone, "source": "the backbone's default (library weights or random for test models)",
            "file": None, "sha256": None}
