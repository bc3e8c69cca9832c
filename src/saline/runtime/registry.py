"""A private image registry: Debian's ``docker-registry`` (distribution 2.8), run by saline.

``saline registry start`` runs it in the background on 127.0.0.1:5000 (by default) with
its data under saline's state folder; ``stop`` and ``status`` find it through a pid file.
Any other registry can be used instead by naming it (``--registry``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..errors import SalineError
from ..state import state_dir

DEFAULT_ADDRESS = "127.0.0.1:5000"


class RegistryError(SalineError):
    pass


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


@dataclass(frozen=True)
class LocalRegistry:
    address: str
    folder: str  # state: config, pid file, log, data

    @classmethod
    def default(cls, address: str = DEFAULT_ADDRESS) -> LocalRegistry:
        return cls(address, os.path.join(state_dir(), "registry"))

    @property
    def pid_file(self) -> str:
        return os.path.join(self.folder, "registry.pid")

    @property
    def log_file(self) -> str:
        return os.path.join(self.folder, "registry.log")

    def _pid(self) -> int | None:
        try:
            with open(self.pid_file) as fh:
                pid = int(fh.read().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

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
        data = os.path.join(self.folder, "data")
        os.makedirs(data, exist_ok=True)
        config = os.path.join(self.folder, "config.yml")
        with open(config, "w") as fh:
            fh.write(registry_config(self.address, data))
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                ["docker-registry", "serve", config],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives this command
            )
        with open(self.pid_file, "w") as fh:
            fh.write(str(proc.pid))
        deadline = time.monotonic() + timeout
        while catalog(self.address, timeout=0.5) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(self.log_file, errors="replace") as fh:
                    tail = "".join(fh.readlines()[-10:])
                raise RegistryError(f"docker-registry did not start on {self.address}:\n{tail}")
            time.sleep(0.2)
        return self.status()

    def stop(self) -> None:
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
        if os.path.exists(self.pid_file):
            os.remove(self.pid_file)
