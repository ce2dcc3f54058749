"""Office-Home (Venkateswara et al. 2017, https://www.hemanthdv.org/officeHomeDataset.html): four domains x 65
classes, `<Domain>/<class>/*.jpg`. The official archive names the fourth domain "Real World", Dassl's copy
"real_world"; both are accepted. No train/test split: adaptation uses every image (split "all")."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scenarios.sources.base import (DataSourceError, FileRecords, Source, class_folders, folder_records,
                                    require_dir)

DOMAINS = ("art", "clipart", "product", "real_world")
FOLDERS = {"art": ("Art", "art"), "clipart": ("Clipart", "clipart"), "product": ("Product", "product"),
           "real_world": ("Real World", "Real_World", "real_world", "RealWorld")}
LAYOUT = ("  ROOT/office_home/{Art, Clipart, Product, Real World}/<class>/*.jpg   (65 class folders each;\n"
          "  also accepted: OfficeHomeDataset_10072016/ as the top folder, lower-case / real_world names)")


def _tree(root: Path) -> Path:
    for name in ("office_home", "OfficeHomeDataset_10072016", "office-home", "OfficeHome"):
        if (root / name).is_dir():
            return root / name
    return root


def open_office_home(root: Path) -> Source:
    tree = _tree(Path(root))
    require_dir(tree, "office_home", LAYOUT)
    parts, class_names = [], None
    for domain in DOMAINS:
        folder = next((tree / n for n in FOLDERS[domain] if (tree / n).is_dir()), None)
        if folder is None:
            raise DataSourceError(f"office_home: {tree} has no {' / '.join(FOLDERS[domain])} folder; expected "
                                  f"layout:\n{LAYOUT}")
        folders = class_folders(folder, "office_home", LAYOUT)
        names = [f.name for f in folders]
        if class_names is None:
            class_names = names
        elif names != class_names:
            raise DataSourceError(f"office_home: {folder} has classes {sorted(set(names) ^ set(class_names))[:3]} "
                                  f"that the other domains do not share")
        parts.append(folder_records(tree, folders, domain))
    records = FileRecords(tree, [p for r in parts for p in r.paths], np.concatenate([r.labels for r in parts]),
                          [d for r in parts for d in r.domains])
    return Source("office_home", list(class_names), {"all": records},  # folder names are the ids
                  domains=list(DOMAINS), root=tree, notes="all images; no official split")
