"""haproxy's runtime API: the one module that talks to it.

A rolling change takes one service instance out of every haproxy in front of it, lets its
sessions finish, replaces or reloads it, and puts it back once it serves. haproxy does
that through its admin socket (``stats socket ... level admin`` in the formula's
haproxy.cfg), a unix socket inside haproxy's container. The host reaches it directly,
through the container's root folder as rootful podman mounts it on the host
(:meth:`HAProxy.for_container`: a millisecond a command), or else by running
``saline-entrypoint haproxy COMMAND...`` in that container (``podman exec``: a few
tenths of a second each, and a rollout sends dozens). This module takes a callable that
runs one command and returns haproxy's answer: one of those for real, a fake in unit
tests.

Which haproxy backend and server stand for a service instance comes from the model: the
haproxy node's pillar ``haproxy:proxy:listen`` (listen NAME -> ``servers`` {name: address}
and one ``port``), see :func:`servers_for`.
"""

from __future__ import annotations

import csv
import os
import socket
import stat as stat_
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import SalineError

if TYPE_CHECKING:
    from .podman import Podman

#: Runs a command in haproxy's container and returns its standard output.
Exec = Callable[[Sequence[str]], str]

#: What haproxy's operational state of a server is, from the ``status`` column of
#: ``show stat`` without its transition (``UP 1/3``: up, one failed check of three).
State = Literal["UP", "DOWN", "MAINT", "DRAIN", "NOLB"]

#: The command, in haproxy's container, that sends one command to the admin socket.
CLI = ("saline-entrypoint", "haproxy")
#: How long one ``podman exec`` of it may take.
EXEC_TIMEOUT = 30.0
#: Where the formula's haproxy.cfg puts the admin socket, inside the container.
ADMIN_SOCKET = "/run/haproxy/admin.sock"


class HAProxyError(SalineError):
    """haproxy refused a command, does not know a backend or server, or a wait ran out."""


@dataclass(frozen=True)
class ServerState:
    """One server of a backend, as ``show stat`` shows it."""

    backend: str
    server: str
    #: haproxy's own text: ``UP``, ``UP 1/3``, ``DOWN``, ``DOWN 1/2``, ``DRAIN``,
    #: ``MAINT``, ``MAINT (via b/s)``, ``NOLB``, ``no check``.
    status: str
    #: Current sessions (``scur``): requests the server is working on.
    sessions: int
    #: The last health check's result (``L7OK``, ``L4CON``, ``* L4TOUT``: running now).
    check: str

    @property
    def state(self) -> State:
        word = self.status.split(" ", 1)[0].upper()
        if word == "NO":  # "no check": always considered up
            return "UP"
        if word in ("UP", "DOWN", "MAINT", "DRAIN", "NOLB"):
            return word  # type: ignore[return-value]
        raise HAProxyError(
            f"haproxy: unknown status {self.status!r} of {self.backend}/{self.server}"
        )

    @property
    def transitional(self) -> bool:
        """Whether health checks are moving it (``UP 1/3``, ``DOWN 1/2``)."""
        return "/" in self.status and not self.status.startswith("MAINT")


def parse_stat(text: str) -> list[ServerState]:
    """The servers (not the FRONTEND and BACKEND rows) of ``show stat`` CSV output. Pure."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise HAProxyError(f"haproxy: not `show stat` output: {text.strip()[:200]!r}")
    header = lines[0][2:].split(",")
    out = []
    for row in csv.DictReader(lines[1:], fieldnames=header):
        if not row.get("pxname") or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        out.append(
            ServerState(
                backend=row["pxname"],
                server=row["svname"],
                status=row.get("status") or "",
                sessions=int(row.get("scur") or 0),
                check=row.get("check_status") or "",
            )
        )
    return out


def ask(path: str, words: Sequence[str], timeout: float) -> str:
    """Send one command to the admin socket at ``path`` (non-interactive: haproxy answers
    and closes) and return its answer. The image's ``saline-entrypoint haproxy`` speaks
    the same protocol from inside the container (it cannot import saline)."""
    folder = -1
    try:
        # A socket's path may have at most 107 bytes; one under a container's root
        # folder has more. Through the folder's descriptor it is short.
        folder = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(f"/proc/self/fd/{folder}/{os.path.basename(path)}")
            s.sendall((" ".join(words) + "\n").encode())
            chunks = []
            while data := s.recv(65536):
                chunks.append(data)
    except OSError as e:
        raise HAProxyError(f"haproxy's admin socket {path} does not answer: {e}") from None
    finally:
        if folder >= 0:
            os.close(folder)
    return b"".join(chunks).decode(errors="replace")


def servers_for(listen: Mapping[str, Any], address: str, port: int) -> list[tuple[str, str]]:
    """The (backend, server) pairs of an haproxy node's ``haproxy:proxy:listen`` pillar
    that send requests to ``address:port`` (a service instance), sorted. Pure.

    Each listen section names its servers ``{server: address}`` and one ``port`` for them
    all, as the formula's haproxy.cfg.j2 renders them (``server NAME ADDRESS:PORT``)."""
    found = []
    for name, section in listen.items():
        if not isinstance(section, Mapping) or "port" not in section:
            continue
        try:
            if int(section["port"]) != port:
                continue
        except (TypeError, ValueError):
            continue
        servers = section.get("servers") or {}
        if not isinstance(servers, Mapping):
            continue
        for server, addr in servers.items():
            if str(addr) == address:
                found.append((str(name), str(server)))
    return sorted(found)


class HAProxy:
    """One haproxy, through its admin socket. ``exec_`` runs a command in its container."""

    def __init__(
        self,
        exec_: Exec,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        interval: float = 0.5,
    ) -> None:
        self._exec = exec_
        self._clock = clock
        self._sleep = sleep
        self.interval = interval

    @classmethod
    def in_container(cls, podman: Podman, container: str) -> HAProxy:
        """The haproxy running in ``container`` (``podman exec``)."""

        def exec_(argv: Sequence[str]) -> str:
            return podman.exec(container, list(argv), timeout=EXEC_TIMEOUT)

        return cls(exec_)

    @classmethod
    def at_socket(cls, path: str, timeout: float = EXEC_TIMEOUT) -> HAProxy:
        """The haproxy whose admin socket is ``path`` on this host."""

        def exec_(argv: Sequence[str]) -> str:
            return ask(path, list(argv[len(CLI) :]), timeout)

        return cls(exec_)

    @classmethod
    def for_container(cls, podman: Podman, container: str) -> HAProxy:
        """The haproxy running in ``container``: its socket straight from the host when
        podman shows the container's root folder, else through ``podman exec``."""
        root = podman.root_dir(container)
        if root is not None:
            path = os.path.join(root, ADMIN_SOCKET.lstrip("/"))
            try:
                if stat_.S_ISSOCK(os.stat(path).st_mode):
                    return cls.at_socket(path)
            except OSError:
                pass
        return cls.in_container(podman, container)

    def command(self, *words: str) -> str:
        """Send one runtime API command; haproxy's answer."""
        for w in words:
            if not w or any(c in w for c in ";\n "):
                raise HAProxyError(f"haproxy: {w!r} is not one word of a runtime API command")
        return self._exec([*CLI, *words])

    def stat(self) -> list[ServerState]:
        """Every server of every backend."""
        return parse_stat(self.command("show", "stat"))

    def servers(self, backend: str) -> dict[str, ServerState]:
        """The servers of ``backend`` by name; an unknown backend is an error."""
        found = {s.server: s for s in self.stat() if s.backend == backend}
        if not found:
            raise HAProxyError(f"haproxy has no backend {backend!r} with servers")
        return found

    def server(self, backend: str, server: str) -> ServerState:
        servers = self.servers(backend)
        if server not in servers:
            have = ", ".join(sorted(servers))
            raise HAProxyError(f"haproxy backend {backend} has no server {server!r} ({have})")
        return servers[server]

    def _set_state(self, backend: str, server: str, state: str, what: str = "state") -> None:
        for name in (backend, server):
            if not name or "/" in name:
                raise HAProxyError(f"haproxy: {name!r} is not one word of a runtime API command")
        answer = self.command("set", "server", f"{backend}/{server}", what, state)
        if answer.strip():  # haproxy answers nothing when it did it
            raise HAProxyError(
                f"haproxy: set server {backend}/{server} {what} {state}: {answer.strip()}"
            )

    def drain(self, backend: str, server: str) -> None:
        """No new sessions to the server; the ones it has finish (health checks go on)."""
        self._set_state(backend, server, "drain")

    def maint(self, backend: str, server: str) -> None:
        """Out of service: no new sessions, no health checks."""
        self._set_state(backend, server, "maint")

    def ready(self, backend: str, server: str) -> None:
        """Back in service (from drain or maint); see :meth:`wait_up`."""
        self._set_state(backend, server, "ready")

    def shutdown_sessions(self, backend: str, server: str) -> None:
        """Close every session the server has now (its clients see the connection end and
        open another, to a server in service)."""
        for name in (backend, server):
            if not name or "/" in name:
                raise HAProxyError(f"haproxy: {name!r} is not one word of a runtime API command")
        answer = self.command("shutdown", "sessions", "server", f"{backend}/{server}")
        if answer.strip():
            raise HAProxyError(
                f"haproxy: shutdown sessions server {backend}/{server}: {answer.strip()}"
            )

    def health_up(self, backend: str, server: str) -> None:
        """Count the server UP now, without waiting for haproxy's own checks to pass
        ``rise`` times: for a server that just passed a stricter check of its own (apply's
        gate: health and a real API call). haproxy's checks go on and take it down
        again if it fails them."""
        self._set_state(backend, server, "up", what="health")

    def _wait(
        self,
        backend: str,
        server: str,
        timeout: float,
        done: Callable[[ServerState], bool],
        what: str,
    ) -> ServerState:
        deadline = self._clock() + timeout
        while True:
            state = self.server(backend, server)
            if done(state):
                return state
            if self._clock() >= deadline:
                raise HAProxyError(
                    f"haproxy: {backend}/{server} did not {what} within {timeout:g} s "
                    f"(status {state.status}, {state.sessions} session(s))"
                )
            self._sleep(self.interval)

    def wait_drained(self, backend: str, server: str, timeout: float) -> ServerState:
        """Block until the server has no session left, at most ``timeout`` seconds."""
        return self._wait(backend, server, timeout, lambda s: s.sessions == 0, "drain")

    def wait_up(self, backend: str, server: str, timeout: float) -> ServerState:
        """Block until haproxy sees the server UP, its last check passed (not ``UP 1/3``,
        nor still in drain or maint), at most ``timeout`` seconds."""
        return self._wait(
            backend,
            server,
            timeout,
            lambda s: s.state == "UP" and not s.transitional,
            "come up",
        )
