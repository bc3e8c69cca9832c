"""The render cache: each node's rendered config files, kept on disk under a digest of
everything that went into them, so a node whose inputs did not change costs no Salt work
(not even Salt's import).

The key (:func:`render_key`) covers:

* the node's name, its compiled pillar (order and types included: a template iterates a
  dict in its order) and the static grains the render gives it;
* the configure states of each of its services, in order;
* every file of the formula folders (Salt's file roots: a state or template may include
  any of them), with the folders' paths and order (:func:`formulas_digest`);
* the code that renders: this package's source, Salt's and Jinja's versions, this
  format's number.

Not covered: the rendering machine's own grains (its OS, hostname...). They describe the
machine saline runs on, not the node; a formula that reads them renders machine-dependent
files already.

Entries are JSON (never pickles: a cache entry is data, not code), one folder per node
holding its latest :data:`KEEP` entries (two revisions compared back and forth both stay).
They hold the node's secrets: files are mode 0600 in folders of mode 0700. An entry that
cannot be read or does not check out (truncated, edited, another format) is a miss; the
render that follows rewrites it. Writing problems (a read-only or full disk) only cost
speed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import marshal
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ..model.cache import source_digest
from .runner import RenderedFile

FORMAT = 1
#: Entries kept per node (the newest).
KEEP = 4
#: Folders of formula trees that are not formula files.
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})


def _package_version(name: str) -> str:
    """A package's version without importing it (Salt's import alone takes a second)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return "missing"
    if spec is None or not spec.origin:
        return "missing"
    folder = os.path.dirname(spec.origin)
    try:
        with open(os.path.join(folder, "_version.txt"), encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        pass
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", fh.read(), re.M)
    except OSError:
        found = None
    if found:
        return found.group(1)
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


_code: str | None = None


def code_digest() -> str:
    """The rendering code's identity: this package's source, Salt's and Jinja's
    versions, the entry format. Computed once per process."""
    global _code
    if _code is None:
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            saline = source_digest(here)
        except OSError:
            from .. import __version__

            saline = "version-" + __version__
        parts = [str(FORMAT), saline, _package_version("salt"), _package_version("jinja2")]
        parts.append(f"{sys.version_info[0]}.{sys.version_info[1]}")
        _code = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return _code


def formulas_digest(dirs: Sequence[str]) -> str:
    """A digest of every file under the formula folders ``dirs`` (their order, paths,
    and each file's relative path and content)."""
    h = hashlib.sha256()
    for base in dirs:
        base = os.path.abspath(base)
        h.update(f"root\0{base}\0".encode())
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    data = b"\0unreadable"
                rel = os.path.relpath(path, base)
                h.update(f"file\0{rel}\0{len(data)}\0".encode())
                h.update(data)
    return h.hexdigest()


def _canonical(value: Any) -> bytes:
    """Bytes that differ whenever ``value`` differs in content, order or type.

    marshal's version 2 writes no references between objects (version 3 does), so equal
    values give equal bytes however their objects are shared; it knows the plain types a
    compiled model holds. Anything else falls back to ``repr``.
    """
    try:
        return b"m" + marshal.dumps(value, 2)
    except ValueError:
        return b"r" + repr(value).encode("utf-8", "backslashreplace")


def render_key(
    node: str,
    parameters: dict[str, Any],
    services: Sequence[Sequence[str]],
    grains: dict[str, Any],
    formulas: str,
) -> str:
    """The cache key of ``node``'s render: ``formulas`` is :func:`formulas_digest`."""
    h = hashlib.sha256()
    h.update(code_digest().encode())
    h.update(formulas.encode())
    states = tuple(tuple(s) for s in services)
    h.update(_canonical((node, states, grains)))
    h.update(_canonical(parameters))
    return h.hexdigest()


def _node_folder(node: str) -> str:
    return hashlib.sha256(node.encode()).hexdigest()[:32]


_FIELDS = ("path", "content", "mode", "state_id", "source")


def _files(data: Any) -> list[RenderedFile] | None:
    if not isinstance(data, list):
        return None
    out = []
    for f in data:
        if not isinstance(f, dict) or set(f) != set(_FIELDS):
            return None
        if not all(isinstance(f[k], str) for k in _FIELDS if k != "mode"):
            return None
        if f["mode"] is not None and not isinstance(f["mode"], str):
            return None
        out.append(RenderedFile(f["path"], f["content"], f["mode"], f["state_id"], f["source"]))
    return out


class RenderCache:
    """Rendered files kept in ``directory`` (created when first written, mode 0700)."""

    def __init__(self, directory: str, keep: int = KEEP) -> None:
        self.directory = directory
        self.keep = keep
        self.hits = 0
        self.misses = 0

    def _entry(self, node: str, key: str) -> str:
        return os.path.join(self.directory, _node_folder(node), key + ".json")

    def get(self, node: str, key: str, services: int) -> list[list[RenderedFile]] | None:
        """The files of each of the ``services`` services of ``node`` rendered under
        ``key``; None if there is no sound entry."""
        path = self._entry(node, key)
        try:
            with open(path, encoding="utf-8") as fh:
                st = os.fstat(fh.fileno())
                # Only what this user wrote, and nobody else could have.
                if st.st_uid != os.getuid() or st.st_mode & 0o077:
                    raise ValueError("not a private entry")
                data = json.load(fh)
        except (OSError, ValueError):
            self.misses += 1
            return None
        found = self._check(data, node, key, services)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # the newest are kept
        return found

    @staticmethod
    def _check(data: Any, node: str, key: str, services: int) -> list[list[RenderedFile]] | None:
        if not isinstance(data, dict):
            return None
        if data.get("format") != FORMAT or data.get("node") != node or data.get("key") != key:
            return None
        lists = data.get("services")
        if not isinstance(lists, list) or len(lists) != services:
            return None
        out = []
        for files in lists:
            checked = _files(files)
            if checked is None:
                return None
            out.append(checked)
        return out

    def put(self, node: str, key: str, rendered: list[list[RenderedFile]]) -> None:
        data = {
            "format": FORMAT,
            "node": node,
            "key": key,
            "services": [[{k: getattr(f, k) for k in _FIELDS} for f in fs] for fs in rendered],
        }
        folder = os.path.dirname(self._entry(node, key))
        tmp = None
        try:
            for d in (self.directory, folder):
                os.makedirs(d, mode=0o700, exist_ok=True)
                if os.stat(d).st_mode & 0o777 != 0o700:
                    os.chmod(d, 0o700)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # mode 0600
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, self._entry(node, key))
            tmp = None
            self._prune(folder, key + ".json")
        except OSError:
            return
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.remove(tmp)

    def _prune(self, folder: str, written: str) -> None:
        """Keep the newest entries of a node (the one just ``written`` among them), and
        remove what an interrupted write left (older than an hour)."""
        entries = []
        stale = time.time() - 3600
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                continue
            if name.startswith(".tmp-"):
                if mtime / 1e9 < stale:
                    with contextlib.suppress(OSError):
                        os.remove(path)
            elif name.endswith(".json") and name != written:
                entries.append((mtime, name, path))
        entries.sort(reverse=True)
        for _mtime, _name, path in entries[max(self.keep - 1, 0) :]:
            with contextlib.suppress(OSError):
                os.remove(path)
