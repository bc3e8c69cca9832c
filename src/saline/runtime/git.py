"""The one place saline runs git: a model folder as it was at a revision."""

from __future__ import annotations

import os
import posixpath

from ..errors import SalineError
from .process import CommandError, run

TIMEOUT = 120.0


class GitError(SalineError):
    """A revision that does not exist, or a model folder outside a git repository."""


def _git(root: str, *args: str) -> str:
    try:
        return run(["git", "-C", root, *args], timeout=TIMEOUT).stdout.strip()
    except CommandError as e:
        detail = (e.stderr or e.stdout or "").strip().splitlines()
        raise GitError(
            f"git {' '.join(args)} in {root}: {detail[-1] if detail else 'failed'}"
        ) from None


def revision(root: str, rev: str) -> str:
    """The full commit id of ``rev`` in the repository holding ``root``."""
    return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def commit_tree(root: str, rev: str) -> tuple[str, str]:
    """The full commit id of ``rev`` and the id of its whole tree: what a model exported
    from that revision is made of (a link to elsewhere in the repository included)."""
    commit = revision(root, rev)
    return commit, _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}")


def head(root: str) -> str | None:
    """The commit checked out where ``root`` is, or None outside a git repository."""
    try:
        return revision(root, "HEAD")
    except (GitError, OSError):
        return None


def _inside(path: str, folders: list[str]) -> bool:
    """Whether the repository path ``path`` is one of ``folders`` or under one."""
    return any(f == "." or path == f or path.startswith(f + "/") for f in folders)


def _extract(top: str, commit: str, paths: list[str], dest: str) -> None:
    """``paths`` of the repository (all of it if empty) at ``commit``, unpacked under
    ``dest`` at their places in the repository."""
    archive = os.path.join(dest, "model.tar")
    _git(top, "archive", "--format=tar", "-o", archive, commit, "--", *paths)
    # GNU tar: a 1000-node model in a tenth of the time of Python's tarfile.
    try:
        run(["tar", "-xf", archive, "-C", dest, "--no-same-owner"], timeout=TIMEOUT)
    except CommandError as e:
        raise GitError(f"cannot unpack {commit[:12]} of the model: {e}") from None
    os.remove(archive)


def _links(top: str, commit: str, paths: list[str]) -> list[str]:
    """The symbolic links under ``paths`` at ``commit`` (repository paths)."""
    out = _git(top, "ls-tree", "-r", "-z", commit, "--", *paths)
    links = []
    for entry in out.split("\0"):
        meta, _, path = entry.partition("\t")
        if meta.split(" ")[0] == "120000":
            links.append(path)
    return links


def export_model(root: str, rev: str, dest: str) -> tuple[str, str]:
    """Write the model folder ``root`` as it was at ``rev`` under ``dest``; returns the
    exported model folder and the full commit id.

    A symbolic link in the model to elsewhere in the repository (a second model that
    shares the first one's classes: ``classes/system -> ../../openstack/classes/system``)
    gets its target exported too, from the same commit and at its place in the
    repository, so the link works as it does in the checkout. A link out of the
    repository, or to a path ``rev`` does not have, is an error: the model at ``rev``
    would not be the model of ``rev``."""
    commit = revision(root, rev)
    top = _git(root, "rev-parse", "--show-toplevel")
    prefix = os.path.relpath(os.path.realpath(root), os.path.realpath(top))
    prefix = prefix.replace(os.sep, "/")
    exported = [prefix]
    _extract(top, commit, [] if prefix == "." else [prefix], dest)
    pending = list(exported)
    while pending:
        wanted: list[str] = []
        for link in _links(top, commit, [] if pending == ["."] else pending):
            target = os.readlink(os.path.join(dest, link))
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
            if posixpath.isabs(target) or resolved == ".." or resolved.startswith("../"):
                raise GitError(
                    f"{link} at {rev} is a link out of the repository ({target}): "
                    "the model cannot be read as it was then"
                )
            if _inside(resolved, exported + wanted):
                continue
            if not _git(top, "ls-tree", commit, "--", resolved):
                raise GitError(
                    f"{link} at {rev} is a link to {resolved}, which {rev} does not have"
                )
            wanted.append(resolved)
        if wanted:
            _extract(top, commit, wanted, dest)
        exported += wanted
        pending = wanted
    out = dest if prefix == "." else os.path.join(dest, prefix)
    if not os.path.isdir(os.path.join(out, "nodes")):
        raise GitError(f"{rev} ({commit[:12]}) has no model at {prefix}: no nodes/ folder there")
    return out, commit
