"""Debian root file systems with mmdebstrap, from Debian's own archive (no registry)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile

from ..errors import SalineError

SUITE = "bookworm"


def debian_sources(mirror: str, security: str, suite: str = SUITE) -> list[str]:
    """bookworm, bookworm-updates and bookworm-security (keystone 22.0.2 is in security)."""
    return [
        f"deb {mirror} {suite} main",
        f"deb {mirror} {suite}-updates main",
        f"deb {security} {suite}-security main",
    ]


def default_mirrors() -> tuple[str, str]:
    """$SALINE_DEBIAN_MIRROR / $SALINE_DEBIAN_SECURITY, else deb.debian.org."""
    return (
        os.environ.get("SALINE_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
        os.environ.get("SALINE_DEBIAN_SECURITY", "http://deb.debian.org/debian-security"),
    )


# Kept in the image's apt and dpkg configuration, so packages installed later on top of
# it (service images) follow them too: no Recommends, no docs, man pages or locales.
APT_OPTIONS = ['Apt::Install-Recommends "false"', 'Apt::Install-Suggests "false"']
DPKG_OPTIONS = [
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
]


def mmdebstrap_command(out: str, include: list[str], hooks: list[str]) -> list[str]:
    """The mmdebstrap command line for a minbase rootfs tarball. Pure."""
    mirror, security = default_mirrors()
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--quiet"]
    cmd += [f"--aptopt={o}" for o in APT_OPTIONS]
    cmd += [f"--dpkgopt={o}" for o in DPKG_OPTIONS]
    if include:
        cmd.append("--include=" + ",".join(include))
    for hook in hooks:
        cmd.append("--customize-hook=" + hook)
    return [*cmd, SUITE, out, *debian_sources(mirror, security)]


def rootfs_digest(
    include: list[str], hooks: list[str], files: dict[str, tuple[str, int]] | None = None
) -> str:
    """A digest of what goes into a rootfs, for tagging what is built from it."""
    mirror, security = default_mirrors()
    added = [f"{path}:{mode:o}:{text}" for path, (text, mode) in sorted((files or {}).items())]
    parts = [SUITE, mirror, security, *sorted(include), *hooks, *APT_OPTIONS, *DPKG_OPTIONS]
    return hashlib.sha256("\n".join([*parts, *added]).encode()).hexdigest()[:16]


class RootfsError(SalineError):
    pass


def build_rootfs(
    out: str, include: list[str], hooks: list[str], files: dict[str, tuple[str, int]] | None = None
) -> None:
    """Build the tarball ``out`` (written to a temporary name first, so a failed build
    leaves nothing that looks finished). ``files`` (path -> (text, mode)) are added to the
    tarball afterwards: mmdebstrap's own cleanup would remove some of them (it deletes
    /usr/sbin/policy-rc.d after the customize hooks)."""
    # mmdebstrap chooses the format by the name's extension: keep it last.
    stem, ext = os.path.splitext(out)
    tmp = f"{stem}.partial{ext}"
    cmd = mmdebstrap_command(tmp, include, hooks)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RootfsError(f"mmdebstrap failed (exit {proc.returncode}):\n{tail}")
    if files:
        with tarfile.open(tmp, "a") as tar:
            for path, (text, mode) in sorted(files.items()):
                data = text.encode()
                info = tarfile.TarInfo("./" + path.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), mode, 0
                tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
