"""The release of a git revision, kept (saline.lifecycle.revisions): a real git repository
and real cache files; the build itself (compile and Salt render, tested elsewhere) is
counted, with the example's release standing in for it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from release_tools import copy_example, edit, release_of
from saline.formulas import FormulaSet
from saline.lifecycle import revisions
from saline.model import Model
from saline.release import release_text
from tools import fixed_packages

GIT = ["git", "-c", "user.email=t@saline", "-c", "user.name=t"]


def commit(root: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=root, check=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    model = copy_example(root)
    commit(root, "model")
    return model


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each build of a revision (its revision), returning the example's release."""
    calls: list[str] = []
    release, pillars = release_of()

    def build(
        root: str, rev: str, cache_dir: str | None, formulas_of: Callable[..., Any], *_: Any
    ) -> Any:
        calls.append(rev)
        return release, pillars

    monkeypatch.setattr(revisions, "_build", build)
    return calls


def unused(model: Model) -> FormulaSet:
    raise AssertionError("the build is counted, not run")


def at(model: Path, cache: Path, formulas: list[str] | None = None) -> Any:
    return revisions.release_at(
        str(model), "HEAD", str(cache / "model-files"), formulas or [], unused, fixed_packages
    )


def test_a_revision_is_built_once_then_read_back_the_same(
    repo: Path, tmp_path: Path, builds: list[str]
) -> None:
    first = at(repo, tmp_path / "cache")
    second = at(repo, tmp_path / "cache")
    assert builds == ["HEAD"]
    assert release_text(second[0]) == release_text(first[0])
    assert second[0].contents() == first[0].contents()  # config texts, not only digests
    assert second[1] == first[1]
    entries = list((tmp_path / "cache" / "revisions").iterdir())
    assert len(entries) == 1
    assert entries[0].stat().st_mode & 0o777 == 0o600  # pillars hold secrets
    assert (tmp_path / "cache" / "revisions").stat().st_mode & 0o777 == 0o700


def test_a_new_commit_is_a_new_entry(repo: Path, tmp_path: Path, builds: list[str]) -> None:
    at(repo, tmp_path / "cache")
    edit(repo / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    at(repo, tmp_path / "cache")  # not committed: HEAD is the same
    commit(repo.parent, "longer tokens")
    at(repo, tmp_path / "cache")
    assert builds == ["HEAD", "HEAD"]


def test_other_formulas_are_another_entry(repo: Path, tmp_path: Path, builds: list[str]) -> None:
    formulas = tmp_path / "formulas" / "x"
    formulas.mkdir(parents=True)
    (formulas / "formula.yml").write_text("name: x\n")
    at(repo, tmp_path / "cache", [str(tmp_path / "formulas")])
    at(repo, tmp_path / "cache", [str(tmp_path / "formulas")])
    (formulas / "formula.yml").write_text("name: x\ndescription: changed\n")
    at(repo, tmp_path / "cache", [str(tmp_path / "formulas")])
    assert builds == ["HEAD", "HEAD"]


@pytest.mark.parametrize("damage", ["truncated", "not-json", "wrong-shape"])
def test_an_unreadable_entry_is_built_again(
    repo: Path, tmp_path: Path, builds: list[str], damage: str
) -> None:
    at(repo, tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "revisions").iterdir()
    text = entry.read_text()
    entry.write_text(
        {"truncated": text[: len(text) // 2], "not-json": "}", "wrong-shape": "[1]"}[damage]
    )
    again = at(repo, tmp_path / "cache")
    assert builds == ["HEAD", "HEAD"]
    assert release_text(again[0]) == release_text(release_of()[0])
    assert at(repo, tmp_path / "cache")[1] == again[1] and builds == ["HEAD", "HEAD"]


def test_no_cache_folder_builds_every_time(repo: Path, builds: list[str]) -> None:
    revisions.release_at(str(repo), "HEAD", None, [], unused, fixed_packages)
    revisions.release_at(str(repo), "HEAD", None, [], unused, fixed_packages)
    assert builds == ["HEAD", "HEAD"]


def test_only_the_newest_entries_are_kept(
    repo: Path, tmp_path: Path, builds: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revisions, "KEEP", 2)
    for n in range(4):
        (repo / f"note{n}.txt").write_text(str(n))
        commit(repo.parent, f"note {n}")
        at(repo, tmp_path / "cache")
        for entry in (tmp_path / "cache" / "revisions").iterdir():
            os.utime(entry, (n, n))  # older than the next one, whatever the clock's grain
    assert len(list((tmp_path / "cache" / "revisions").iterdir())) == 2
    at(repo, tmp_path / "cache")  # the newest is one of them
    assert len(builds) == 4
