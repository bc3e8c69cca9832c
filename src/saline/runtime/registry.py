"""A private image registry: Debian's ``docker-registry`` (distribution 2.8), run by saline.

``saline registry start`` runs it in the background on 127.0.0.1:5000 (by default) with
its data in a folder the caller chooses (saline's state folder); ``stop`` and ``status``
find it through a pid file, and act on that pid only when it really is this registry
(``docker-registry serve FOLDER/config.yml``): a stale pid file never kills another
process. Any other registry can be used instead by naming it (``--registry``).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import SalineError
from .process import spawn

DEFAULT_ADDRESS = "127.0.0.1:5000"
PROGRAM = "docker-registry"


class RegistryError(SalineError):
    """A registry cannot be used: it does not answer, refuses saline's credentials, its
    TLS certificate is not trusted, or saline's own cannot start. Names the registry and
    the cause."""


def registry_config(address: str, root: str) -> str:
    """docker-registry's configuration. Pure."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {root}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: {address}\n"
    )


def catalog(address: str, timeout: float = 2.0) -> list[str] | None:
    """Repositories in the registry at ``address``; None if nothing answers there."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/_catalog?n=1000", timeout=timeout) as r:
            data: dict[str, Any] = json.load(r)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return list(data.get("repositories", []))


def is_registry_command(cmdline: list[str], config: str) -> bool:
    """Whether a process's command line is ``docker-registry serve CONFIG``. Pure."""
    return (
        len(cmdline) == 3
        and os.path.basename(cmdline[0]) == PROGRAM
        and cmdline[1:] == ["serve", config]
    )


def _cmdline(pid: int) -> list[str] | None:
    """A live process's command line (Linux /proc); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    if not raw:  # a zombie, or a kernel thread
        return None
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]


@dataclass(frozen=True)
class LocalRegistry:
    """saline's own registry at ``address``, its state (config, pid file, log, data) in
    ``folder``."""

    address: str
    folder: str

    @property
    def pid_file(self) -> str:
        return os.path.join(self.folder, "registry.pid")

    @property
    def log_file(self) -> str:
        return os.path.join(self.folder, "registry.log")

    @property
    def config_file(self) -> str:
        return os.path.join(os.path.abspath(self.folder), "config.yml")

    def _recorded_pid(self) -> int | None:
        try:
            with open(self.pid_file) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        cmdline = _cmdline(pid)
        return cmdline is not None and is_registry_command(cmdline, self.config_file)

    def _pid(self) -> int | None:
        """The pid of this registry's process, if the pid file names one that runs and
        really is this registry."""
        pid = self._recorded_pid()
        return pid if pid is not None and self._is_ours(pid) else None

    def status(self) -> dict[str, Any]:
        pid = self._pid()
        repos = catalog(self.address)
        return {
            "address": self.address,
            "running": pid is not None and repos is not None,
            "pid": pid,
            "data": os.path.join(self.folder, "data"),
            "repositories": repos or [],
        }

    def start(self, timeout: float = 20.0) -> dict[str, Any]:
        """Start it unless it runs already (idempotent)."""
        if self._pid() is not None and catalog(self.address) is not None:
            return self.status()
        if catalog(self.address) is not None:
            raise RegistryError(
                f"something else already answers on {self.address}; stop it or choose "
                f"another address with --address"
            )
        data = os.path.join(os.path.abspath(self.folder), "data")
        os.makedirs(data, exist_ok=True)
        with open(self.config_file, "w") as fh:
            fh.write(registry_config(self.address, data))
        daemon = spawn([PROGRAM, "serve", self.config_file], log_path=self.log_file)
        with open(self.pid_file, "w") as fh:
            fh.write(str(daemon.pid))
        deadline = time.monotonic() + timeout
        while catalog(self.address, timeout=0.5) is None:
            if daemon.exited() is not None or time.monotonic() > deadline:
                self.stop(check_address=False)
                with open(self.log_file, errors="replace") as fh:
                    tail = "".join(fh.readlines()[-10:])
                raise RegistryError(f"docker-registry did not start on {self.address}:\n{tail}")
            time.sleep(0.2)
        return self.status()

    def stop(self, check_address: bool = True) -> None:
        """Stop it if it runs; remove its pid file.

        Only a process that really is this registry is signalled: a pid file naming
        another process (the registry died, its pid was reused) is removed as stale. With
        ``check_address``, raises :class:`RegistryError` if something else still answers
        on the address afterwards (saline did not start it, so it leaves it alone).
        """
        recorded = self._recorded_pid()
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not self._is_ours(pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        if os.path.exists(self.pid_file):
            os.remove(self.pid_file)
        if check_address and catalog(self.address) is not None:
            stale = (
                f" (its pid file named process {recorded}, which is not this registry: "
                "removed it as stale)"
                if recorded is not None and pid is None
                else ""
            )
            raise RegistryError(
                f"something else answers on {self.address}, not the registry saline "
                f"started from {self.folder}{stale}: left it running"
            )
