"""A model folder as it was at a git revision (``saline plan --from REV``), with links.

Real git in a temporary repository: a second model whose ``classes/system`` is a
symbolic link to the first model's (as examples/openstack-kubernetes shares
examples/openstack's) compiles at a revision with that revision's shared classes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from saline.model import load_model
from saline.runtime import git
from tools import REPO, require_tools

GIT = ["git", "-c", "user.email=t@saline", "-c", "user.name=t", "-c", "commit.gpgsign=false"]


def _commit(repo: Path, message: str) -> str:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=repo, check=True)
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True)
    return out.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """models/base (a system class) and models/second (its classes/system: a link)."""
    require_tools("git", "tar")
    root = tmp_path / "repo"
    base = root / "models" / "base"
    (base / "classes" / "system").mkdir(parents=True)
    (base / "nodes").mkdir()
    (base / "classes" / "system" / "db.yml").write_text("parameters:\n  db:\n    port: 1\n")
    (base / "nodes" / "n.yml").write_text("classes: [system.db]\n")
    second = root / "models" / "second"
    (second / "classes").mkdir(parents=True)
    (second / "nodes").mkdir()
    os.symlink("../../base/classes/system", second / "classes" / "system")
    (second / "nodes" / "m.yml").write_text("classes: [system.db]\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _commit(root, "one")
    return root


def _port(folder: str, node: str) -> object:
    return load_model(folder).node(node).parameters["db"]["port"]


def test_a_link_to_shared_classes_is_exported_at_the_same_revision(
    repo: Path, tmp_path: Path
) -> None:
    first = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    (repo / "models" / "base" / "classes" / "system" / "db.yml").write_text(
        "parameters:\n  db:\n    port: 2\n"
    )
    second = _commit(repo, "two")
    (repo / "models" / "base" / "classes" / "system" / "db.yml").write_text(
        "parameters:\n  db:\n    port: 3\n"
    )  # uncommitted: no revision has it
    model = str(repo / "models" / "second")
    for rev, commit, port in (("HEAD~1", first, 1), ("HEAD", second, 2)):
        dest = tmp_path / f"export-{port}"
        dest.mkdir()
        folder, got = git.export_model(model, rev, str(dest))
        assert got == commit
        assert folder == str(dest / "models" / "second")
        assert _port(folder, "m") == port
        # Only the model and the folder its link names: not the rest of the repository.
        assert not (dest / "models" / "base" / "nodes").exists()
    assert _port(model, "m") == 3  # the checkout itself


def test_a_link_out_of_the_repository_is_an_error(repo: Path, tmp_path: Path) -> None:
    second = repo / "models" / "second"
    os.symlink("../../../../outside", second / "classes" / "elsewhere")
    _commit(repo, "out")
    with pytest.raises(
        git.GitError, match=r"models/second/classes/elsewhere at HEAD is a link out"
    ):
        git.export_model(str(second), "HEAD", str(tmp_path))


def test_a_link_to_what_the_revision_lacks_is_an_error(repo: Path, tmp_path: Path) -> None:
    second = repo / "models" / "second"
    os.symlink("../../base/classes/nothing", second / "classes" / "nothing")
    _commit(repo, "dangling")
    with pytest.raises(
        git.GitError, match=r"is a link to models/base/classes/nothing, which HEAD does not have"
    ):
        git.export_model(str(second), "HEAD", str(tmp_path))


def test_links_in_an_exported_target_are_followed_too(repo: Path, tmp_path: Path) -> None:
    """base's system classes link to a third folder: second needs that one as well."""
    shared = repo / "shared"
    shared.mkdir()
    (shared / "cache.yml").write_text("parameters:\n  cache:\n    size: 9\n")
    os.symlink("../../../../shared/cache.yml", repo / "models/base/classes/system/cache.yml")
    (repo / "models" / "second" / "nodes" / "m.yml").write_text(
        "classes: [system.db, system.cache]\n"
    )
    _commit(repo, "chain")
    folder, _ = git.export_model(str(repo / "models" / "second"), "HEAD", str(tmp_path))
    assert load_model(folder).node("m").parameters["cache"]["size"] == 9


def test_the_kubernetes_example_exports_with_the_compose_examples_classes(
    tmp_path: Path,
) -> None:
    """The repository's own example (its classes/system is a link), at HEAD."""
    require_tools("git", "tar")
    if git.head(str(REPO)) is None:
        pytest.skip("not a git checkout")
    model = REPO / "examples" / "openstack-kubernetes"
    if not (model / "classes" / "system").is_symlink():
        pytest.skip("the example's classes/system is no link here")
    try:
        folder, _ = git.export_model(str(model), "HEAD", str(tmp_path))
    except git.GitError as e:
        if "has no model" in str(e):
            pytest.skip("HEAD has no such example yet")
        raise
    nodes = load_model(folder).node_names()
    assert sorted(nodes) == ["control", "database", "messaging"]
