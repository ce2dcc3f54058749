"""The committed checkpoints of the embedded backbones and their manifest (sha256, recipe, measured quality)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


CHECKPOINT_DIR = REPO_ROOT / "checkpoints"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_checkpoint(stem: str) -> Path:
    """The committed checkpoint `checkpoints/<stem>.safetensors`, checked against its manifest's sha256."""
    path = CHECKPOINT_DIR / f"{stem}.safetensors"
    manifest_path = CHECKPOINT_DIR / "MANIFEST.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python run_bench.py pretrain` to recreate it")
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    expected = manifest.get(stem, {}).get("sha256")
    if expected is None:
        raise ValueError(f"{manifest_path} has no sha256 for {stem!r}; re-run `python run_bench.py pretrain`")
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(f"{path} is corrupt: sha256 {actual[:12]}… != manifest {expected[:12]}…")
    return path


def update_manifest(stem: str, entry: dict) -> None:
    path = CHECKPOINT_DIR / "MANIFEST.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[stem] = {**manifest.get(stem, {}), **entry}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
