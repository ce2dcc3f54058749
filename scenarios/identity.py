"""Data identity: a fingerprint of the data a cell reads, and the source listing cached under it.

A cell's id is a hash of its config; without the data in it, a rerun into the same results folder on a changed
root (more images, a fixed split file, a re-encoded folder) would serve the old record. `data_identity` names the
data: for an on-disk source, the source, its root (recorded, not hashed: the same bytes at another mount point give
the same numbers) and a sha256 over the listing the source produced from its split files (class names, domains,
every record's relative path, label, domain and file size; array-backed records by their pixel and label bytes,
cheap at CIFAR's 180 MB); for the embedded glyphs and digits, their generator version (`DATA_VERSION`), nothing read
from disk, so `make bench` pays nothing. OFA's task data sets (`MULTIMODAL_SOURCE`, scenarios/multimodal/
real_streams.py) are annotation files read whole plus image folders: their fingerprint is a sha256 over the bytes of
the annotation files of the tasks asked for and the listing (relative path, size) of those tasks' image folders.

The listing of a file-backed source is stored as JSON under the cache folder, named by the fingerprint: a cell
that knows its fingerprint rebuilds the `Source` from that file instead of walking the folders again (30,000 files
took 3-4 s a cell; DomainNet about a minute).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from scenarios.cache import DATA_VERSION, cache_dir
from scenarios.sources import MULTIMODAL_SOURCE, Source, data_root, open_source
from scenarios.sources.base import ArrayRecords, FileRecords

IDENTITY_VERSION = 1  # bump when the fingerprint is computed differently


def _listing_path(fingerprint: str, root: str | Path | None) -> Path:
    # the root is part of the file name: the same data under another root must not list the other root's paths
    where = hashlib.sha256(str(data_root(root)).encode()).hexdigest()[:12]
    return cache_dir() / "listings" / f"{fingerprint}-{where}.json"


def _file_listing(records: FileRecords) -> dict[str, Any]:
    sizes = [os.stat(records.root / p).st_size for p in records.paths]
    return {"root": str(records.root), "paths": list(records.paths), "labels": records.labels.tolist(),
            "domains": records.domains, "sizes": sizes}


def _array_digest(records: ArrayRecords) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(records.labels).tobytes())
    pixels = records.pixels
    for start in range(0, len(pixels), 4096):  # chunks: a memmap is never read into memory at once
        digest.update(np.ascontiguousarray(pixels[start:start + 4096]).tobytes())
    digest.update(json.dumps(records.domains).encode())
    return digest.hexdigest()


def source_listing(source: Source) -> dict[str, Any]:
    """Everything the fingerprint covers, as plain JSON (file splits) or digests (array splits)."""
    splits: dict[str, Any] = {}
    for name in sorted(source.splits):
        records = source.splits[name]
        if isinstance(records, FileRecords):
            splits[name] = _file_listing(records)
        else:
            splits[name] = {"array": records.where, "sha256": _array_digest(records), "count": len(records)}
    return {"name": source.name, "class_names": list(source.class_names), "domains": list(source.domains),
            "notes": source.notes, "root": str(source.root) if source.root else None, "splits": splits}


def listing_fingerprint(listing: dict[str, Any]) -> str:
    """sha256 of the listing without absolute roots (relative paths, sizes, labels, names, array digests)."""
    hashed = {k: v for k, v in listing.items() if k != "root"}
    hashed["splits"] = {name: {k: v for k, v in split.items() if k != "root"}
                        for name, split in listing["splits"].items()}
    text = json.dumps({"v": IDENTITY_VERSION, "listing": hashed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _store_listing(fingerprint: str, root: str | Path | None, listing: dict[str, Any]) -> None:
    if not all("paths" in split for split in listing["splits"].values()):
        return  # array sources reopen their memmap in milliseconds; nothing worth caching
    path = _listing_path(fingerprint, root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".listing-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(listing, handle)
        os.replace(tmp, path)  # atomic: a concurrent cell reads a whole file or none
    except OSError:
        pass  # best effort: an unwritable cache only makes each cell walk the folders


def preset_source(preset_name: str, overrides: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]] | None:
    """(source name, open keyword arguments) of a real-data preset; None for embedded presets."""
    from scenarios.catalog import SCENARIOS

    preset = SCENARIOS.get(preset_name)
    if not preset.source:
        return None
    params = {**preset.params, **(overrides or {})}
    kwargs: dict[str, Any] = {}
    if preset.kind == "domain_incremental" and params.get("domains") and params["dataset"] == "domainnet":
        kwargs["domains"] = tuple(params["domains"])
    if params["dataset"] == MULTIMODAL_SOURCE:  # only the data sets of the tasks the stream asks for
        kwargs["kinds"] = tuple(params["kinds"])
    return params["dataset"], kwargs


def multimodal_identity(root: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """The identity of OFA's task data sets under the data root (see the module docstring); DataSourceError naming
    the first missing root, folder or file. `kwargs`: the stream's `kinds`."""
    from scenarios.multimodal.real_streams import identity_files

    files, folders = identity_files(root, **kwargs)
    where = data_root(root)
    digest = hashlib.sha256(json.dumps({"v": IDENTITY_VERSION, "source": MULTIMODAL_SOURCE}).encode())
    images = size = 0
    for path in files:  # the annotations' bytes: a corrected answer or caption is other data
        digest.update(f"file {path.relative_to(where).as_posix()}\n".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    for folder in folders:  # the images by relative path and size, as the file sources' listings name them
        for current, dirs, names in os.walk(folder, followlinks=True):
            dirs.sort()
            for name in sorted(names):
                path = Path(current) / name
                length = path.stat().st_size
                digest.update(f"image {path.relative_to(where).as_posix()} {length}\n".encode())
                images, size = images + 1, size + length
    return {"source": MULTIMODAL_SOURCE, "root": str(where), "fingerprint": digest.hexdigest()[:24],
            "records": images, "bytes": size}


def source_identity(name: str, root: str | Path | None = None, **kwargs: Any) -> dict[str, Any]:
    """The identity of on-disk source `name` under the data root, its layout checked (DataSourceError naming what is
    missing or wrong). A classification source is opened fully and its images verified (`open_with_identity`);
    OFA's task data sets are no classification `Source`: fingerprinted only (`multimodal_identity`), their drawn
    images decoded when the stream is built, before its cell trains."""
    if name == MULTIMODAL_SOURCE:
        return multimodal_identity(root, **kwargs)
    return open_with_identity(name, root, **kwargs)[1]


def open_with_identity(name: str, root: str | Path | None = None, verify: bool = True,
                       **kwargs: Any) -> tuple[Source, dict[str, Any]]:
    """Open a classification source fully (layout checked) and fingerprint it; the listing is cached under the
    fingerprint. With `verify`, every listed image is decoded once per fingerprint (scenarios/verify.py): a bad
    file is refused here, before any cell trains."""
    source = open_source(name, root, **kwargs)
    listing = source_listing(source)
    fingerprint = listing_fingerprint(listing)
    _store_listing(fingerprint, root, listing)
    if verify:
        from scenarios.verify import verify_images

        verify_images(source, fingerprint, str(data_root(root)))
    files = sum(len(s.get("paths", ())) or s.get("count", 0) for s in listing["splits"].values())
    size = sum(sum(s.get("sizes", ())) for s in listing["splits"].values())
    return source, {"source": name, "root": str(source.root) if source.root else str(data_root(root)),
                    "fingerprint": fingerprint, "records": files, "bytes": size}


def embedded_identity(preset_name: str) -> dict[str, Any] | None:
    """The identity of an embedded preset's data (its generator version; no disk read), None for on-disk presets
    and unknown names."""
    from scenarios.catalog import MULTIMODAL_KINDS, SCENARIOS

    if preset_name not in SCENARIOS or SCENARIOS.get(preset_name).source:
        return None
    if SCENARIOS.get(preset_name).kind in MULTIMODAL_KINDS:  # scenes drawn from the glyphs by their own generator
        from scenarios.multimodal import SCENES_VERSION

        return {"source": "embedded", "data_version": DATA_VERSION, "scenes_version": SCENES_VERSION}
    return {"source": "embedded", "data_version": DATA_VERSION}


def data_identity(preset_name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The identity of the data a preset reads under the current data root (see the module docstring)."""
    opened = preset_source(preset_name, overrides)
    if opened is None:
        return embedded_identity(preset_name)
    name, kwargs = opened
    return source_identity(name, None, **kwargs)


def open_listed(name: str, root: str | Path | None, fingerprint: str | None, **kwargs: Any) -> Source:
    """The source from the listing cached under `fingerprint` when there is one (no folder walk), else opened."""
    if fingerprint:
        try:
            listing = json.loads(_listing_path(fingerprint, root).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            listing = None
        if listing is not None and listing.get("name") == name:
            return _source_from_listing(listing)
    return open_source(name, root, **kwargs)


def _source_from_listing(listing: dict[str, Any]) -> Source:
    splits = {name: FileRecords(Path(s["root"]), s["paths"], np.asarray(s["labels"], dtype=np.int64), s["domains"])
              for name, s in listing["splits"].items()}
    return Source(listing["name"], listing["class_names"], splits, listing["domains"],
                  Path(listing["root"]) if listing["root"] else None, listing["notes"])
