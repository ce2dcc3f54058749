"""Published numbers, kept apart from measured ones: `bench/report/references.yaml`, shown only as labelled references.

Schema of `references.yaml` (a list at the top level, or under a `references:` key), one entry per number:

    - paper: "Wang et al., Learning to Prompt for Continual Learning, CVPR 2022"   # required: who published it
      method: L2P                                   # required: the method as the paper names it
      protocol: "Split CIFAR-100, 10 tasks, class-incremental"   # required: data + protocol, groups the tables
      metric: "final average accuracy (%)"          # required: the metric as the paper defines it, with its unit
      value: 83.83                                  # required: a number, or text such as "83.83 ± 0.28"
      backbone: "ViT-B/16, ImageNet-21k"            # optional
      note: "Table 1"                               # optional: where in the paper, caveats
      strategy: l2p                                 # optional: this suite's registry name for the method

A mapping at the top level may also give `unit:` (e.g. "percent"), shown with every value, and `version:`.

These numbers were measured on other data, backbones and code than this suite's: the leaderboards print them in a
section of their own, "Published reference numbers (not measured by this suite)", never in a measured table.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.resources import package_folder

DEFAULT_PATH = package_folder("bench.report", "references.yaml")
REQUIRED = ("paper", "method", "protocol", "metric", "value")


@dataclass(frozen=True)
class Reference:
    """One published number."""

    paper: str
    method: str
    protocol: str
    metric: str
    value: float | str
    backbone: str = ""
    note: str = ""
    strategy: str = ""  # this suite's name for the method, where one exists
    unit: str = ""
    scenario: str = ""  # our preset that reproduces the paper's protocol, where one does
    backbone_name: str = ""  # our registry name of the paper's backbone (with `scenario`: shown beside our number)


def parse_references(data: Any, source: str = "references") -> list[Reference]:
    """Entries from loaded YAML; a malformed entry is skipped with a warning that names it and what is wrong."""
    if data is None:
        return []
    entries = data.get("references", []) if isinstance(data, dict) else data
    unit = str(data.get("unit") or "") if isinstance(data, dict) else ""
    if not isinstance(entries, list):
        warnings.warn(f"{source}: expected a list of entries, got {type(entries).__name__}", stacklevel=2)
        return []
    out = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            warnings.warn(f"{source}[{index}]: not a mapping; skipped", stacklevel=2)
            continue
        missing = [key for key in REQUIRED if entry.get(key) in (None, "")]
        value = entry.get("value")
        if missing or isinstance(value, bool) or not isinstance(value, (int, float, str)):
            problem = f"missing {missing}" if missing else f"value {value!r} is neither a number nor text"
            warnings.warn(f"{source}[{index}]: {problem}; skipped", stacklevel=2)
            continue
        out.append(Reference(paper=str(entry["paper"]), method=str(entry["method"]),
                             protocol=str(entry["protocol"]), metric=str(entry["metric"]), value=value,
                             backbone=str(entry.get("backbone") or ""), note=str(entry.get("note") or ""),
                             strategy=str(entry.get("strategy") or ""), unit=str(entry.get("unit") or unit),
                             scenario=str(entry.get("scenario") or ""),
                             backbone_name=str(entry.get("backbone_name") or "")))
    return out


def load_references(path: Path | str | None = None) -> list[Reference]:
    """The reference numbers of `path` (default `bench/report/references.yaml`); none when the file does not exist."""
    import yaml

    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        warnings.warn(f"{path}: unreadable ({error}); no reference numbers shown", stacklevel=2)
        return []
    return parse_references(data, str(path))


def by_protocol(references: list[Reference]) -> dict[str, list[Reference]]:
    """Grouped by protocol, in file order."""
    groups: dict[str, list[Reference]] = {}
    for ref in references:
        groups.setdefault(ref.protocol, []).append(ref)
    return groups
