"""The one place saline runs podman. Command lines are built as data, run in ``_run``.

podman's defaults fail on this kind of machine (crun refuses the hybrid cgroup layout;
raising rlimits needs CAP_SYS_RESOURCE), so every call gets a containers.conf owned by
saline through ``CONTAINERS_CONF``; /etc is left alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from ..errors import SalineError
from ..state import state_dir

CONTAINERS_CONF = """\
# Written by saline: podman settings that work without systemd-managed cgroups v2.
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""


class PodmanError(SalineError):
    """A podman command failed; carries the command line, exit code and output."""

    def __init__(self, cmd: list[str], code: int, output: str) -> None:
        self.cmd = cmd
        self.code = code
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        super().__init__(f"{' '.join(cmd[:4])} ... failed (exit {code}):\n{tail}")


def _tls(ref: str) -> str:
    """Verify TLS except for a registry on this machine (saline's own serves plain HTTP)."""
    host = ref.split("/", 1)[0]
    local = host.startswith(("127.", "localhost", "[::1]"))
    return "false" if local else "true"


@dataclass(frozen=True)
class Podman:
    """podman with saline's containers.conf."""

    conf: str

    @classmethod
    def default(cls) -> Podman:
        path = os.path.join(state_dir(), "containers.conf")
        current = None
        if os.path.exists(path):
            with open(path) as fh:
                current = fh.read()
        if current != CONTAINERS_CONF:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(CONTAINERS_CONF)
        return cls(path)

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": self.conf}

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["podman", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env())
        if check and proc.returncode != 0:
            raise PodmanError(cmd, proc.returncode, proc.stdout + proc.stderr)
        return proc

    def image_exists(self, ref: str) -> bool:
        return self._run(["image", "exists", ref], check=False).returncode == 0

    def import_rootfs(self, tar: str, ref: str, changes: list[str]) -> None:
        args = ["import"]
        for c in changes:
            args += ["--change", c]
        self._run([*args, tar, ref])

    def run_detached(
        self, name: str, image: str, command: list[str], publish: list[str], volumes: list[str]
    ) -> None:
        args = ["run", "-d", "--name", name]
        for p in publish:
            args += ["-p", p]
        for v in volumes:
            args += ["-v", v]
        self._run([*args, image, *command])

    def build(self, context: str, ref: str, volumes: list[str]) -> subprocess.CompletedProcess[str]:
        """``podman build`` of ``context``/Containerfile; the caller reads the output."""
        args = [
            "build",
            "--layers",
            "-f",
            os.path.join(context, "Containerfile"),
            "-t",
            ref,
            "--build-arg",
            "SALINE_APT_CACHE=1" if volumes else "SALINE_APT_CACHE=0",
        ]
        for v in volumes:
            args += ["-v", v]
        return self._run([*args, context], check=False)

    def pull(self, ref: str) -> None:
        self._run(["pull", f"--tls-verify={_tls(ref)}", ref])

    def push(self, local: str, remote: str) -> None:
        self._run(["push", f"--tls-verify={_tls(remote)}", local, f"docker://{remote}"])

    def remote_exists(self, ref: str) -> bool:
        """Whether a registry has ``ref``, with podman's credentials (``podman login``)."""
        proc = subprocess.run(
            ["skopeo", "inspect", "--raw", f"--tls-verify={_tls(ref)}", f"docker://{ref}"],
            capture_output=True,
            text=True,
            env=self.env(),
        )
        return proc.returncode == 0

    def tag(self, ref: str, new: str) -> None:
        self._run(["tag", ref, new])

    def image_size(self, ref: str) -> int:
        out = self._run(["image", "inspect", "--format", "{{.Size}}", ref]).stdout.strip()
        return int(out or 0)

    def remove(self, name: str) -> None:
        self._run(["rm", "-f", "-t", "0", name], check=False)

    def cli(self, args: list[str]) -> str:
        """Any podman command; its output (for tests and one-off operations)."""
        return self._run(args).stdout

    def exec(self, name: str, command: list[str]) -> str:
        return self._run(["exec", name, *command]).stdout

    def logs(self, name: str, tail: int | None = None) -> str:
        args = ["logs", *(["--tail", str(tail)] if tail is not None else []), name]
        proc = self._run(args, check=False)
        return proc.stdout + proc.stderr

    def containers(self, label: str) -> list[dict[str, Any]]:
        """``podman ps -a`` of the containers carrying ``label`` (``key=value``), as JSON."""
        out = self._run(["ps", "-a", "--filter", f"label={label}", "--format", "json"]).stdout
        found: list[dict[str, Any]] = json.loads(out or "[]")
        return found

    def healthcheck(self, name: str) -> tuple[bool, str]:
        """Run the container's health check now (podman's timers need systemd)."""
        proc = self._run(["healthcheck", "run", name], check=False)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def wait(self, name: str) -> int:
        """Block until the container exits; its exit code."""
        out = self._run(["wait", name]).stdout.strip()
        return int(out.splitlines()[-1]) if out else -1

    def inspect_state(self, name: str) -> dict[str, Any] | None:
        proc = self._run(["inspect", "--type", "container", name], check=False)
        if proc.returncode != 0:
            return None
        state: dict[str, Any] = json.loads(proc.stdout)[0]["State"]
        return state

    def memory(self, names: list[str]) -> dict[str, int]:
        """Current memory use in bytes by container name (``podman stats``)."""
        if not names:
            return {}
        out = self._run(["stats", "--no-stream", "--format", "json", *names]).stdout
        return {s["name"]: _bytes(s["mem_usage"].split("/")[0]) for s in json.loads(out or "[]")}

    def volumes_created(self, names: list[str]) -> dict[str, str]:
        """Creation time of each volume that exists (a recreated volume gets a new one)."""
        out: dict[str, str] = {}
        for name in names:
            proc = self._run(["volume", "inspect", "--format", "{{.CreatedAt}}", name], check=False)
            if proc.returncode == 0:
                out[name] = proc.stdout.strip()
        return out

    def networks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self._run(["network", "ls", "--format", "json"]).stdout or "[]"
        )
        return found

    def remove_volume(self, name: str) -> None:
        self._run(["volume", "rm", "-f", name], check=False)

    def volumes(self, label: str) -> list[str]:
        out = self._run(["volume", "ls", "--filter", f"label={label}", "--format", "json"]).stdout
        return sorted(v["Name"] for v in json.loads(out or "[]"))


def _bytes(text: str) -> int:
    """``podman stats`` sizes ("281.5MB", "1.2GB", "512kB") in bytes."""
    m = re.match(r"\s*([0-9.]+)\s*([kKMGT]?i?B)", text)
    if not m:
        return 0
    scale = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    scale.update({"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4})
    return int(float(m.group(1)) * scale.get(m.group(2), 1))
