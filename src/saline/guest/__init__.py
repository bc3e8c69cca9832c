"""A tiny bootable guest for nova, built by saline from Debian packages: a Debian kernel
booted directly with a busybox initramfs that reports, on its console, that it booted,
the address DHCP gave it, the metadata service, and every disk attached to it
(docs/guest.md).

:mod:`.recipe` says what goes in (pure); :mod:`.build` fetches the packages and writes
the files.
"""

from __future__ import annotations

from .build import Guest, build_guest, guest_for
from .recipe import (
    ADDRESS,
    ADDRESS_LINE,
    BOOTED,
    DISK,
    DISK_LINE,
    HTTP_PORT,
    KERNEL_COMMAND_LINE,
    METADATA_OK,
    METADATA_UNAVAILABLE,
    PAGE_MARK,
    PREFIX,
    GuestError,
)

__all__ = [
    "ADDRESS",
    "ADDRESS_LINE",
    "BOOTED",
    "DISK",
    "DISK_LINE",
    "HTTP_PORT",
    "KERNEL_COMMAND_LINE",
    "METADATA_OK",
    "METADATA_UNAVAILABLE",
    "PAGE_MARK",
    "PREFIX",
    "Guest",
    "GuestError",
    "build_guest",
    "guest_for",
]
