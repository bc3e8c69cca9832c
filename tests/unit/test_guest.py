"""saline's guest (saline.guest), its pure part: which modules in which order from a
modules.dep, the newc cpio writer (read back by cpio(1) and by a reader here), the
initramfs's files and determinism, the scripts, the description; and the apt download
the build uses, against a stand-in apt-get. tests/integration/test_guest.py builds the
guest from Debian's packages and boots it."""

from __future__ import annotations

import gzip
import json
import lzma
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from saline.guest import recipe
from saline.guest.recipe import (
    ADDRESS_LINE,
    BOOTED,
    DISK_LINE,
    Entry,
    GuestError,
    char_device,
    directory,
    load_order,
    module_file,
    module_name,
    newc,
    regular,
    symlink,
)
from saline.runtime.apt import AptArchive, AptError, deb_file_name
from tools import require_tools

# A kernel's modules.dep as depmod writes it (Debian 12's, cut down): every module with
# all it needs, nearest first; virtio needs virtio_ring; a module with a dash in its file.
MODULES_DEP = """\
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko \
kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko
"""


def names(paths: list[str]) -> list[str]:
    return [module_name(p) for p in paths]


# -- modules -------------------------------------------------------------------------------


def test_the_wanted_modules_load_after_everything_they_need() -> None:
    order = names(load_order(MODULES_DEP, recipe.WANTED_MODULES))
    assert order == [
        "virtio_ring",
        "virtio",
        "virtio_pci_modern_dev",
        "virtio_pci_legacy_dev",
        "virtio_pci",
        "failover",
        "net_failover",
        "virtio_net",
        "virtio_blk",
    ]
    # Each module after all it needs, whatever order they were asked in.
    deps = recipe.parse_modules_dep(MODULES_DEP)
    for wanted in (("virtio_blk", "virtio_net", "virtio_pci"), ("virtio_net",)):
        paths = load_order(MODULES_DEP, wanted)
        assert len(set(paths)) == len(paths)
        for i, path in enumerate(paths):
            assert set(deps[path]) <= set(paths[:i]), path


def test_module_names_treat_dashes_as_underscores() -> None:
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert names(load_order(MODULES_DEP, ["virtio-rng"])) == ["virtio_ring", "virtio", "virtio_rng"]


def test_a_builtin_module_needs_no_loading() -> None:
    builtin = ["kernel/drivers/block/virtio_blk.ko"]
    assert names(load_order(MODULES_DEP, ["virtio_blk"], builtin)) == []
    assert "virtio_blk" not in names(load_order(MODULES_DEP, recipe.WANTED_MODULES, builtin))


def test_missing_and_looping_modules_are_named() -> None:
    with pytest.raises(GuestError, match="no module virtio_gpu"):
        load_order(MODULES_DEP, ["virtio_gpu"])
    loop = "a.ko: b.ko\nb.ko: a.ko\n"
    with pytest.raises(GuestError, match="loop: a -> b -> a"):
        load_order(loop, ["a"])
    with pytest.raises(GuestError, match=r"names gone\.ko as a dependency but has no entry"):
        load_order("a.ko: gone.ko\n", ["a"])
    with pytest.raises(GuestError, match="line 2"):
        load_order("a.ko:\nnot a line\n", ["a"])


def test_compressed_modules_are_loaded_decompressed() -> None:
    elf = b"\x7fELF module"
    assert module_file("m/a.ko", elf) == ("m/a.ko", elf)
    assert module_file("m/a.ko.xz", lzma.compress(elf)) == ("m/a.ko", elf)
    assert module_file("m/a.ko.gz", gzip.compress(elf)) == ("m/a.ko", elf)
    with pytest.raises(GuestError, match=r"a\.ko\.zst"):
        module_file("m/a.ko.zst", b"")


# -- the cpio writer -----------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One entry of an archive, as read back."""

    name: str
    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    device: tuple[int, int]
    data: bytes


def read_newc(data: bytes) -> list[Read]:
    """The entries of a newc archive, read by the format's definition (not by the writer's
    code)."""
    out: list[Read] = []
    pos = 0
    while True:
        head = data[pos : pos + 110]
        assert head[:6] == b"070701", (pos, head[:6])
        f = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        namesize, size = f[11], f[6]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        assert data[pos + 110 + namesize - 1] == 0
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            assert not data[pos:].strip(b"\0")  # only padding after it
            assert len(data) % 512 == 0
            return out
        out.append(Read(name, f[0], f[1], f[2], f[3], f[4], f[5], (f[9], f[10]), body))


ENTRIES = [
    regular("init", b"#!/bin/sh\necho hi\n", 0o755),
    symlink("bin/sh", "busybox"),
    regular("bin/busybox", b"\x7fELF" + bytes(range(256)) * 3, 0o755),
    char_device("dev/console", 5, 1),
    directory("tmp", 0o1777),
    regular("lib/modules/odd.ko", b"x" * 5),
]


def test_newc_holds_names_modes_and_contents_in_order() -> None:
    entries = read_newc(newc(recipe.with_parents(ENTRIES)))
    by_name = {e.name: e for e in entries}
    assert [e.name for e in entries] == [
        "bin",
        "bin/busybox",
        "bin/sh",
        "dev",
        "dev/console",
        "init",
        "lib",
        "lib/modules",
        "lib/modules/odd.ko",
        "tmp",
    ]
    assert by_name["init"].mode == stat.S_IFREG | 0o755
    assert by_name["init"].data == b"#!/bin/sh\necho hi\n"
    assert by_name["bin/busybox"].data == ENTRIES[2].data
    assert by_name["bin/sh"].mode == stat.S_IFLNK | 0o777
    assert by_name["bin/sh"].data == b"busybox"
    assert by_name["dev/console"].mode == stat.S_IFCHR | 0o600
    assert by_name["dev/console"].device == (5, 1)
    assert by_name["tmp"].mode == stat.S_IFDIR | 0o1777
    assert by_name["lib"].mode == stat.S_IFDIR | 0o755  # a parent made for a file
    assert by_name["lib/modules/odd.ko"].data == b"xxxxx"  # unaligned size, padded
    # Root's, dated 0, numbered apart (no hard links), two links per folder.
    assert {(e.uid, e.gid, e.mtime) for e in entries} == {(0, 0, 0)}
    assert sorted(e.ino for e in entries) == list(range(1, len(entries) + 1))
    assert {e.name for e in entries if e.nlink == 2} == {
        "bin",
        "dev",
        "lib",
        "lib/modules",
        "tmp",
    }


def test_cpio_itself_reads_the_archive(tmp_path: Path) -> None:
    require_tools("cpio")
    archive = newc(recipe.with_parents(ENTRIES))
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True
    ).stdout.decode()
    lines = {
        line.split()[-1] if "->" not in line else line.split()[-3]: line
        for line in listing.splitlines()
    }
    assert lines["dev/console"].startswith("crw-------") and "5,   1" in lines["dev/console"]
    assert lines["bin/sh"].startswith("lrwxrwxrwx") and lines["bin/sh"].endswith("-> busybox")
    assert lines["init"].startswith("-rwxr-xr-x")
    assert lines["tmp"].startswith("drwxrwxrwt")
    # Unpacked (no devices: not every test runs as root), the files are what went in.
    files = [e for e in recipe.with_parents(ENTRIES) if not stat.S_ISCHR(e.mode)]
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames"],
        input=newc(files),
        cwd=tmp_path,
        check=True,
    )
    assert (tmp_path / "init").read_bytes() == ENTRIES[0].data
    assert os.access(tmp_path / "init", os.X_OK)
    assert (tmp_path / "bin" / "busybox").read_bytes() == ENTRIES[2].data
    assert os.readlink(tmp_path / "bin" / "sh") == "busybox"


def test_newc_refuses_what_an_archive_cannot_hold() -> None:
    for bad in ([regular("/abs", b"")], [regular("a", b""), regular("a", b"x")], [Entry("", 0)]):
        with pytest.raises(GuestError, match="archive entry"):
            newc(bad)


# -- the initramfs -------------------------------------------------------------------------

BUSYBOX = b"\x7fELF busybox"
MODULES = [("virtio_ring", b"\x7fELF ring"), ("virtio", b"\x7fELF virtio")]


def test_the_initramfs_holds_busybox_the_modules_init_and_a_console() -> None:
    image = recipe.initramfs(BUSYBOX, MODULES)
    entries = {e.name: e for e in read_newc(gzip.decompress(image))}
    assert entries["bin/busybox"].data == BUSYBOX
    assert entries["bin/busybox"].mode == stat.S_IFREG | 0o755
    assert entries["lib/modules/virtio_ring.ko"].data == b"\x7fELF ring"
    assert entries["dev/console"].device == (5, 1)
    init = entries["init"].data
    assert init.startswith(b"#!/bin/sh\n")
    assert entries["init"].mode == stat.S_IFREG | 0o755
    assert b"for m in virtio_ring virtio; do" in init
    assert entries[recipe.UDHCPC_SCRIPT].mode == stat.S_IFREG | 0o755
    for folder in ("proc", "sys", "tmp", "www", "etc/udhcpc"):
        assert stat.S_ISDIR(entries[folder].mode)


def test_the_same_packages_give_the_same_initramfs() -> None:
    first = recipe.initramfs(BUSYBOX, MODULES)
    assert recipe.initramfs(BUSYBOX, list(MODULES)) == first
    assert first[:2] == b"\x1f\x8b" and first[4:8] == b"\0\0\0\0"  # gzip, mtime 0
    # The order entries are given in does not matter, only what they are.
    entries = recipe.initramfs_entries(BUSYBOX, MODULES)
    assert newc(reversed(entries)) == newc(entries)
    assert recipe.initramfs(BUSYBOX + b"!", MODULES) != first


def test_the_scripts_say_each_marker_and_parse(tmp_path: Path) -> None:
    init = recipe.init_script(["virtio_ring", "virtio"])
    script = recipe.udhcpc_script()
    assert f'echo "{BOOTED}"' in init
    assert recipe.METADATA_OK in init and recipe.METADATA_UNAVAILABLE in init
    assert f'echo "{recipe.DISK} $n $((sectors * 512))"' in init
    assert "http://169.254.169.254/openstack" in init
    assert f"httpd -p {recipe.HTTP_PORT} -h /www" in init
    assert f'echo "{recipe.ADDRESS} $ip/$mask"' in script
    assert "@" not in init.replace("$*", "") and "@" not in script.replace("$*", "")
    # The guest's shell is busybox's: check the syntax with it where it is installed
    # (scripts/install installs busybox-static), else with the system's sh.
    shell = ["busybox", "sh"] if shutil.which("busybox") else ["sh"]
    for name, text in (("init", init), ("default.script", script)):
        path = tmp_path / name
        path.write_text(text)
        subprocess.run([*shell, "-n", str(path)], check=True)


def test_the_marker_patterns_read_what_the_scripts_print() -> None:
    found = ADDRESS_LINE.match(f"{recipe.ADDRESS} 10.0.2.15/24")
    assert found is not None and found.groups() == ("10.0.2.15", "24")
    disk = DISK_LINE.match(f"{recipe.DISK} vdb 3145728")
    assert disk is not None and disk.groups() == ("vdb", "3145728")


def test_the_root_disk_is_small_and_says_what_it_is() -> None:
    disk = recipe.root_disk()
    assert len(disk) == recipe.DISK_SIZE
    assert disk.startswith(recipe.DISK_SIGNATURE)
    assert disk[510:512] != b"\x55\xaa"  # no boot signature: nothing boots from it
    assert not disk[512:].strip(b"\0")


def test_the_description_gives_glance_formats_and_packages() -> None:
    files = {name: (i + 1, f"{i}" * 64) for i, (name, _) in enumerate(recipe.FILES.values())}
    packages = {"linux-image-6.1.0-57-amd64": "6.1.192-3", "busybox-static": "1:1.35.0-4"}
    desc = recipe.description(files, packages, "6.1.0-57-amd64", ["virtio_ring"])
    images = desc["images"]
    assert {r: (i["file"], i["disk_format"], i["container_format"]) for r, i in images.items()} == {
        "kernel": ("vmlinuz", "aki", "aki"),
        "ramdisk": ("initrd.img", "ari", "ari"),
        "disk": ("disk.raw", "raw", "bare"),
    }
    assert images["disk"]["properties"] == {"os_command_line": recipe.KERNEL_COMMAND_LINE}
    assert images["disk"]["id_properties"] == {"kernel_id": "kernel", "ramdisk_id": "ramdisk"}
    assert images["ramdisk"]["size"] == 2 and images["ramdisk"]["sha256"] == "1" * 64
    assert desc["packages"] == dict(sorted(packages.items()))
    assert desc["markers"]["booted"] == BOOTED


def test_a_build_is_named_by_its_packages() -> None:
    a = {"linux-image-6.1.0-57-amd64": "6.1.192-3", "busybox-static": "1:1.35.0-4"}
    assert recipe.cache_key(a) == recipe.cache_key(dict(reversed(a.items())))
    assert recipe.cache_key(a) != recipe.cache_key({**a, "busybox-static": "1:1.35.0-5"})
    assert recipe.KERNEL_PACKAGE.match("linux-image-6.1.0-57-amd64")
    assert recipe.KERNEL_PACKAGE.match("linux-image-6.12.38+deb13-amd64")
    for other in (
        "linux-image-amd64",
        "linux-image-6.1.0-57-amd64-dbg",
        "linux-image-6.1.0-57-amd64-unsigned",
    ):
        assert not recipe.KERNEL_PACKAGE.match(other), other


# -- apt download --------------------------------------------------------------------------

FAKE_APT_GET = """#!/bin/sh
# A stand-in apt-get: "download NAME=VERSION..." writes each file as apt names it.
echo "$@" >> "$LOG"
for arg in "$@"; do
    case "$arg" in
    *=*) name=${arg%%=*}; version=$(echo "${arg#*=}" | sed 's/:/%3a/');
         [ "$name" = missing ] && { echo "E: Can't find a source to download $arg" >&2; exit 100; }
         echo deb > "${name}_${version}_amd64.deb" ;;
    esac
done
"""


def test_download_fetches_exact_versions_into_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(FAKE_APT_GET)
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LOG", str(tmp_path / "log"))
    archive = AptArchive(str(tmp_path / "apt"), ["deb http://mirror.invalid/debian bookworm main"])
    dest = tmp_path / "debs"
    paths = archive.download(
        ["busybox-static=1:1.35.0-4", "linux-image-6.1.0-57-amd64=6.1.192-3"], str(dest)
    )
    assert paths == [
        str(dest / deb_file_name("busybox-static", "1:1.35.0-4", "amd64")),
        str(dest / "linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb"),
    ]
    assert os.path.basename(paths[0]) == "busybox-static_1%3a1.35.0-4_amd64.deb"
    assert "download busybox-static=1:1.35.0-4" in (tmp_path / "log").read_text()
    with pytest.raises(AptError, match=r"could not download missing=1\.0") as e:
        archive.download(["missing=1.0"], str(dest))
    assert "Can't find a source" in str(e.value)


# -- the command ---------------------------------------------------------------------------


def test_guest_build_prints_the_folder_and_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import saline.guest
    from saline.cli import main
    from saline.guest import Guest

    files = {name: (1000, "0" * 64) for name, _ in recipe.FILES.values()}
    desc = recipe.description(files, {"busybox-static": "1:1.35"}, "6.1.0-57-amd64", ["virtio"])
    asked: dict[str, object] = {}

    def fake(settings: object, **kwargs: object) -> Guest:
        asked.update(kwargs)
        folder = str(kwargs["out"])
        paths = {role: os.path.join(folder, name) for role, (name, _) in recipe.FILES.items()}
        return Guest(folder, paths, desc, cached=True)

    monkeypatch.setattr(saline.guest, "guest_for", fake)
    assert main(["guest", "build", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"guest {tmp_path} (from the cache)\n")
    assert "initrd.img" in text and "ari/ari" in text and "virtio" in text
    assert asked["refresh"] is False
    assert main(["guest", "build", "--out", str(tmp_path), "--refresh", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["folder"] == str(tmp_path) and data["cached"] is True
    assert data["files"]["description"] == os.path.join(str(tmp_path), "guest.json")
    assert data["guest"] == desc
    assert asked["refresh"] is True
