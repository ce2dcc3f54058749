"""What a suite would run and what it still lacks (data sources, weights), said before anything runs."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from bench.models.checkpoints import CHECKPOINT_DIR
from bench.run.cell import CellConfig
from bench.run.seq2seq_strategies import SCENE_BACKBONE

EMBEDDED = {"vit_glyph_tiny", "clip_glyph_tiny", "coca_glyph_tiny"}  # committed checkpoints/<name>.safetensors
RANDOM = {"vit_test_micro", "clip_test_micro", "coca_test_micro"}


def cell_sources(cells: Sequence[CellConfig]) -> list[str]:
    """The on-disk sources the cells read, in first-use order."""
    from scenarios.catalog import SCENARIOS

    out: list[str] = []
    for cell in cells:
        source = SCENARIOS.get(cell.scenario).source
        if source and source not in out:
            out.append(source)
    return out


def check_sources(cells: Sequence[CellConfig]) -> list[str]:
    """One message per source that cannot be opened (missing root, wrong layout), naming the layout it expects.
    Opens each source fully (lists and files checked) and decodes every image, once per data fingerprint."""
    from scenarios.sources import DataSourceError

    from scenarios.identity import source_identity

    problems = []
    for source in cell_sources(cells):
        try:  # the layout, then every listed image decoded once (remembered per data fingerprint)
            source_identity(source)
        except DataSourceError as error:
            problems.append(str(error))
    return problems


def weights_status(backbone: str, weights: str | None) -> tuple[bool, str]:
    if weights is not None:
        found = Path(weights).is_file()
        return found, f"{weights} ({'found' if found else 'MISSING'})"
    if backbone in RANDOM:
        return True, "random init (test backbone)"
    if backbone == SCENE_BACKBONE:
        found = (CHECKPOINT_DIR / f"{backbone}.safetensors").is_file()
        missing = f"MISSING: run `promptshift pretrain --only {backbone}`"
        return found, f"embedded checkpoint ({'found' if found else missing})"
    if backbone in EMBEDDED:
        found = (CHECKPOINT_DIR / f"{backbone}.safetensors").is_file()
        return found, f"embedded checkpoint ({'found' if found else 'MISSING: run `run_bench.py pretrain`'})"
    return True, "library default: downloaded on first use (offline: give the suite `weights:` a local file)"


def plan(cells: Sequence[CellConfig]) -> tuple[list[str], bool]:
    """Lines describing the run, and whether everything it needs is present."""
    from scenarios.sources import source_status

    lines = [f"{len(cells)} cells:"]
    for (scenario, label, backbone), n in Counter((c.scenario, c.label or c.strategy, c.backbone)
                                                  for c in cells).items():
        lines.append(f"  {scenario:<26} {label:<26} {backbone:<34} x{n} seeds")
    ok = True
    sources = cell_sources(cells)
    if sources:
        lines.append("data sources:")
        from scenarios.structure import structure

        for source in sources:
            found, text = source_status(source)
            if found:  # the real structure, not only the top folder: class count, splits, per-class counts
                found, shape = structure(source)
                text += f": {shape}"
            ok &= found
            lines.append(f"  {source:<22} {text}")
    lines.append("weights:")
    for backbone, weights in sorted({(c.backbone, c.weights) for c in cells}, key=str):
        found, text = weights_status(backbone, weights)
        ok &= found
        lines.append(f"  {backbone:<34} {text}")
    return lines, ok
