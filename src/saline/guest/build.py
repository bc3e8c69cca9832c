"""Build the guest from Debian packages: the one module of :mod:`saline.guest` with
effects (apt, dpkg-deb, depmod, files); what goes in is decided by
:mod:`saline.guest.recipe`.

1. apt (saline's private one, :mod:`saline.runtime.apt`) resolves ``linux-image-amd64``
   to the real kernel package and ``busybox-static`` to exact versions;
2. those versions and the recipe name the build (:func:`~.recipe.cache_key`): a build
   already in the cache folder is used as it is;
3. otherwise apt downloads the two packages (checked against the suites' signed lists),
   ``dpkg-deb -x`` unpacks them, ``depmod`` indexes the kernel's modules, and the kernel,
   the initramfs, the root disk and ``guest.json`` are written to the cache folder.

Nothing is downloaded from anywhere but the Debian archive the mirrors name. apt's lists
are read once (on the first build, or on ``refresh``): so a build keeps its packages
until someone asks for newer ones, as images do (``saline build --refresh``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..build.packages import Suites
from ..runtime import debs
from ..runtime.apt import DEFAULT_KEYRING, AptArchive, deb_file_name
from ..settings import DebianMirrors, Settings
from .recipe import (
    BUSYBOX_PACKAGE,
    DESCRIPTION,
    FILES,
    KERNEL_METAPACKAGE,
    KERNEL_PACKAGE,
    WANTED_MODULES,
    GuestError,
    cache_key,
    description,
    initramfs,
    load_order,
    module_file,
    module_name,
    root_disk,
)

#: The build's scratch folders in the cache folder, and when one is surely left over.
WORK_PREFIX = "work-"
STALE_WORK_SECONDS = 3600.0


@dataclass(frozen=True)
class Guest:
    """A built guest: its folder, its files there (role -> path: kernel, ramdisk, disk),
    ``guest.json``'s contents, and whether it came from the cache."""

    folder: str
    files: dict[str, str]
    description: dict[str, Any]
    cached: bool

    @property
    def description_file(self) -> str:
        return os.path.join(self.folder, DESCRIPTION)


def guest_for(
    settings: Settings,
    *,
    out: str | None = None,
    refresh: bool = False,
    progress: Callable[[str], None] = lambda _line: None,
) -> Guest:
    """:func:`build_guest` with saline's folders: builds in ``STATE/guest``, apt's lists
    in ``STATE/apt`` (shared with the image builds), the Debian mirrors of the settings."""
    return build_guest(
        os.path.join(settings.state_dir, "guest"),
        os.path.join(settings.state_dir, "apt"),
        settings.debian,
        out=out,
        refresh=refresh,
        progress=progress,
    )


def build_guest(
    cache_dir: str,
    apt_root: str,
    mirrors: DebianMirrors,
    *,
    suites: Suites | None = None,
    out: str | None = None,
    refresh: bool = False,
    keyring: str = DEFAULT_KEYRING,
    progress: Callable[[str], None] = lambda _line: None,
) -> Guest:
    """The guest for the Debian ``suites`` (default: bookworm with its updates and
    security fixes), built in (or taken from) ``cache_dir/builds/KEY``; with ``out``,
    its files are copied to that folder too, and it is the guest's folder.

    ``apt_root`` holds saline's apt folders (one per set of sources, shared with the
    image builds); ``refresh`` reads the suites' lists anew, taking newer packages.
    """
    suites = suites or Suites()
    sources = suites.sources(mirrors, keyring)
    archive = AptArchive(AptArchive.folder_for(apt_root, sources), sources)
    if refresh or not archive.updated():
        progress(f"guest: reading the package lists of {', '.join(suites.names)}")
        archive.update()
    packages = resolve_packages(archive)
    progress("guest: " + ", ".join(f"{n} {v}" for n, (v, _) in packages.items()))
    versions = {n: v for n, (v, _) in packages.items()}
    folder = os.path.join(cache_dir, "builds", cache_key(versions))
    cached = os.path.isfile(os.path.join(folder, DESCRIPTION))
    if cached:
        progress(f"guest: built already ({folder})")
    else:
        _build(folder, cache_dir, archive, packages, progress)
    guest = _read(folder, cached)
    if out is not None:
        guest = _copy(guest, out)
    return guest


def resolve_packages(archive: AptArchive) -> dict[str, tuple[str, str]]:
    """The kernel package ``linux-image-amd64`` stands for and busybox-static, as apt
    would install them: name -> (version, architecture)."""
    found = archive.simulate([KERNEL_METAPACKAGE, BUSYBOX_PACKAGE])
    kernels = [r for r in found if KERNEL_PACKAGE.match(r.name)]
    busybox = [r for r in found if r.name == BUSYBOX_PACKAGE]
    if len(kernels) != 1 or not busybox:
        names = ", ".join(r.name for r in found) or "nothing"
        raise GuestError(
            f"apt resolves {KERNEL_METAPACKAGE} and {BUSYBOX_PACKAGE} to {names}: expected "
            "one linux-image-RELEASE-amd64 package and busybox-static"
        )
    return {r.name: (r.version, r.arch) for r in (kernels[0], busybox[0])}


def _build(
    folder: str,
    cache_dir: str,
    archive: AptArchive,
    packages: dict[str, tuple[str, str]],
    progress: Callable[[str], None],
) -> None:
    deb_dir = os.path.join(cache_dir, "debs")
    os.makedirs(deb_dir, exist_ok=True)
    files = {n: os.path.join(deb_dir, deb_file_name(n, v, a)) for n, (v, a) in packages.items()}
    missing = [f"{n}={packages[n][0]}" for n, path in files.items() if not os.path.isfile(path)]
    if missing:
        progress(f"guest: downloading {', '.join(missing)}")
        archive.download(missing, deb_dir)
    # Packages of earlier builds: their builds are kept (small), their packages not.
    keep = {os.path.basename(p) for p in files.values()}
    for name in os.listdir(deb_dir):
        if name.endswith(".deb") and name not in keep:
            os.remove(os.path.join(deb_dir, name))

    _remove_stale_work(cache_dir)
    work = tempfile.mkdtemp(prefix=WORK_PREFIX, dir=cache_dir)
    try:
        root = os.path.join(work, "root")
        for path in files.values():
            progress(f"guest: unpacking {os.path.basename(path)}")
            debs.extract(path, root)
        kernel = next(n for n in packages if KERNEL_PACKAGE.match(n))
        match = KERNEL_PACKAGE.match(kernel)
        assert match is not None  # resolve_packages chose it by this pattern
        release = match[1]
        modules_dir = os.path.join(root, "lib", "modules", release)
        progress(f"guest: indexing the modules of {release} (depmod)")
        order = load_order(
            debs.depmod(root, release),
            WANTED_MODULES,
            _lines(os.path.join(modules_dir, "modules.builtin")),
        )
        names = [module_name(p) for p in order]
        progress(f"guest: modules {' '.join(names)}")
        modules = []
        for path in order:
            _, data = module_file(path, _read_bytes(os.path.join(modules_dir, path)))
            modules.append((module_name(path), data))
        busybox = _read_bytes(os.path.join(root, "bin", "busybox"))
        vmlinuz = os.path.join(root, "boot", f"vmlinuz-{release}")

        tmp = os.path.join(work, "out")
        os.makedirs(tmp)
        shutil.copyfile(vmlinuz, os.path.join(tmp, FILES["kernel"][0]))
        _write(os.path.join(tmp, FILES["ramdisk"][0]), initramfs(busybox, modules))
        _write(os.path.join(tmp, FILES["disk"][0]), root_disk())
        sums = {name: _sum(os.path.join(tmp, name)) for name, _ in FILES.values()}
        desc = description(sums, {n: v for n, (v, _) in packages.items()}, release, names)
        _write(os.path.join(tmp, DESCRIPTION), _json(desc))
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another build of the same key finished first: same inputs, same files.
            if not os.path.isfile(os.path.join(folder, DESCRIPTION)):
                raise
        progress(f"guest: built {folder}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_stale_work(cache_dir: str) -> None:
    """Work folders a killed build left (an unpacked kernel: 400 MB). A build takes
    seconds: one older than :data:`STALE_WORK_SECONDS` is no running build's."""
    now = time.time()
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if name.startswith(WORK_PREFIX) and now - os.path.getmtime(path) > STALE_WORK_SECONDS:
            shutil.rmtree(path, ignore_errors=True)


def _read(folder: str, cached: bool) -> Guest:
    path = os.path.join(folder, DESCRIPTION)
    try:
        with open(path, encoding="utf-8") as fh:
            desc = json.load(fh)
    except (OSError, ValueError) as e:
        raise GuestError(f"cannot read the guest's description {path}: {e}") from None
    files = {role: os.path.join(folder, name) for role, (name, _) in FILES.items()}
    return Guest(folder, files, desc, cached)


def _copy(guest: Guest, out: str) -> Guest:
    """The guest's files and description copied into ``out``."""
    if os.path.realpath(out) == os.path.realpath(guest.folder):
        return guest
    os.makedirs(out, exist_ok=True)
    for path in [*guest.files.values(), guest.description_file]:
        shutil.copyfile(path, os.path.join(out, os.path.basename(path)))
    return _read(out, guest.cached)


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [x.strip() for x in fh if x.strip()]
    except FileNotFoundError:
        return []


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise GuestError(f"the unpacked packages have no {path}") from None


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _sum(path: str) -> tuple[int, str]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return os.path.getsize(path), h.hexdigest()


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()
