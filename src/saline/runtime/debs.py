"""Debian package files on this machine, without installing them: unpack a ``.deb``
(``dpkg-deb -x``) and index an unpacked kernel's modules (``depmod``).

Why ``depmod``: Debian's kernel packages do not ship ``modules.dep`` (their postinst runs
``depmod`` on the installed system), and ``modules.dep`` is where the modules' dependencies
are written down; kmod's ``depmod -b`` computes it for a kernel unpacked anywhere.

Every command goes through :func:`saline.runtime.process.run` with a time limit; a failure
is a :class:`DebError` naming the package or kernel.
"""

from __future__ import annotations

import os

from ..errors import SalineError
from .process import CommandError, run

#: dpkg-deb -x of a kernel package (about 400 MB unpacked: 5 s measured).
EXTRACT_TIMEOUT = 300.0
#: depmod over a kernel's 4000 modules (0.5 s measured).
DEPMOD_TIMEOUT = 120.0


class DebError(SalineError):
    """A Debian package file could not be unpacked, or a kernel's modules not indexed."""


def extract(deb: str, dest: str) -> None:
    """Unpack the files of the package ``deb`` into the folder ``dest`` (created); its
    maintainer scripts are not run."""
    os.makedirs(dest, exist_ok=True)
    try:
        run(["dpkg-deb", "-x", deb, dest], timeout=EXTRACT_TIMEOUT)
    except CommandError as e:
        raise DebError(f"could not unpack {os.path.basename(deb)}: {e}") from None


def depmod(root: str, release: str) -> str:
    """Index the modules of kernel ``release`` unpacked under ``root``
    (``root/lib/modules/RELEASE``) and return its ``modules.dep``."""
    folder = os.path.join(root, "lib", "modules", release)
    if not os.path.isdir(folder):
        raise DebError(f"kernel {release}: no modules folder {folder}")
    try:
        run(["depmod", "-b", root, release], timeout=DEPMOD_TIMEOUT)
    except CommandError as e:
        raise DebError(f"kernel {release}: depmod could not index its modules: {e}") from None
    with open(os.path.join(folder, "modules.dep"), encoding="utf-8") as fh:
        return fh.read()
