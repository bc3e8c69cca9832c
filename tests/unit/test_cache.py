"""The prepared-file cache: used only when a file is provably unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from saline.model import Model
from saline.model import cache as cache_mod
from saline.model.cache import FileCache


def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "classes").mkdir(parents=True)
    (root / "nodes").mkdir()
    (root / "classes" / "c.yml").write_text("parameters: {v: 1}\n")
    (root / "nodes" / "n.yml").write_text("classes: [c]\n")
    return root


def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the files were written long ago, so they are not 'racy'."""
    now = time.time()
    monkeypatch.setattr(cache_mod, "_now", lambda: now + 60)


def test_second_load_hits_and_gives_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = model_dir(tmp_path)
    later(monkeypatch)
    cache = FileCache(str(tmp_path / "cache"))
    first = Model(str(root), cache=cache).node("n").as_dict()
    assert cache.hits == 0 and cache.misses == 2
    again = Model(str(root), cache=cache).node("n").as_dict()
    assert cache.hits == 2
    assert again == first


def test_a_changed_file_is_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = model_dir(tmp_path)
    later(monkeypatch)
    cache = FileCache(str(tmp_path / "cache"))
    assert Model(str(root), cache=cache).node("n").parameters["v"] == 1
    cls = root / "classes" / "c.yml"
    st = cls.stat()
    cls.write_text("parameters: {v: 2}\n")  # same size
    os.utime(cls, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert Model(str(root), cache=cache).node("n").parameters["v"] == 2


def test_recently_written_files_are_not_cached(tmp_path: Path) -> None:
    root = model_dir(tmp_path)
    cache = FileCache(str(tmp_path / "cache"))  # real clock: the files are brand new
    Model(str(root), cache=cache).node("n")
    Model(str(root), cache=cache).node("n")
    assert cache.hits == 0
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_corrupt_entry_is_a_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = model_dir(tmp_path)
    later(monkeypatch)
    cache = FileCache(str(tmp_path / "cache"))
    Model(str(root), cache=cache).node("n")
    for entry in (tmp_path / "cache").iterdir():
        entry.write_bytes(b"not a pickle")
    assert Model(str(root), cache=cache).node("n").parameters["v"] == 1
    assert cache.hits == 0


def test_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALINE_NO_CACHE", "1")
    assert FileCache.default() is None
    monkeypatch.delenv("SALINE_NO_CACHE")
    monkeypatch.setenv("SALINE_CACHE_DIR", "/somewhere")
    default = FileCache.default()
    assert default is not None and default.directory == "/somewhere/model-files"
