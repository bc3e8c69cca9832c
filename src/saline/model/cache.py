"""A cache of prepared model files, so a file unchanged since the last run is not re-parsed.

Parsing YAML is most of the cost of compiling one node (``saline model show``): the C
parser is fast, but PyYAML builds Python objects in Python. A prepared file (its values
already turned into the engine's types) loads from a pickle several times faster.

Correctness rules, in the manner of git's index:

* an entry is used only if the file's size, mtime, ctime, inode and device are exactly
  those recorded (any write changes mtime and ctime);
* a file modified less than ``racy_seconds`` ago is never cached, because a second write
  within the file system's timestamp resolution could leave mtime unchanged;
* entries are keyed by saline's version and this module's format number, so an upgrade
  never reads an older layout;
* any problem reading or writing the cache is ignored: it only ever costs a re-parse.

The cache lives in ``$SALINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/saline``, else
``~/.cache/saline`` (created mode 0700: pickles are trusted, so nobody else may write
there). ``SALINE_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import time
from typing import Any

from .. import __version__

FORMAT = 1


def _now() -> float:
    return time.time()


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class FileCache:
    def __init__(self, directory: str, racy_seconds: float = 2.0) -> None:
        self.directory = directory
        self.racy_seconds = racy_seconds
        self.hits = 0
        self.misses = 0

    @classmethod
    def default(cls) -> FileCache | None:
        if os.environ.get("SALINE_NO_CACHE"):
            return None
        base = os.environ.get("SALINE_CACHE_DIR")
        if not base:
            home_cache = os.path.join(os.path.expanduser("~"), ".cache")
            xdg = os.environ.get("XDG_CACHE_HOME") or home_cache
            base = os.path.join(xdg, "saline")
        return cls(os.path.join(base, "model-files"))

    def _entry(self, abspath: str, name: str) -> str:
        key = f"{FORMAT}|{__version__}|{abspath}|{name}".encode()
        return os.path.join(self.directory, hashlib.sha256(key).hexdigest()[:40])

    def get(self, abspath: str, name: str) -> Any | None:
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
