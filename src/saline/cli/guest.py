"""``saline guest build``: the small guest nova boots in the smoke test (docs/guest.md)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import Context, add_format, command


def cmd_guest_build(args: argparse.Namespace, ctx: Context) -> int:
    from ..guest import guest_for

    guest = guest_for(
        ctx.settings,
        out=os.path.abspath(args.out) if args.out else None,
        refresh=args.refresh,
        progress=ctx.progress(args.format),
    )
    desc = guest.description
    if args.format == "json":
        ctx.emit(
            {
                "folder": guest.folder,
                "cached": guest.cached,
                "files": {**guest.files, "description": guest.description_file},
                "guest": desc,
            },
            "json",
        )
        return 0
    state = "from the cache" if guest.cached else "built"
    print(f"guest {guest.folder} ({state})", file=ctx.out)
    images = desc["images"]
    for role in ("kernel", "ramdisk", "disk"):
        image = images[role]
        print(
            f"  {image['file']:<11} {image['size'] / 1e6:5.1f} MB  "
            f"{image['disk_format']}/{image['container_format']}",
            file=ctx.out,
        )
    print(f"  kernel {desc['kernel_release']}: {desc['kernel_command_line']}", file=ctx.out)
    print(f"  modules: {' '.join(desc['modules'])}", file=ctx.out)
    packages = ", ".join(f"{n} {v}" for n, v in desc["packages"].items())
    print(f"  packages: {packages}", file=ctx.out)
    return 0


def register(sub: Any) -> None:
    guest = sub.add_parser(
        "guest",
        help="the small guest the smoke test boots in nova",
        description="A tiny bootable guest built from Debian packages (docs/guest.md).",
    )
    gsub = guest.add_subparsers(dest="guest_command", metavar="SUBCOMMAND")
    gsub.required = True
    p = command(
        gsub,
        "build",
        "build the guest (kernel, initramfs, disk, guest.json)",
        "Build the guest from Debian 12's linux-image-amd64 and busybox-static (saline's "
        "own apt: nothing is downloaded from anywhere else): vmlinuz, initrd.img, disk.raw "
        "and guest.json (their glance formats, sizes, sha256 and the packages). Builds are "
        "kept in saline's state folder by package versions: a second build is a copy. "
        "Progress goes to stderr.",
        cmd_guest_build,
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="copy the files into DIR too (default: print the folder in saline's state "
        "folder that holds them)",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="read the Debian suites' package lists anew: take a newer kernel or busybox "
        "if there is one",
    )
    add_format(p, ("text", "json"), "text")
