"""Debian root file systems with mmdebstrap, from Debian's own archive (no registry).

The recipe (suite, sources, options, the command line, the digest) is pure data in
:mod:`.graph`; this module runs it.
"""

from __future__ import annotations

import io
import os
import tarfile

from ..runtime.process import CommandError, run
from ..settings import DebianMirrors
from .graph import mmdebstrap_command
from .packages import Suites

#: mmdebstrap's time limit by default (a minbase rootfs took about 11 s here; a slow
#: mirror and a long package list take much longer).
MMDEBSTRAP_TIMEOUT = 1800.0


class RootfsError(CommandError):
    """mmdebstrap failed; carries its command line, exit code and output."""


def build_rootfs(
    out: str,
    include: list[str],
    hooks: list[str],
    files: dict[str, tuple[str, int]] | None = None,
    *,
    mirrors: DebianMirrors,
    suites: Suites | None = None,
    pins: str | None = None,
    timeout: float = MMDEBSTRAP_TIMEOUT,
) -> None:
    """Build the tarball ``out`` (written to a temporary name first, so a failed build
    leaves nothing that looks finished) with packages from ``mirrors``. ``files`` (path ->
    (text, mode)) are added to the tarball afterwards: mmdebstrap's own cleanup would
    remove some of them (it deletes /usr/sbin/policy-rc.d after the customize hooks).
    ``suites``: the Debian suites (default bookworm with updates and security); ``pins``:
    a file of apt preferences holding packages at exact versions."""
    # mmdebstrap chooses the format by the name's extension: keep it last.
    stem, ext = os.path.splitext(out)
    tmp = f"{stem}.partial{ext}"
    cmd = mmdebstrap_command(tmp, include, hooks, mirrors, suites, pins)
    done = run(cmd, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RootfsError(done.argv, done.returncode, done.stdout, done.stderr)
    if files:
        with tarfile.open(tmp, "a") as tar:
            for path, (text, mode) in sorted(files.items()):
                data = text.encode()
                info = tarfile.TarInfo("./" + path.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), mode, 0
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
