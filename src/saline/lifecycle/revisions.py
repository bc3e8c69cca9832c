"""The release of a git revision of the model, compiled and rendered once and kept.

``saline plan --from HEAD`` (the usual question: what does my edit change?) compiles,
renders and builds the release of the committed model at every run, although a commit
never changes: on a 1000-node model that was nearly half of the plan's time. Its release
and pillars are kept here after the first time, under a key that covers everything they
are made of:

* the commit's whole tree (not only the model folder: a class may be a link to elsewhere
  in the repository), and which folder of it is the model;
* the formulas: the folders given by the settings, else the ones shipped with saline
  (formulas inside the model folder are in the tree already);
* the code: saline's whole source, Salt's and Jinja's versions, Python's (as the render
  cache, :func:`saline.salt.rendercache.code_digest`), and this format's number.

An entry is one JSON file (never a pickle: an entry is data, not code): the release as
its record is written (:func:`saline.release.release_text`), its config contents and its
pillars, mode 0600 in a folder of mode 0700 (pillars hold secrets). One file, not a
release record's one file per config: a thousand small reads cost more than the parse.
One that cannot be read is a miss, rebuilt and rewritten; a cache that cannot be written
only costs speed. The :data:`KEEP` most recently used entries stay.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..build.graph import Resolve
from ..formulas import SHIPPED, FormulaSet
from ..model import Model
from ..release import Release, release_from_dict
from ..runtime import git
from ..salt.rendercache import code_digest, formulas_digest
from .desired import desired_release, model_at

FORMAT = 1
SUBFOLDER = "revisions"
KEEP = 8
_SKIP_DIRS = frozenset({"__pycache__"})

_source: str | None = None


def source_digest() -> str:
    """saline's whole source (every ``.py`` below the package), once per process."""
    global _source
    if _source is None:
        top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(f for f in filenames if f.endswith(".py")):
                path = os.path.join(dirpath, name)
                with open(path, "rb") as fh:
                    data = fh.read()
                h.update(f"{os.path.relpath(path, top)}\0{len(data)}\0".encode())
                h.update(data)
        _source = h.hexdigest()
    return _source


def revision_key(tree: str, root: str, formula_dirs: Sequence[str]) -> str:
    """The cache key of the release of ``tree`` with the model at ``root``."""
    h = hashlib.sha256()
    for part in (
        str(FORMAT),
        tree,
        os.path.realpath(root),
        formulas_digest(list(formula_dirs) or [str(SHIPPED)]),
        code_digest(),
        source_digest(),
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def release_at(
    root: str,
    rev: str,
    cache_dir: str | None,
    formula_dirs: Sequence[str],
    formulas_of: Callable[[Model], FormulaSet],
    resolve: Resolve,
) -> tuple[Release, Mapping[str, Any]]:
    """The release of the model folder ``root`` at git revision ``rev``, and its
    pillars: kept beside ``cache_dir`` (the model cache's folder, settings.cache_dir)
    after the first time. ``formula_dirs``: the
    formula folders the settings name (empty: the model's own or the shipped ones);
    ``formulas_of``: the formula set of a model, as the CLI picks it; ``resolve``: the
    images' packages."""
    if cache_dir is None:
        return _build(root, rev, None, formulas_of, resolve)
    _, tree = git.commit_tree(root, rev)
    # Beside the model's prepared files (``.../saline/model-files``) and the render cache.
    base = os.path.join(os.path.dirname(os.path.abspath(cache_dir)), SUBFOLDER)
    path = os.path.join(base, revision_key(tree, root, formula_dirs) + ".json")
    found = _load(path)
    if found is not None:
        return found
    release, pillars = _build(root, rev, cache_dir, formulas_of, resolve)
    _store(path, release, pillars)
    return release, pillars


def _build(
    root: str,
    rev: str,
    cache_dir: str | None,
    formulas_of: Callable[[Model], FormulaSet],
    resolve: Resolve,
) -> tuple[Release, Mapping[str, Any]]:
    with model_at(root, rev, cache_dir) as (model, source):
        desired = desired_release(model, formulas_of(model), source, cache_dir, resolve=resolve)
    return desired.release, desired.pillars


def _load(path: str) -> tuple[Release, Mapping[str, Any]] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        release = release_from_dict(data["release"], data["contents"])
        pillars = data["pillars"]
        if release.id != data["release"]["id"] or not isinstance(pillars, dict):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: kept longest
    return release, pillars


def _store(path: str, release: Release, pillars: Mapping[str, Any]) -> None:
    entry = {"release": release.as_dict(), "contents": release.contents(), "pillars": pillars}
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(entry, fh)
        os.replace(tmp, path)  # a reader never sees half an entry
        _prune(os.path.dirname(path))
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)


def _prune(base: str) -> None:
    entries = sorted(
        (os.path.getmtime(os.path.join(base, e)), e)
        for e in os.listdir(base)
        if e.endswith(".json")
    )
    for _, name in entries[:-KEEP]:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(base, name))
