"""What `plan` says about a source beyond "the folder exists": the class count against the official one, the
split sizes and the per-class counts, read from the listing (one folder walk, no decoding: seconds)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from scenarios.sources import MULTIMODAL_SOURCE, DataSourceError, open_source

# Classes of the official releases (image_folder: any count).
OFFICIAL_CLASSES = {"cifar100": 100, "imagenet_r": 200, "cub200": 200, "domainnet": 345, "office_home": 65,
                    "coop_imagenet": 1000, "coop_caltech101": 100, "coop_oxford_pets": 37,
                    "coop_stanford_cars": 196, "coop_oxford_flowers": 102, "coop_food101": 101,
                    "coop_fgvc_aircraft": 100, "coop_sun397": 397, "coop_dtd": 47, "coop_eurosat": 10,
                    "coop_ucf101": 101}


def structure(name: str, root: str | Path | None = None) -> tuple[bool, str]:
    """(matches the official structure, one line): classes, splits with their sizes, per-class min-max."""
    if name == MULTIMODAL_SOURCE:  # no classes: each data set's official split sizes
        from scenarios.multimodal.real_streams import structure_line

        return structure_line(root)
    try:
        source = open_source(name, root)
    except DataSourceError as error:
        return False, str(error).splitlines()[0]
    parts = [f"{source.num_classes} classes"]
    ok = True
    expected = OFFICIAL_CLASSES.get(name)
    if expected is not None and source.num_classes != expected:
        ok = False
        parts[0] += f" (the official release has {expected})"
    for split, records in sorted(source.splits.items()):
        counts = np.bincount(records.labels, minlength=source.num_classes)
        empty = int((counts == 0).sum())
        text = f"{split} {len(records)} ({counts.min()}-{counts.max()} per class"
        if empty and split != "val":
            text += f", {empty} classes with none"
            ok = False
        parts.append(text + ")")
    if source.domains:
        parts.append(f"domains {', '.join(source.domains)}")
    return ok, "; ".join(parts)
