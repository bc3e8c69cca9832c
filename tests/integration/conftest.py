"""Real-system fixtures: a disposable Debian host (a podman container with sshd).

The host's image is built once per machine (mmdebstrap from Debian's archive, imported
into podman, tagged by a digest of what went in) and shared by every test of a session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from saline.build.graph import rootfs_digest
from saline.build.rootfs import build_rootfs
from saline.runtime.podman import Podman
from saline.settings import DebianMirrors, resolve
from tools import require_tools

if TYPE_CHECKING:
    from integration.example_cloud import ExampleCloud

SSH_INCLUDE = ["openssh-server", "python3"]
SSH_HOOKS = ['mkdir -p "$1/root/.ssh" && chmod 700 "$1/root/.ssh"']
PATH_ENV = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def podman() -> Podman:
    require_tools("podman")
    return saline_podman()


def saline_podman() -> Podman:
    """podman with the settings (containers.conf) the `saline` commands of the tests use:
    the state folder resolved as the command line resolves it."""
    return Podman.for_state(resolve({}, os.environ, os.getcwd()).state_dir)


@pytest.fixture(scope="session")
def ssh_host_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    require_tools("mmdebstrap")
    ref = f"localhost/saline-test-sshd:{rootfs_digest(SSH_INCLUDE, SSH_HOOKS)}"
    if not podman.image_exists(ref):
        tar = str(tmp_path_factory.mktemp("rootfs") / "rootfs.tar")
        build_rootfs(tar, SSH_INCLUDE, SSH_HOOKS, mirrors=DebianMirrors())
        podman.import_rootfs(tar, ref, [PATH_ENV])
        os.remove(tar)
    return ref


@dataclass
class SshHost:
    name: str
    port: int
    key: str
    #: A known_hosts file with the host's keys (ssh-keyscan), for verified connections.
    known_hosts: str

    @property
    def target(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def run(self, command: str) -> str:
        return subprocess.run(
            [
                "ssh",
                "-i",
                self.key,
                "-p",
                str(self.port),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "root@127.0.0.1",
                command,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout


def until(what: str, ready: Callable[[], bool], timeout: float, step: float = 1.0) -> float:
    """Wait (at most ``timeout`` s, polling every ``step``) until ``ready()``; the seconds
    it took."""
    start = time.monotonic()
    while not ready():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - start


@contextmanager
def own_stack(root: Path, model: Path, stack: str) -> Iterator[dict[str, str]]:
    """A stack of its own for a test module: a copy of ``model`` under ``root`` (links
    followed), a registry and state folder there; the environment the `saline` commands
    get. The stack, with its volumes, and the registry go at the end."""
    from integration.test_stack import saline
    from saline.runtime.registry import LocalRegistry

    registry = LocalRegistry(f"127.0.0.1:{free_port()}", str(root / "registry"))
    registry.start()
    copy = root / "model"
    shutil.copytree(model, copy, symlinks=False)
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_MODEL": str(copy),
        "SALINE_STACK": stack,
        "SALINE_REGISTRY": registry.address,
        "NO_COLOR": "1",
    }
    try:
        yield env
    finally:
        saline(env, "down", "--volumes")
        registry.stop()


@pytest.fixture(scope="session")
def example_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleCloud]:
    """The example's stack, brought up once per session by the README's main job
    (integration/example_cloud.py)."""
    from integration.example_cloud import example_cloud as cloud

    yield from cloud(tmp_path_factory.mktemp("example"))


#: Marks the test that takes the shared example stack down: it runs after the others.
TAKES_THE_EXAMPLE_DOWN = "takes_the_example_down"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the shared example stack run one after the other, where the first of
    them was, the one that takes the stack down last: the stack is up once, and does not
    run beside other modules' stacks (memory, CPU)."""
    users = [i for i in items if "example_cloud" in getattr(i, "fixturenames", ())]
    if not users:
        return
    first = items.index(users[0])
    others = [i for i in items if i not in users]
    users.sort(key=_down_order)
    items[:] = others[:first] + users + others[first:]


def _down_order(item: pytest.Item) -> int:
    """0 for a user that leaves the stack up; else its marker's ``order`` (they run in
    that order, last: each leaves the stack to the next as cheaply as it can)."""
    marker = item.get_closest_marker(TAKES_THE_EXAMPLE_DOWN)
    if marker is None:
        return 0
    return int(marker.kwargs.get("order", 1))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def ssh_host(podman: Podman, ssh_host_image: str, tmp_path: Path) -> Iterator[SshHost]:
    """A fresh disposable host per test (the image is shared)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name = f"saline-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    podman.run_detached(
        name,
        ssh_host_image,
        ["sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e"],
        publish=[f"127.0.0.1:{port}:22"],
        volumes=[f"{key}.pub:/root/.ssh/authorized_keys:ro,Z"],
    )
    host = SshHost(name, port, str(key), str(tmp_path / "known_hosts"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                host.run("true")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise RuntimeError("sshd did not come up:\n" + podman.logs(name)) from None
                time.sleep(0.5)
        scan = subprocess.run(
            ["ssh-keyscan", "-p", str(port), "127.0.0.1"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"[127.0.0.1]:{port} ssh-ed25519 " in scan.stdout, scan.stderr
        Path(host.known_hosts).write_text(scan.stdout)
        yield host
    finally:
        podman.remove(name)
