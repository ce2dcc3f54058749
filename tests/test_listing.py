"""`list` from a fingerprinted cache: the same listing as importing everything, without importing torch, and
rebuilt when a source or plugin file changes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.run import listing

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, sys
from bench.run.listing import listing
data = listing(sys.argv[1:])
print(json.dumps({"torch": "torch" in sys.modules, "strategies": sorted(data["strategies"])}))
"""


def _list(cache: Path, *plugins: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMPTSHIFT_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", PROBE, *plugins], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300, check=True).stdout
    return json.loads(out.splitlines()[-1])


def test_a_cached_listing_needs_no_torch_and_equals_the_collected_one(tmp_path, monkeypatch):
    first = _list(tmp_path)
    assert first["torch"] and "linear_probe" in first["strategies"]  # collected: imports everything
    second = _list(tmp_path)
    assert not second["torch"] and second["strategies"] == first["strategies"]
    monkeypatch.setenv("PROMPTSHIFT_CACHE", str(tmp_path))
    # the cache holds exactly what collecting gives (as JSON: tuples come back as lists)
    assert listing.listing() == json.loads(json.dumps(listing.collect([])))


def test_a_changed_plugin_file_changes_the_fingerprint(tmp_path):
    plugin = tmp_path / "p.py"
    plugin.write_text("# v1\n")
    before = listing.fingerprint([str(plugin)])
    assert listing.fingerprint([str(plugin)]) == before
    plugin.write_text("# version 2\n")
    assert listing.fingerprint([str(plugin)]) != before
    assert listing.fingerprint([]) != before
