"""The one place saline runs git: a model folder as it was at a revision."""

from __future__ import annotations

import os

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


def export_model(root: str, rev: str, dest: str) -> tuple[str, str]:
    """Write the model folder ``root`` as it was at ``rev`` under ``dest``; returns the
    exported model folder and the full commit id."""
    commit = revision(root, rev)
    top = _git(root, "rev-parse", "--show-toplevel")
    prefix = os.path.relpath(os.path.realpath(root), os.path.realpath(top))
    archive = os.path.join(dest, "model.tar")
    paths = [] if prefix == "." else [prefix]
    _git(top, "archive", "--format=tar", "-o", archive, commit, "--", *paths)
    # GNU tar: a 1000-node model in a tenth of the time of Python's tarfile. git archive
    # writes no absolute paths or links out of the tree.
    try:
        run(["tar", "-xf", archive, "-C", dest, "--no-same-owner"], timeout=TIMEOUT)
    except CommandError as e:
        raise GitError(f"cannot unpack {rev} of the model: {e}") from None
    os.remove(archive)
    out = dest if prefix == "." else os.path.join(dest, prefix)
    if not os.path.isdir(os.path.join(out, "nodes")):
        raise GitError(f"{rev} ({commit[:12]}) has no model at {prefix}: no nodes/ folder there")
    return out, commit
