"""DomainNet (Peng et al. 2019, http://ai.bu.edu/M3SDA/): six domain folders `<domain>/<class>/*.jpg` and the
official lists `<domain>_train.txt` / `<domain>_test.txt` of `<domain>/<class>/<file> <label>`; 345 classes."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from scenarios.sources.base import (DataSourceError, FileRecords, Source, check_files_exist, read_table,
                                    require_dir, require_file)

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
LAYOUT = ("  ROOT/domainnet/<domain>/<class>/*.jpg   for domain in " + ", ".join(DOMAINS) + "\n"
          "  ROOT/domainnet/<domain>_train.txt, <domain>_test.txt   lines '<domain>/<class>/<file> <label>'")


def open_domainnet(root: Path, domains: Sequence[str] = DOMAINS) -> Source:
    root = Path(root)
    tree = root / "domainnet" if (root / "domainnet").is_dir() else root
    require_dir(tree, "domainnet", LAYOUT)
    unknown = [d for d in domains if d not in DOMAINS]
    if unknown:
        raise DataSourceError(f"domainnet: unknown domains {unknown}; valid: {', '.join(DOMAINS)}")
    names: dict[int, str] = {}
    splits: dict[str, list[tuple[str, int, str]]] = {"train": [], "test": []}
    for domain in domains:
        require_dir(tree / domain, "domainnet", LAYOUT)
        for split in ("train", "test"):
            listing = require_file(tree / f"{domain}_{split}.txt", "domainnet", LAYOUT)
            for path, label in read_table(listing, 2, "domainnet"):
                parts = path.split("/")
                if len(parts) < 3 or parts[0] != domain:
                    raise DataSourceError(f"domainnet: {listing}: {path!r} is not '{domain}/<class>/<file>'")
                label = int(label)
                if names.setdefault(label, parts[1]) != parts[1]:
                    raise DataSourceError(f"domainnet: {listing}: label {label} is {parts[1]!r} here but "
                                          f"{names[label]!r} elsewhere")
                splits[split].append((path, label, domain))
    if sorted(names) != list(range(len(names))):
        raise DataSourceError(f"domainnet: the lists under {tree} use labels {min(names)}..{max(names)} with gaps")
    records = {}
    for split, rows in splits.items():
        rec = FileRecords(tree, [r[0] for r in rows], np.array([r[1] for r in rows]), [r[2] for r in rows])
        records[split] = check_files_exist(rec, "domainnet", f"{tree}/<domain>_{split}.txt")
    return Source("domainnet", [names[i] for i in range(len(names))], records, domains=list(domains), root=tree,
                  notes="official <domain>_train/test.txt lists")
