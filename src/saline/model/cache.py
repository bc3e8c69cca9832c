"""A cache of prepared model files, so a file unchanged since the last run is not re-parsed.

Parsing YAML is most of the cost of compiling one node (``saline model show``): the C
parser is fast, but PyYAML builds Python objects in Python. A prepared file (its values
already turned into the engine's types) loads from a pickle several times faster.

Correctness rules, in the manner of git's index:

* an entry is used only if the file's size, mtime, ctime, inode and device are exactly
  those recorded (any write changes mtime and ctime);
* a file modified less than ``racy_seconds`` ago is never cached, because a second write
  within the file system's timestamp resolution could leave mtime unchanged;
* entries are keyed by a digest of the model engine's own source (:func:`code_digest`)
  and this module's format number, so a change to the parser (an upgrade, or an edit in
  an editable install) never reads what older code prepared;
* any problem reading or writing the cache is ignored: it only ever costs a re-parse.

The library reads no environment: the caller names the folder (``FileCache(folder)``,
or :meth:`FileCache.under` saline's cache folder). It is created mode 0700: pickles are
trusted, so nobody else may write there.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

# hashlib, pickle and tempfile are imported where they are used: a model command run with
# the cache off imports this module (for its types) but never needs them.

FORMAT = 1
#: The subfolder of saline's cache folder that holds prepared model files.
SUBFOLDER = "model-files"


@functools.cache
def code_digest() -> str:
    """A digest of the model engine's source files (every ``.py`` of this package).

    Computed once per process (about a dozen files: well under a millisecond). If the
    source cannot be read (an install without ``.py`` files), saline's version stands in.
    """
    try:
        return source_digest(os.path.dirname(os.path.abspath(__file__)))
    except OSError:
        from .. import __version__

        return "version-" + __version__


def source_digest(folder: str) -> str:
    """A digest of the names and contents of the ``.py`` files in ``folder``."""
    import hashlib

    h = hashlib.sha256()
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
        with open(os.path.join(folder, name), "rb") as fh:
            data = fh.read()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:24]


def _now() -> float:
    return time.time()


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class FileCache:
    """Prepared files kept in ``directory`` (created when first written)."""

    def __init__(self, directory: str, racy_seconds: float = 2.0) -> None:
        self.directory = directory
        self.racy_seconds = racy_seconds
        self.hits = 0
        self.misses = 0
        self._key = f"{FORMAT}|{code_digest()}"

    @classmethod
    def under(cls, cache_dir: str | None) -> FileCache | None:
        """The cache of prepared files inside saline's cache folder ``cache_dir``
        (its :data:`SUBFOLDER`); None (no cache) if ``cache_dir`` is None."""
        if cache_dir is None:
            return None
        return cls(os.path.join(cache_dir, SUBFOLDER))

    def _entry(self, abspath: str, name: str) -> str:
        import hashlib

        key = f"{self._key}|{abspath}|{name}".encode()
        return os.path.join(self.directory, hashlib.sha256(key).hexdigest()[:40])

    def get(self, abspath: str, name: str) -> Any | None:
        import pickle

        try:
            st = os.stat(abspath)
            with open(self._entry(abspath, name), "rb") as fh:
                signature, value = pickle.load(fh)
        except Exception:  # missing, unreadable or corrupt: a miss, never an error
            self.misses += 1
            return None
        if signature != _signature(st):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, abspath: str, name: str, value: Any) -> None:
        import pickle
        import tempfile

        try:
            st = os.stat(abspath)
            if _now() - max(st.st_mtime, st.st_ctime) < self.racy_seconds:
                return  # may still change within the same timestamp tick
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump((_signature(st), value), fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self._entry(abspath, name))
        except Exception:  # a read-only or full disk only costs speed
            return
