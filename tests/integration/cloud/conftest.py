"""The whole example cloud, once, for the modules of this package (issue 14): the example
model (identity, images, placement, nova, neutron, cinder on Ceph, the dashboard) on a
stack of its own (10.32.0.0/24, beside the shared core stack's 10.10.0.0/24), brought up
with `saline up` before the package's first test and taken down with its volumes after
its last one.

One stack for every module here because bringing the whole cloud up takes minutes (62
containers): test_cloud (`saline smoke` boots a server), test_dashboard (a browser on
Horizon), test_day2 (a compute node's change rolled out under a running server),
test_neutron (networks, a router, a node's namespace lost and made again: it runs last,
being the hardest on the stack). Each module leaves what it made deleted; the server
`saline smoke --keep` left for test_dashboard and test_day2 (:func:`kept_server`) is
deleted by `saline smoke --clean` after the package.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import own_stack
from integration.test_stack import ok
from saline.runtime.podman import Podman
from saline.smoke import connect
from tools import EXAMPLE, require_tools

STACK = "saline-cloud"
EXAMPLE_PREFIX, PREFIX = "10.10.0.", "10.32.0."
#: The proxy's (haproxy's) address: the cloud's public one.
PROXY = f"{PREFIX}40"


def cloud_model(root: Path) -> Path:
    """The example on other addresses (beside the shared stack's 10.10.0.0/24)."""
    model = root / "model"
    shutil.copytree(EXAMPLE, model, symlinks=False)
    for path in sorted(model.rglob("*.yml")):
        text = path.read_text()
        if EXAMPLE_PREFIX in text:
            path.write_text(text.replace(EXAMPLE_PREFIX, PREFIX))
    return model


@dataclass
class CloudStack:
    """The running whole cloud: the `saline` commands' environment, podman with the
    stack's settings, and the test folder it lives in."""

    env: dict[str, str]
    podman: Podman
    root: Path
    #: Seconds `saline up` took.
    up_seconds: float

    def container(self, service: str) -> str:
        """The running container of a compose service (``horizon-ctl01``, ``cmp01``)."""
        for c in self.podman.containers(f"io.podman.compose.project={STACK}"):
            if c["Labels"].get("io.podman.compose.service") == service and c["State"] == (
                "running"
            ):
                return str(c["Names"][0])
        raise AssertionError(f"no running container for {service}")

    def run(self, service: str, command: list[str]) -> str:
        """``command``'s output in the service's container; it must succeed."""
        done = self.podman.run_in(self.container(service), command, timeout=60)
        assert done.returncode == 0, f"{service}: {command}: {done.output[-2000:]}"
        return done.stdout

    def openrc(self) -> dict[str, str]:
        """What `saline openrc` gives a user of the cloud (the model's admin)."""
        return dict(json.loads(ok(self.env, "openrc", "--format", "json").stdout))

    def connect(self) -> Any:
        """openstacksdk as the model's admin, with only what `saline openrc` gives."""
        return connect(self.openrc())


@pytest.fixture(scope="package")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudStack]:
    require_tools("podman", "podman-compose", "docker-registry", "depmod")
    root = tmp_path_factory.mktemp("cloud")
    with own_stack(root, cloud_model(root / "source"), STACK) as env:
        start = time.monotonic()
        ok(env, "up")
        took = time.monotonic() - start
        print(f"\nsaline up of the whole cloud: {took:.1f} s")
        yield CloudStack(env, Podman.for_state(str(root / "state")), root, took)


@pytest.fixture(scope="package")
def kept_server(cloud: CloudStack) -> Iterator[str]:
    """The smoke's server, running: `saline smoke --keep` boots it (and everything smoke
    checks) and leaves it; after the package `saline smoke --clean` deletes it and the
    rest, and a second clean finds nothing. Its name."""
    start = time.monotonic()
    done = ok(cloud.env, "smoke", "--keep", "--format", "json")
    checks = {c["name"]: c["detail"] for c in json.loads(done.stdout)["checks"]}
    print(f"\nsaline smoke --keep: {time.monotonic() - start:.1f} s")
    assert "cleanup" not in checks and checks["kept"].startswith("left for inspection: "), checks
    name = checks["server active"].split(" on ")[0]
    assert name.startswith("saline-smoke-"), checks["server active"]
    yield name
    cleaned = ok(cloud.env, "smoke", "--clean", "--format", "json")
    detail = json.loads(cleaned.stdout)["checks"][0]["detail"]
    assert f"server {name}" in detail and f"volume {name}" in detail, detail
    print(f"\nsaline smoke --clean: {detail}")
    again = json.loads(ok(cloud.env, "smoke", "--clean", "--format", "json").stdout)
    assert again["checks"][0]["detail"] == "nothing to delete", again
