"""The highly available example (examples/openstack-ha) on the real stack: three Galera
members, three RabbitMQ members, three controllers, two haproxy sharing a virtual address.
In order, on one stack (its own name, state folder and registry, 10.20.0.0/24):

* `saline up` forms every cluster; `saline status` shows each whole; smoke passes
  through the virtual address;
* faults under a client that asks for a token and creates a project every 0.3 s through
  the virtual address (each call retried once, 1.5 s later): the Galera
  member taking the writes killed, a RabbitMQ member, a keystone instance, the haproxy
  holding the virtual address. Each time: no call fails after its retry, no created
  project is lost, and `saline up` brings the killed member back with its cluster whole;
* a rolling change of MariaDB and RabbitMQ (`saline apply`): one member at a time, each
  cluster whole before the next, the same client never failing after its retry;
* a full stop (`saline down`, volumes kept: no container, no pillar file left) and
  `saline up`: no bootstrap task runs again, every cluster whole, no project lost, smoke
  passes.

Every wait is bounded. Each step prints its time and the client's failures (run with -s
to see them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.clients import Outcome, WriteLoop, admin_auth, running
from integration.conftest import own_stack, until
from integration.test_stack import ok
from release_tools import edit
from saline.runtime.podman import Podman
from tools import REPO, require_tools

pytestmark = pytest.mark.integration

STACK = "saline-ha"
MODEL = REPO / "examples" / "openstack-ha"
VIP = "10.20.0.50"
GALERA = ("dbs01", "dbs02", "dbs03")
RABBITMQ = ("msg01", "msg02", "msg03")


@dataclass
class Cloud:
    env: dict[str, str]
    podman: Podman
    model: Path

    def container(self, service: str) -> str:
        """The container of a compose service (``mariadb-dbs01``)."""
        for c in self.podman.containers(f"io.podman.compose.project={STACK}"):
            if c["Labels"].get("io.podman.compose.service") == service:
                return str(c["Names"][0])
        raise AssertionError(f"no container for {service}")

    def status(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(ok(self.env, "status", "--format", "json").stdout)["services"]
        return {r["name"]: r for r in rows}

    def clusters(self) -> dict[str, dict[str, Any]]:
        """What each clustered instance says of its cluster (``saline status``)."""
        return {name: row["cluster"] for name, row in self.status().items() if "cluster" in row}

    def whole(self) -> list[str]:
        """Why the stack is not whole (nothing: it is): a service not running healthy, an
        instance whose cluster view is not healthy (a Galera member not Synced, Primary
        and in a cluster of 3; a RabbitMQ member not seeing every member...)."""
        problems = []
        for name, row in self.status().items():
            if row["kind"] == "service" and row["health"] != "healthy":
                problems.append(f"{name}: {row['state']} {row['health']}")
            elif "cluster" in row and not row["cluster"]["healthy"]:
                problems.append(f"{name}: {row['cluster']['summary']}")
        return problems

    def edit(self, path: str, old: str, new: str) -> None:
        edit(self.model / path, old, new)

    def kill(self, service: str) -> None:
        self.podman.cli(["kill", self.container(service)], timeout=60)


def timed(label: str, action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    took = time.monotonic() - start
    print(f"\nha: {label}: {took:.1f} s")
    return took


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    require_tools("podman", "docker-registry")
    root = tmp_path_factory.mktemp("ha")
    with own_stack(root, MODEL, STACK) as env:
        yield Cloud(env, Podman.for_state(str(root / "state")), Path(env["SALINE_MODEL"]))


@pytest.fixture(scope="module")
def client_auth(cloud: Cloud) -> dict[str, Any]:
    rc = json.loads(ok(cloud.env, "openrc", "--format", "json").stdout)
    assert rc["OS_AUTH_URL"] == f"http://{VIP}:5000/v3"
    return admin_auth(rc)


#: Every client's outcome, by step, printed at the end of the module (the benchmark's
#: figures come from bench/ha.py; these are the test's own).
OUTCOMES: dict[str, Outcome] = {}


def under_load(cloud: Cloud, auth: dict[str, Any], label: str, action: Callable[[], None]) -> None:
    loop = WriteLoop(f"http://{VIP}:5000/v3", auth, prefix=f"ha-{label.replace(' ', '-')}")
    with running(loop):
        action()
        # The client keeps going a few seconds on the restored cluster.
        time.sleep(3)
    OUTCOMES[label] = loop.outcome
    print(f"\nha: {label}: {loop.outcome.report()}")
    assert loop.outcome.requests > 10, loop.outcome.report()
    assert loop.outcome.after_retry == [], loop.outcome.after_retry
    assert loop.lost() == []
    assert len(loop.created) > 0


def test_up_forms_every_cluster_and_smoke_passes(cloud: Cloud) -> None:
    timed("saline up (images built if missing)", lambda: ok(cloud.env, "up"))
    views = cloud.clusters()
    for m in GALERA:
        assert views[f"mariadb-{m}"]["state"] == "Synced", views[f"mariadb-{m}"]
        assert views[f"mariadb-{m}"]["size"] == 3
    for m in RABBITMQ:
        assert views[f"rabbitmq-{m}"]["healthy"], views[f"rabbitmq-{m}"]
        assert len(views[f"rabbitmq-{m}"]["running"]) == 3
    assert cloud.whole() == []
    vip_holder(cloud)  # exactly one proxy holds the address
    ok(cloud.env, "smoke")
    text = ok(cloud.env, "status").stdout
    assert "CLUSTERS" in text and "galera Synced, Primary, 3 of 3 members" in text
    assert f"VIP: MASTER, holds {VIP} on eth0" in text
    assert f"VIP: BACKUP, {VIP} is held elsewhere" in text


def vip_holder(cloud: Cloud) -> str:
    """The proxy node (``prx01``) whose keepalived holds the virtual address."""
    holders = [
        name.removeprefix("keepalived-")
        for name, view in cloud.clusters().items()
        if name.startswith("keepalived-") and view.get("state") == "MASTER"
    ]
    assert len(holders) == 1, cloud.clusters()
    return holders[0]


@pytest.mark.parametrize(
    ("label", "service"),
    [
        ("galera writer killed", "mariadb-dbs01"),
        ("rabbitmq member killed", "rabbitmq-msg01"),
        ("keystone instance killed", "keystone-ctl01"),
        ("haproxy holding the address killed", "haproxy-VIP"),
    ],
)
def test_a_killed_member_costs_no_request_and_comes_back(
    cloud: Cloud, client_auth: dict[str, Any], label: str, service: str
) -> None:
    if service == "haproxy-VIP":
        service = f"haproxy-{vip_holder(cloud)}"

    def fault() -> None:
        cloud.kill(service)
        # The survivors serve alone for a while.
        time.sleep(10)
        took = timed(f"{label}: saline up", lambda: ok(cloud.env, "up"))
        assert took < 600
        until(f"{label}: every cluster whole", lambda: cloud.whole() == [], 180)

    under_load(cloud, client_auth, label, fault)
    if label.startswith("haproxy"):
        # The address moved to the other proxy, and stays there (nopreempt).
        assert f"haproxy-{vip_holder(cloud)}" != service


def test_a_rolling_change_of_the_database_and_the_queue_costs_no_request(
    cloud: Cloud, client_auth: dict[str, Any]
) -> None:
    cloud.edit("classes/system/mysql/server.yml", "max_connections: 1000", "max_connections: 1200")
    plan = json.loads(ok(cloud.env, "plan", "--format", "json").stdout)
    changed = sorted(c["key"] for c in plan["changes"])
    assert changed == [f"mariadb@{m}.openstack-ha.local" for m in GALERA], changed

    def apply() -> None:
        done = timed("rolling change of MariaDB", lambda: ok(cloud.env, "apply", "--yes"))
        assert done > 0

    under_load(cloud, client_auth, "rolling mariadb", apply)
    assert cloud.whole() == []


def test_a_full_stop_after_a_crash_keeps_every_write(
    cloud: Cloud, client_auth: dict[str, Any]
) -> None:
    loop = WriteLoop(f"http://{VIP}:5000/v3", client_auth, prefix="ha-before-stop")
    with running(loop):
        time.sleep(5)
    assert loop.outcome.after_retry == [] and loop.created
    # Every Galera member killed at once (none stops cleanly: each must read its position
    # from InnoDB), then the whole stack stopped and started again.
    cloud.podman.cli(["kill", *(cloud.container(f"mariadb-{m}") for m in GALERA)], timeout=60)
    down = ok(cloud.env, "down")
    assert "volumes kept" in down.stdout
    # No secrets left behind: the pillar files go with the stack's containers.
    assert not (Path(cloud.env["SALINE_STATE_DIR"]) / "stacks" / STACK / "pillar").exists()
    assert not cloud.podman.containers(f"io.podman.compose.project={STACK}")
    up: dict[str, Any] = {}
    timed(
        "saline up after a crash and a full stop",
        lambda: up.update(json.loads(ok(cloud.env, "up", "--format", "json").stdout)),
    )
    # The data is there: no bootstrap task runs again.
    assert [s["name"] for s in up["steps"] if s["outcome"] == "ran"] == []
    until("every cluster whole", lambda: cloud.whole() == [], 180)
    assert loop.lost() == []
    ok(cloud.env, "smoke")
    logs = [cloud.podman.logs(cloud.container(f"mariadb-{m}")) for m in GALERA]
    assert all("(recovered from InnoDB)" in text for text in logs)
    assert sum("--wsrep-new-cluster" in text for text in logs) == 1, "one member starts it"
