"""saline's guest (saline.guest) booted by QEMU on this machine, for the tests and
bench/guest.py: TCG (no KVM: docs/guest.md), direct kernel boot like nova's, the console
in a file, user networking with the guest's port 80 forwarded to 127.0.0.1, and QMP to
hot-attach a disk as libvirt does for a cinder volume.

User networking (slirp) is ``restrict=on``: DHCP and the forwarded port work, and no
packet of the guest's goes past QEMU. A stand-in metadata service can be given: a command
QEMU runs on this machine for each connection to 169.254.169.254:80 (``guestfwd``, its
stdin and stdout the connection); the guest's network is then 169.254.169.0/24, so that
the address is on its link (this user network gives no router under ``restrict=on``).
Without one the guest says ``metadata unavailable``. Every wait is bounded;
:meth:`QemuGuest.stop` ends QEMU by its pid.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from saline.guest import KERNEL_COMMAND_LINE


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class QemuGuest:
    """One boot of the guest whose files are in ``folder`` (``saline guest build``),
    with its scratch files (console, QMP socket, a copy of the disk) in ``work``."""

    def __init__(
        self,
        folder: str,
        work: Path,
        memory_mb: int = 256,
        metadata: list[str] | None = None,
    ) -> None:
        self.folder = folder
        self.work = work
        self.memory_mb = memory_mb
        self.metadata = metadata
        self.console = work / "console.log"
        self.qmp_path = work / "qmp.sock"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self._qmp: socket.socket | None = None
        self._qmp_file: Any = None

    def netdev(self) -> str:
        """QEMU's ``-netdev`` option (a comma in a value is written twice)."""
        net = f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{self.port}-:80"
        if self.metadata is not None:
            command = shlex.join(self.metadata).replace(",", ",,")
            net += (
                ",net=169.254.169.0/24,host=169.254.169.2,dns=169.254.169.3"
                f",dhcpstart=169.254.169.15,guestfwd=tcp:169.254.169.254:80-cmd:{command}"
            )
        return net

    def argv(self) -> list[str]:
        disk = self.work / "disk.raw"
        return [
            "qemu-system-x86_64",
            "-machine",
            "accel=tcg",
            "-m",
            str(self.memory_mb),
            "-nographic",
            "-no-reboot",
            "-kernel",
            os.path.join(self.folder, "vmlinuz"),
            "-initrd",
            os.path.join(self.folder, "initrd.img"),
            "-append",
            KERNEL_COMMAND_LINE,
            "-drive",
            f"file={disk},if=virtio,format=raw",
            "-netdev",
            self.netdev(),
            "-device",
            "virtio-net-pci,netdev=n0",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
            "-serial",
            f"file:{self.console}",
            "-monitor",
            "none",
        ]

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        # A copy: QEMU locks the file it writes, and the cached one is shared.
        (self.work / "disk.raw").write_bytes(Path(self.folder, "disk.raw").read_bytes())
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=open(self.work / "qemu.log", "wb"),  # noqa: SIM115 (QEMU keeps it)
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.work / "qemu.log").read_text(errors="replace")
            raise AssertionError(
                f"qemu exited ({self.proc.returncode}):\n{log}\nconsole:\n{self.text()}"
            )

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first console line matching ``pattern`` (a literal line start, or a
        regular expression), waiting at most ``timeout`` seconds for it."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            for line in self.text().splitlines():
                found = regex.match(line.strip("\r"))
                if found:
                    return found
            self._alive()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the guest did not print {regex.pattern!r} within {timeout:g} s; "
                    f"its console:\n{self.text()}"
                )
            time.sleep(0.05)

    # -- QMP -------------------------------------------------------------------------------

    def qmp(self, command: str, **arguments: Any) -> Any:
        """One QMP command's ``return`` (connecting and negotiating first)."""
        if self._qmp is None:
            deadline = time.monotonic() + 10
            while not self.qmp_path.exists():
                self._alive()
                if time.monotonic() > deadline:
                    raise AssertionError("qemu made no QMP socket within 10 s")
                time.sleep(0.05)
            self._qmp = socket.socket(socket.AF_UNIX)
            self._qmp.settimeout(30)
            self._qmp.connect(str(self.qmp_path))
            self._qmp_file = self._qmp.makefile("rw")
            self._qmp_file.readline()  # the greeting
            self.qmp("qmp_capabilities")
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._qmp_file.write(json.dumps(message) + "\n")
        self._qmp_file.flush()
        while True:
            line = self._qmp_file.readline()
            if not line:
                raise AssertionError(f"QMP closed during {command}")
            reply = json.loads(line)
            if "error" in reply:
                raise AssertionError(f"QMP {command}: {reply['error']}")
            if "return" in reply:
                return reply["return"]
            # An event ({"event": ...}): not the answer.

    def attach_disk(self, image: Path, name: str) -> None:
        """Hot-attach the raw file ``image`` as a virtio disk, as libvirt does."""
        self.qmp(
            "blockdev-add",
            **{
                "node-name": name,
                "driver": "raw",
                "file": {"driver": "file", "filename": str(image)},
            },
        )
        self.qmp("device_add", driver="virtio-blk-pci", drive=name, id=f"{name}-dev")

    # -- the end ---------------------------------------------------------------------------

    def stop(self) -> None:
        """End QEMU (its pid: it leads its own session): SIGTERM, SIGKILL after 10 s."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> QemuGuest:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
