"""The guest's pieces as data: which kernel modules, the initramfs archive, its ``/init``,
the root disk and the description. Pure: bytes and text in, bytes and text out; reading
packages and writing files is :mod:`saline.guest.build`.

The guest is a Debian kernel booted directly (no bootloader) with an initramfs holding
busybox, the virtio modules and an ``/init`` script; it never leaves the initramfs. It
prints marker lines on its console (the constants below: the smoke test imports them),
takes an address by DHCP, serves a page on port 80 and reports every disk it sees, so
that one boot shows a server, its network and a volume attached to it.

Why the cpio writer is written here: an initramfs is a "newc" cpio archive, a 110-byte
text header per file, and byte-identical output needs every header field chosen (inode
numbers, times, owners), which is easiest with the format in hand. On PyPI (checked with
``pip index versions`` and ``pip download``): ``cpiofile`` 0.003 (2011) does not even
install (its setup script downloads ``distribute`` over http); ``libarchive-c`` (5.3,
2025) is kept and writes ``cpio_newc``, but through ctypes into the C library libarchive
(a new system dependency, no type information for strict mypy) and assigns inode
numbers itself. Forty lines of :func:`newc` are less to trust.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SalineError

# -- what the guest prints (the smoke test reads these) ----------------------------------

#: Every line the guest's own tooling prints starts with this.
PREFIX = "saline-guest:"
#: Printed once the modules are loaded: the kernel and /init run.
BOOTED = f"{PREFIX} booted"
#: ``saline-guest: address A.B.C.D/NN``, printed when DHCP gave eth0 an address.
ADDRESS = f"{PREFIX} address"
#: The metadata service answered (``http://169.254.169.254/openstack``), or did not.
METADATA_OK = f"{PREFIX} metadata ok"
METADATA_UNAVAILABLE = f"{PREFIX} metadata unavailable"
#: ``saline-guest: disk vdX BYTES``, once per disk: vda at boot, then each one attached.
DISK = f"{PREFIX} disk"
#: What the page on port 80 holds (with the guest's hostname).
PAGE_MARK = "saline-guest"
HTTP_PORT = 80

#: The lines above as patterns (groups: the address and prefix length; a disk's name
#: and size in bytes).
ADDRESS_LINE = re.compile(re.escape(ADDRESS) + r" (\d+\.\d+\.\d+\.\d+)/(\d+)")
DISK_LINE = re.compile(re.escape(DISK) + r" (vd[a-z]+) (\d+)")

# -- the recipe ----------------------------------------------------------------------------

#: The Debian packages: the kernel's metapackage (resolved to the real
#: ``linux-image-6.1.*-amd64`` package) and a static busybox (nothing else in the guest).
KERNEL_METAPACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
#: The real kernel package's name, ``linux-image-RELEASE``, ``RELEASE`` a version ending
#: ``-amd64`` (``6.1.0-57-amd64`` on Debian 12, ``6.12.38+deb13-amd64`` on 13); not the
#: ``-dbg`` or ``-unsigned`` packages.
KERNEL_PACKAGE = re.compile(r"^linux-image-(\d+\.\d+[\w.+~-]*-amd64)$")
#: The modules the guest loads, with their dependencies: the PCI transport of virtio
#: (nova's disks and network cards under libvirt) and its network and block drivers.
WANTED_MODULES = ("virtio_pci", "virtio_net", "virtio_blk")
#: The kernel's command line: the console on the first serial port (nova's console log
#: and the test's ``-nographic``); ``quiet`` keeps the kernel's messages off it, which
#: matters under TCG, where every serial character is slow.
KERNEL_COMMAND_LINE = "console=ttyS0 quiet"
#: The root disk nova boots the machine image from: the guest never reads it.
DISK_SIZE = 1024 * 1024
DISK_SIGNATURE = b"saline-guest root disk: the guest runs from its initramfs; nothing reads this"
#: Changes when the layout of the build's output changes (part of the cache key).
LAYOUT_VERSION = "2"

#: Where things live in the initramfs.
MODULES_DIR = "lib/modules"
UDHCPC_SCRIPT = "etc/udhcpc/default.script"
WWW_DIR = "www"


class GuestError(SalineError):
    """The guest cannot be built: a package, module or file it needs is missing or wrong."""


# -- kernel modules ----------------------------------------------------------------------


def module_name(path: str) -> str:
    """A module's name from its file (``kernel/drivers/virtio/virtio-rng.ko.xz`` ->
    ``virtio_rng``): the kernel treats ``-`` and ``_`` alike. Pure."""
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, ...]]:
    """``modules.dep``: each module's file -> the files of the modules it needs. Pure."""
    out: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        path, sep, deps = line.partition(":")
        if not sep:
            raise GuestError(f"modules.dep line {number} is not 'module: dependencies': {line}")
        out[path.strip()] = tuple(deps.split())
    return out


def load_order(modules_dep: str, wanted: Iterable[str], builtin: Iterable[str] = ()) -> list[str]:
    """The files of the modules ``wanted`` and of everything they need, in an order
    ``insmod`` can load them: every module after the modules it needs (``virtio_ring``
    before ``virtio``, ``failover`` before ``net_failover`` before ``virtio_net``).
    A wanted module built into the kernel (its name in ``builtin``, from
    ``modules.builtin``) needs nothing loaded. Pure.

    A module's dependencies are visited in the reverse of ``modules.dep``'s order, the
    order ``modprobe`` loads them in, so the result is the one modprobe would give.
    """
    deps = parse_modules_dep(modules_dep)
    by_name = {module_name(p): p for p in deps}
    built = {module_name(b) for b in builtin}
    order: list[str] = []
    done: set[str] = set()

    def visit(path: str, chain: tuple[str, ...]) -> None:
        if path in done:
            return
        if path in chain:
            loop = " -> ".join(module_name(p) for p in (*chain, path))
            raise GuestError(f"modules.dep has a dependency loop: {loop}")
        if path not in deps:
            raise GuestError(f"modules.dep names {path} as a dependency but has no entry for it")
        for dep in reversed(deps[path]):
            visit(dep, (*chain, path))
        done.add(path)
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in built:
            continue
        if key not in by_name:
            raise GuestError(f"the kernel has no module {name} (not in modules.dep nor built in)")
        visit(by_name[key], ())
    return order


def module_file(path: str, data: bytes) -> tuple[str, bytes]:
    """A module as ``insmod`` loads it: the file's path without a compression suffix,
    and its bytes decompressed (``.ko.xz``, ``.ko.gz``; Debian 12's kernel ships plain
    ``.ko``). Pure."""
    if path.endswith(".ko"):
        return path, data
    if path.endswith(".ko.xz"):
        return path[:-3], lzma.decompress(data)
    if path.endswith(".ko.gz"):
        return path[:-3], gzip.decompress(data)
    raise GuestError(
        f"module {path}: saline reads .ko, .ko.xz and .ko.gz modules, not this compression"
    )


# -- the newc cpio archive -----------------------------------------------------------------

#: Every entry's modification time: fixed, so that the archive depends on contents only.
MTIME = 0
_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One file of an archive: ``path`` relative to its root (no leading ``/``), the full
    ``mode`` (type and permissions: ``stat.S_IFREG | 0o755``), the contents of a regular
    file or the target of a symbolic link, and a device's (major, minor)."""

    path: str
    mode: int
    data: bytes = b""
    device: tuple[int, int] = (0, 0)


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def regular(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | perm, device=(major, minor))


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(
    ino: int, mode: int, nlink: int, size: int, device: tuple[int, int], name: str
) -> bytes:
    raw = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, MTIME, size, 0, 0, device[0], device[1], len(raw), 0)
    head = _MAGIC + b"".join(b"%08X" % f for f in fields)
    return head + raw + _pad4(len(head) + len(raw))


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """``entries`` and a directory (0755) for each parent folder none of them is. Pure."""
    out = list(entries)
    paths = {e.path for e in out}
    for e in list(out):
        parts = e.path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in paths:
                paths.add(parent)
                out.append(directory(parent))
    return out


def newc(entries: Iterable[Entry]) -> bytes:
    """A cpio archive in the "newc" format (``cpio -H newc``), the format the kernel
    unpacks an initramfs from. Entries are sorted by path (a folder before its contents),
    numbered from 1 (inode numbers are only told apart, for hard links: there are none),
    owned by root, dated :data:`MTIME`: the same entries give the same bytes. Pure."""
    items = sorted(entries, key=lambda e: e.path.split("/"))
    seen: set[str] = set()
    out = bytearray()
    for ino, e in enumerate(items, 1):
        if not e.path or e.path.startswith("/") or e.path in seen:
            raise GuestError(f"archive entry {e.path!r}: empty, absolute or given twice")
        seen.add(e.path)
        kind = stat.S_IFMT(e.mode)
        data = e.data if kind in (stat.S_IFREG, stat.S_IFLNK) else b""
        nlink = 2 if kind == stat.S_IFDIR else 1
        out += _header(ino, e.mode, nlink, len(data), e.device, e.path)
        out += data + _pad4(len(data))
    out += _header(0, 0, 1, 0, (0, 0), _TRAILER)
    # Pad the whole archive to 512 bytes, as cpio(1) does.
    out += b"\0" * (-len(out) % 512)
    return bytes(out)


def gzipped(data: bytes) -> bytes:
    """``data`` gzip-compressed with no time or file name in the header. Pure."""
    return gzip.compress(data, compresslevel=9, mtime=0)


# -- the scripts ---------------------------------------------------------------------------

_INIT = """#!/bin/sh
# saline's guest (saline.guest): the initramfs's /init, pid 1. It never leaves the
# initramfs: it loads the virtio modules, takes an address by DHCP, asks the metadata
# service, serves a page and reports every disk, printing each step on the console.
# Busybox only.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH
/bin/busybox --install -s
say() { echo "@PREFIX@ $*"; }

say "init: mounting proc, sysfs, devtmpfs"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say "init: kernel $(uname -r)"
for m in @MODULES@; do
    say "init: insmod $m"
    insmod "/@MODULES_DIR@/$m.ko" || say "init: insmod $m failed"
done
echo "@BOOTED@"

hostname saline-guest
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
    say "network: dhcp on eth0"
    ip link set eth0 up
    # In the foreground until a lease (or 10 tries), then in the background: it renews.
    udhcpc -i eth0 -s /@UDHCPC_SCRIPT@ -t 10 -T 2 -A 5 -b
else
    say "network: no eth0"
fi

# The metadata service: reported, never waited for. The time limit is timeout's: this
# busybox's wget crashes (SIGSEGV) when given -T, measured with 1.35.0-4+deb12u1+b1.
(
    if timeout 10 wget -q -O /tmp/metadata http://169.254.169.254/openstack; then
        echo "@METADATA_OK@"
    else
        echo "@METADATA_UNAVAILABLE@"
    fi
) &

mkdir -p /@WWW_DIR@
echo "<html><body><h1>@PAGE_MARK@</h1><p>hostname $(hostname)</p></body></html>" \\
    > /@WWW_DIR@/index.html
httpd -p @HTTP_PORT@ -h /@WWW_DIR@ && say "httpd: serving on port @HTTP_PORT@"

# Every disk once: vda at boot, then each one attached while the guest runs.
say "init: watching /sys/block for disks"
seen=" "
while true; do
    for d in /sys/block/vd*; do
        [ -e "$d" ] || continue
        n=${d##*/}
        case "$seen" in *" $n "*) continue ;; esac
        seen="$seen$n "
        sectors=$(cat "$d/size")
        echo "@DISK@ $n $((sectors * 512))"
    done
    sleep 1
done
"""

_UDHCPC = """#!/bin/sh
# udhcpc's script (saline's guest): $1 is deconfig, bound, renew, leasefail or nak; udhcpc
# sets interface, ip, mask (prefix length), router, dns, domain and hostname.
say() { echo "@PREFIX@ $*" > /dev/console; }
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    if [ "$1" = renew ] && ip addr show dev "$interface" | grep -q " $ip/$mask "; then
        exit 0
    fi
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do
        ip route replace default via "$r" dev "$interface"
        break
    done
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    [ -n "$hostname" ] && hostname "$hostname"
    echo "@ADDRESS@ $ip/$mask" > /dev/console
    ;;
leasefail|nak)
    say "network: dhcp $1 on $interface"
    ;;
esac
exit 0
"""


def _fill(template: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", template)
    if left:
        raise GuestError(f"script template: no value for {', '.join(sorted(set(left)))}")
    return template


def _values(modules: Iterable[str] = ()) -> dict[str, str]:
    return {
        "PREFIX": PREFIX,
        "BOOTED": BOOTED,
        "ADDRESS": ADDRESS,
        "METADATA_OK": METADATA_OK,
        "METADATA_UNAVAILABLE": METADATA_UNAVAILABLE,
        "DISK": DISK,
        "PAGE_MARK": PAGE_MARK,
        "HTTP_PORT": str(HTTP_PORT),
        "MODULES_DIR": MODULES_DIR,
        "UDHCPC_SCRIPT": UDHCPC_SCRIPT,
        "WWW_DIR": WWW_DIR,
        "MODULES": " ".join(modules),
    }


def init_script(modules: Iterable[str]) -> str:
    """``/init``: loads ``modules`` (names, in order; files ``/lib/modules/NAME.ko``).
    Pure."""
    return _fill(_INIT, _values(modules))


def udhcpc_script() -> str:
    """busybox udhcpc's script: address, default route, resolv.conf, the address line.
    Pure."""
    return _fill(_UDHCPC, _values())


# -- the initramfs, the disk, the description ----------------------------------------------


def initramfs_entries(busybox: bytes, modules: Iterable[tuple[str, bytes]]) -> list[Entry]:
    """Every file of the initramfs: busybox (``/bin/busybox``; ``/init`` links the rest
    at boot), the modules (name, bytes of the ``.ko``; in load order), ``/init``, udhcpc's
    script, the folders mounted on, and ``/dev/console``, which the kernel opens for
    ``/init`` before anything mounts ``/dev``. Pure."""
    mods = list(modules)
    entries = [
        regular("bin/busybox", busybox, 0o755),
        symlink("bin/sh", "busybox"),
        regular("init", init_script(name for name, _ in mods).encode(), 0o755),
        regular(UDHCPC_SCRIPT, udhcpc_script().encode(), 0o755),
        char_device("dev/console", 5, 1),
        *(directory(d) for d in ("proc", "sys", "sbin", "usr/bin", "usr/sbin", WWW_DIR)),
        directory("tmp", 0o1777),
        *(regular(f"{MODULES_DIR}/{name}.ko", data) for name, data in mods),
    ]
    return with_parents(entries)


def initramfs(busybox: bytes, modules: Iterable[tuple[str, bytes]]) -> bytes:
    """The initramfs image: :func:`initramfs_entries` as a gzip-compressed newc archive.
    Pure: the same busybox and modules give the same bytes."""
    return gzipped(newc(initramfs_entries(busybox, modules)))


def root_disk(size: int = DISK_SIZE) -> bytes:
    """The machine image nova boots (raw): :data:`DISK_SIGNATURE` in its first sector,
    zeros after. No boot signature: nothing boots from it. Pure."""
    first = DISK_SIGNATURE.ljust(512, b"\0")
    return first + b"\0" * (size - len(first))


def recipe_digest() -> str:
    """A digest of everything the build puts in the guest beside the packages: the
    scripts, the modules asked for, the command line, the disk, the output's layout.
    With the packages' versions it names a build in the cache. Pure."""
    h = hashlib.sha256()
    for part in (
        _INIT,
        _UDHCPC,
        repr(sorted(_values().items())),
        repr(WANTED_MODULES),
        KERNEL_COMMAND_LINE,
        str(DISK_SIZE),
        DISK_SIGNATURE.decode(),
        LAYOUT_VERSION,
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def cache_key(packages: Mapping[str, str]) -> str:
    """The name of a build: the packages (name -> version) and :func:`recipe_digest`.
    Pure."""
    h = hashlib.sha256(recipe_digest().encode())
    for name, version in sorted(packages.items()):
        h.update(f"\0{name}={version}".encode())
    return h.hexdigest()[:16]


#: The files of a build, the glance formats each is uploaded with (disk, container): a
#: kernel (``aki``), a ramdisk (``ari``) and a root disk naming both (``kernel_id``,
#: ``ramdisk_id``): nova then boots the kernel directly, with no bootloader, which is what
#: makes a guest this small. The root disk is ``raw``, not ``ami``: nova 26.2.2 (Debian
#: 12's, with the image format checks of OSSA-2024-001) refused an ``ami`` one, "Image
#: content does not match disk_format" (measured); the kernel properties work on any
#: image.
FILES = {
    "kernel": ("vmlinuz", ("aki", "aki")),
    "ramdisk": ("initrd.img", ("ari", "ari")),
    "disk": ("disk.raw", ("raw", "bare")),
}
DESCRIPTION = "guest.json"


def description(
    files: Mapping[str, tuple[int, str]],
    packages: Mapping[str, str],
    kernel_release: str,
    modules: Iterable[str],
) -> dict[str, Any]:
    """``guest.json``: each file (``files``: file name -> size, sha256) with its glance
    formats, the packages (name -> version) the guest is built from, the kernel's
    release, the modules it loads and the command line. The disk's ``id_properties``
    say which glance properties take which image's id (``kernel_id``: the kernel's).
    Pure."""
    images: dict[str, Any] = {}
    for role, (name, (disk_format, container_format)) in FILES.items():
        size, digest = files[name]
        images[role] = {
            "file": name,
            "size": size,
            "sha256": digest,
            "disk_format": disk_format,
            "container_format": container_format,
        }
    images["disk"]["properties"] = {"os_command_line": KERNEL_COMMAND_LINE}
    images["disk"]["id_properties"] = {"kernel_id": "kernel", "ramdisk_id": "ramdisk"}
    return {
        "name": "saline-guest",
        "images": images,
        "kernel_release": kernel_release,
        "kernel_command_line": KERNEL_COMMAND_LINE,
        "modules": list(modules),
        "packages": dict(sorted(packages.items())),
        "markers": {
            "booted": BOOTED,
            "address": ADDRESS,
            "metadata_ok": METADATA_OK,
            "metadata_unavailable": METADATA_UNAVAILABLE,
            "disk": DISK,
            "page": PAGE_MARK,
        },
    }
