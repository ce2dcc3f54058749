"""Tests for bench.core.store: atomic writes, corrupt files, done-ness, config hashing."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from bench.core.store import ResultStore, config_hash


def _record(cell_id: str, status: str = "ok", **extra: object) -> dict[str, object]:
    return {"schema_version": 1, "cell_id": cell_id, "status": status, **extra}


def test_write_read_roundtrip_and_paths(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results")
    rec = _record("default__ci5__lp__s0", metrics={"final_accuracy": 0.8}, note="ü")
    path = store.write(rec)
    assert path == tmp_path / "results" / "default__ci5__lp__s0.json"
    assert store.path_for("default__ci5__lp__s0") == path
    assert store.read("default__ci5__lp__s0") == rec
    assert store.read("missing") is None
    log = store.log_path("default__ci5__lp__s0")
    assert log == tmp_path / "results" / "logs" / "default__ci5__lp__s0.log"
    assert log.parent.is_dir()


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    for i in range(5):
        store.write(_record("cell", metrics={"final_accuracy": i / 10}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]
    assert store.read("cell")["metrics"] == {"final_accuracy": 0.4}  # type: ignore[index]


def test_failed_serialisation_keeps_old_record_and_no_temp(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(_record("cell"))
    with pytest.raises(TypeError):
        store.write(_record("cell", bad=object()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]
    assert store.read("cell") == _record("cell")


def test_write_failure_after_temp_file_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ResultStore(tmp_path)

    def boom(src: str, dst: str) -> None:
        raise OSError("disk vanished")

    monkeypatch.setattr("bench.core.store.os.replace", boom)
    with pytest.raises(OSError, match="disk vanished"):
        store.write(_record("cell"))
    assert list(tmp_path.iterdir()) == []


def test_write_requires_cell_id_and_safe_name(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    with pytest.raises(ValueError, match="cell_id"):
        store.write({"status": "ok"})
    for bad in ("../escape", "a/b", ".hidden", "", " padded"):
        with pytest.raises(ValueError):
            store.write(_record(bad))
    assert list(tmp_path.iterdir()) == []


def test_corrupt_file_is_skipped_with_warning(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(_record("b"))
    store.write(_record("a", status="failed", error="boom"))
    (tmp_path / "half.json").write_text('{"cell_id": "half", "stat', encoding="utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    (tmp_path / "renamed.json").write_text(json.dumps(_record("other")), encoding="utf-8")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")

    with pytest.warns(UserWarning) as caught:
        records = store.records()
    assert [r["cell_id"] for r in records] == ["a", "b"]
    messages = " ".join(str(w.message) for w in caught)
    for name in ("half.json", "list.json", "renamed.json", "binary.json"):
        assert name in messages

    with pytest.warns(UserWarning, match="half.json"):
        assert store.read("half") is None
    with pytest.warns(UserWarning):
        assert not store.is_done("half")


def test_failed_is_not_done(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.write(_record("ok_cell"))
    store.write(_record("bad_cell", status="failed", error="CUDA OOM"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.is_done("ok_cell")
        assert not store.is_done("bad_cell")
        assert not store.is_done("never_ran")
    # A successful rerun replaces the failed record.
    store.write(_record("bad_cell"))
    assert store.is_done("bad_cell")


def test_records_sorted_and_empty_root(tmp_path: Path) -> None:
    assert ResultStore(tmp_path / "nope").records() == []
    store = ResultStore(tmp_path)
    for cid in ("c", "a", "b"):
        store.write(_record(cid))
    store.log_path("a").write_text("log line\n", encoding="utf-8")
    assert [r["cell_id"] for r in store.records()] == ["a", "b", "c"]


def test_config_hash_is_key_order_independent() -> None:
    one = {"suite": "default", "seed": 0, "strategy_config": {"lr": 0.1, "epochs": 3}}
    two = {"strategy_config": {"epochs": 3, "lr": 0.1}, "seed": 0, "suite": "default"}
    assert config_hash(one) == config_hash(two)
    digest = config_hash(one)
    assert len(digest) == 16
    assert all(c in "0123456789abcdef" for c in digest)


def test_config_hash_changes_with_values() -> None:
    base = {"suite": "default", "seed": 0, "strategy_config": {"lr": 0.1}}
    assert config_hash(base) != config_hash({**base, "seed": 1})
    assert config_hash(base) != config_hash({**base, "strategy_config": {"lr": 0.01}})
    # Canonical JSON keeps int and float apart.
    assert config_hash({"x": 1}) != config_hash({"x": 1.0})


def test_records_are_strict_json_and_world_readable(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    path = store.write(_record("c1", results={"final_losses": [float("nan"), 0.5, float("inf")]}))
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["results"]["final_losses"] == [None, 0.5, None]  # null: a missing number
    assert path.stat().st_mode & 0o777 == 0o644  # mkstemp's 0600 is widened (the usual umask 022)
