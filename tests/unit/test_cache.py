"""The prepared-file cache: used only when a file is provably unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from saline.model import Model, load_model
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


def test_cache_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The library reads no environment: no cache unless the caller passes one.
    monkeypatch.setenv("SALINE_CACHE_DIR", str(tmp_path / "from-env"))
    root = model_dir(tmp_path)
    assert load_model(str(root)).files.cache is None
    assert FileCache.under(None) is None
    default = FileCache.under("/somewhere")
    assert default is not None and default.directory == "/somewhere/model-files"
    cache = FileCache(str(tmp_path / "cache"))
    assert load_model(str(root), cache).files.cache is cache
    assert not (tmp_path / "from-env").exists()


def test_a_change_to_the_engine_code_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = model_dir(tmp_path)
    later(monkeypatch)
    Model(str(root), cache=FileCache(str(tmp_path / "cache"))).node("n")
    same = FileCache(str(tmp_path / "cache"))
    Model(str(root), cache=same).node("n")
    assert same.hits == 2
    monkeypatch.setattr(cache_mod, "code_digest", lambda: "another parser")
    changed = FileCache(str(tmp_path / "cache"))
    assert Model(str(root), cache=changed).node("n").parameters["v"] == 1
    assert changed.hits == 0 and changed.misses == 2


def test_code_digest_covers_the_engine_source(tmp_path: Path) -> None:
    here = Path(cache_mod.__file__).parent
    assert cache_mod.code_digest() == cache_mod.source_digest(str(here))
    copy = tmp_path / "model"
    copy.mkdir()
    for f in here.glob("*.py"):
        (copy / f.name).write_bytes(f.read_bytes())
    before = cache_mod.source_digest(str(copy))
    assert before == cache_mod.code_digest()
    loader = copy / "loader.py"
    loader.write_text(loader.read_text() + "\n# a parser fix\n")
    assert cache_mod.source_digest(str(copy)) != before
