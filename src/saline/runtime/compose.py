"""The one place saline runs podman-compose (PyPI, pinned in pyproject.toml).

podman-compose turns the compose file into podman containers, networks and volumes;
saline calls it one service at a time (``up --no-deps``) so that it, not podman-compose,
decides when each service may start: podman-compose cannot wait for health with podman
< 4.6, and without systemd podman never runs health checks by itself.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from .podman import Podman, PodmanError
from .process import Completed, run

PROJECT_LABEL = "io.podman.compose.project"
# One podman-compose at a time: each call creates the project's missing pod, network and
# volumes without locking, so parallel calls race ("volume already exists").
_COMPOSE_LOCK = threading.Lock()
SERVICE_LABEL = "io.podman.compose.service"
#: A container kept while its replacement is gated (apply), restored if the gate fails.
KEPT_SUFFIX = "-saline-prev"


def _essentials(output: str) -> str:
    """podman-compose reports podman's failures as Python tracebacks: keep podman's own
    error lines and the failing command, drop the stack frames."""
    keep = []
    for line in output.splitlines():
        text = line.strip()
        if text.startswith(("Traceback", "File ", "^", "~")) or line.startswith("    "):
            continue
        keep.append(text)
    return "\n".join(keep) or output


@dataclass(frozen=True)
class Container:
    """A container of the stack, as ``podman ps`` sees it."""

    name: str
    service: str  # the compose service
    state: str  # created | running | exited | ...
    exit_code: int
    image: str
    labels: dict[str, str]
    id: str = ""
    #: When it last started (Unix seconds; 0: unknown or never).
    started_at: int = 0

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ComposeRunner:
    """podman-compose on one compose file and project, with ``podman``'s settings."""

    podman: Podman
    file: str
    project: str

    def _compose(self, args: list[str], timeout: float) -> Completed:
        cmd = [sys.executable, "-m", "podman_compose", "-f", self.file, "-p", self.project, *args]
        with _COMPOSE_LOCK:
            done = run(cmd, timeout=timeout, env=self.podman.env(), check=False)
        if done.returncode != 0:
            output = _essentials(done.output)
            raise PodmanError(done.argv, done.returncode, done.stdout, done.stderr, output=output)
        return done

    def up(self, services: list[str], recreate: bool = False, timeout: float = 600.0) -> None:
        """Create what is missing or changed and start ``services``, and only them."""
        args = ["up", "-d", "--no-deps"]
        if recreate:
            args.append("--force-recreate")
        self._compose([*args, *services], timeout)

    def run_detached(
        self, service: str, name: str, command: list[str], timeout: float = 600.0
    ) -> None:
        """A one-off container ``name`` of ``service``'s definition running ``command``
        (started, not waited for: :meth:`wait` bounds that)."""
        self._compose(["run", "-d", "--no-deps", "--name", name, service, *command], timeout)

    def down(self, volumes: bool, timeout: float = 600.0) -> None:
        self._compose(["down", *(["--volumes"] if volumes else [])], timeout)

    def all_containers(self) -> list[Container]:
        """Every container of the stack, kept ones (``NAME-saline-prev``, see
        lifecycle.stack_runner) included."""
        out = []
        for c in self.podman.containers(f"{PROJECT_LABEL}={self.project}"):
            labels: dict[str, str] = c.get("Labels") or {}
            out.append(
                Container(
                    name=c["Names"][0],
                    service=labels.get(SERVICE_LABEL, ""),
                    state=str(c.get("State", "")),
                    exit_code=int(c.get("ExitCode", 0) or 0),
                    image=str(c.get("Image", "")),
                    labels=labels,
                    id=str(c.get("Id", "")),
                    started_at=int(c.get("StartedAt", 0) or 0),
                )
            )
        return out

    def containers(self) -> dict[str, Container]:
        """The stack's containers by compose service (not the kept previous ones)."""
        return {c.service: c for c in self.all_containers() if not c.name.endswith(KEPT_SUFFIX)}

    def volumes(self) -> list[str]:
        return self.podman.volumes(f"{PROJECT_LABEL}={self.project}")

    def volumes_created(self, names: list[str]) -> dict[str, str]:
        return self.podman.volumes_created(names)

    def healthcheck(self, container: str) -> tuple[bool, str]:
        return self.podman.healthcheck(container)

    def wait(self, container: str, *, timeout: float) -> int:
        """The container's exit code, once it exits (at most ``timeout`` seconds: else
        :class:`.process.CommandTimeout`)."""
        return self.podman.wait(container, timeout=timeout)

    def state(self, container: str) -> dict[str, Any] | None:
        return self.podman.inspect_state(container)

    def logs(self, container: str, tail: int | None = None) -> str:
        return self.podman.logs(container, tail)
