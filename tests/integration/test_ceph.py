"""A single-node Ceph cluster on the real stack (tests/data/ceph: ceph01 at 10.66.0.60
runs ceph-mon, ceph-mgr and ceph-osd with the example's class system.ceph.single). In
order, on one stack of its own (its name, state folder, registry and subnet):

* `saline up` (images built when missing): the three daemons healthy, then the cluster
  HEALTH_OK with no health check at all, 1 OSD up and in, every placement group
  active+clean, the pools volumes, images and vms of one replica for rbd;
* each service's API check passes in its container;
* a client container elsewhere on the stack's network (another address, no ceph.conf:
  the monitor's address on its command line) creates an RBD image in volumes and reads
  its info;
* `saline status` shows the cluster's line (the monitor's status command);
* `saline up` again changes nothing (no container started, no task run);
* `saline down` (volumes kept) and `saline up`: healthy again, the same fsid, the same
  OSD, and the image made before is still there.

Every wait is bounded. Each step prints its time and the daemons' memory (run with -s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from integration.conftest import own_stack, until
from integration.test_stack import ok
from saline.runtime.podman import Podman
from tools import REPO, require_tools

pytestmark = pytest.mark.integration

STACK = "ceph-e2e"
MODEL = REPO / "tests" / "data" / "ceph"
MON_ADDRESS = "10.66.0.60"
#: A client beside the node on the stack's network (not the node's address).
CLIENT_ADDRESS = "10.66.0.99"
FSID = "5d3c6e0a-8f0e-4b7c-9a51-2f4d1c0b7e61"
OSD_UUID = "0c6a1e52-3b9d-4f57-8e2a-71d5b9c4f803"
SERVICES = ("ceph-mon", "ceph-mgr", "ceph-osd")
POOLS = ("images", "vms", "volumes")
IMAGE = "volumes/saline-e2e"
#: Seconds the cluster may take to be whole once its daemons are healthy (placement
#: groups peering on a busy machine; 18 s were measured from nothing).
SETTLE = 180


@dataclass
class Ceph:
    env: dict[str, str]
    podman: Podman
    timings: dict[str, float] = field(default_factory=dict)

    def container(self, service: str) -> str:
        """The container of a compose service (``ceph-mon``, ``ceph01``)."""
        for c in self.podman.containers(f"io.podman.compose.project={STACK}"):
            if c["Labels"].get("io.podman.compose.service") == service:
                return str(c["Names"][0])
        raise AssertionError(f"no container for {service}")

    def ceph(self, *args: str) -> Any:
        """A ceph command's JSON answer, run in the monitor's container."""
        done = self.podman.run_in(
            self.container("ceph-mon"),
            ["ceph", "--connect-timeout", "20", *args, "--format", "json"],
            timeout=60,
        )
        assert done.returncode == 0, f"ceph {' '.join(args)}: {done.output}"
        return json.loads(done.stdout)

    def client(self, *args: str) -> str:
        """``rbd ARGS`` from a one-off client container on the stack's network, at its own
        address, with the monitor's image and no ceph.conf (the monitor's address and
        "no authentication" on its command line, as a client elsewhere would)."""
        image = self.podman.cli(
            ["inspect", "--format", "{{.ImageName}}", self.container("ceph-mon")]
        ).strip()
        return self.podman.cli(
            [
                "run",
                "--rm",
                "--network",
                f"{STACK}_stack",
                "--ip",
                CLIENT_ADDRESS,
                "--entrypoint",
                "rbd",
                image,
                "--mon-host",
                MON_ADDRESS,
                "--auth-client-required",
                "none",
                "--no-mon-config",
                # Bounded: librados' own limits (rbd has no --connect-timeout).
                "--client-mount-timeout",
                "20",
                "--rados-osd-op-timeout",
                "60",
                *args,
            ],
            timeout=120,
        )

    def status(self) -> dict[str, dict[str, Any]]:
        done = ok(self.env, "status", "--format", "json")
        return {row["name"]: row for row in json.loads(done.stdout)["services"]}

    def memory(self) -> dict[str, float]:
        """Each daemon's memory (podman stats), in MB."""
        names = {self.container(s): s for s in SERVICES}
        used = self.podman.memory(list(names))
        return {names[n]: round(b / 1e6, 1) for n, b in used.items()}


def timed(c: Ceph, label: str, action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    took = time.monotonic() - start
    c.timings[label] = took
    print(f"\nceph: {label}: {took:.1f} s")
    return took


def whole(c: Ceph) -> bool:
    """HEALTH_OK and every placement group active+clean (just after a pool is made its
    PGs are "unknown" a while, and the health OK all the same)."""
    st = c.ceph("status")
    pgs = st["pgmap"]
    clean = sum(s["count"] for s in pgs["pgs_by_state"] if s["state_name"] == "active+clean")
    return bool(
        st["health"]["status"] == "HEALTH_OK" and pgs["num_pgs"] and clean == pgs["num_pgs"]
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ceph]:
    require_tools("podman", "docker-registry")
    root = tmp_path_factory.mktemp("ceph")
    with own_stack(root, MODEL, STACK) as env:
        yield Ceph(env, Podman.for_state(str(root / "state")))


def test_up_makes_a_whole_cluster(cluster: Ceph) -> None:
    timed(cluster, "saline up (images built if missing)", lambda: ok(cluster.env, "up"))
    rows = cluster.status()
    for s in SERVICES:
        assert rows[s]["health"] == "healthy", rows[s]
    took = until("HEALTH_OK, every PG active+clean", lambda: whole(cluster), SETTLE, 1.0)
    print(f"ceph: whole {took:.1f} s after up returned")
    st = cluster.ceph("status")
    # No health check at all: the single-node class silences the ones one replica and a
    # shared disk would raise (POOL_NO_REDUNDANCY, MON_DISK_LOW), and auth none raises
    # none (AUTH_INSECURE_GLOBAL_ID_RECLAIM_ALLOWED is off).
    assert st["health"]["status"] == "HEALTH_OK" and st["health"]["checks"] == {}, st["health"]
    assert st["fsid"] == FSID
    assert st["quorum_names"] == ["ceph01"]
    osds = cluster.ceph("osd", "stat")
    assert (osds["num_osds"], osds["num_up_osds"], osds["num_in_osds"]) == (1, 1, 1), osds
    tree = cluster.ceph("osd", "tree")
    (osd,) = [n for n in tree["nodes"] if n["type"] == "osd"]
    (host,) = [n for n in tree["nodes"] if n["type"] == "host"]
    assert (osd["name"], host["name"], host["children"]) == ("osd.0", "ceph01", [0]), tree
    assert cluster.ceph("osd", "dump")["osds"][0]["uuid"] == OSD_UUID
    pools = {p["pool_name"]: p for p in cluster.ceph("osd", "pool", "ls", "detail")}
    for name in POOLS:
        assert pools[name]["size"] == 1, pools[name]
        assert "rbd" in pools[name]["application_metadata"], pools[name]
    print(f"ceph: memory (MB) {cluster.memory()}")


def test_every_api_check_passes(cluster: Ceph) -> None:
    commands = {
        "ceph-mon": ["python3", "/usr/local/lib/saline/ceph-check.py", "api", "mon"],
        "ceph-mgr": ["python3", "/usr/local/lib/saline/ceph-check.py", "api", "mgr"],
        "ceph-osd": [
            "saline-entrypoint",
            "with-pillar",
            "ceph",
            "python3",
            "/usr/local/lib/saline/ceph-check.py",
            "api",
            "osd",
        ],
    }
    for service, command in commands.items():
        done = cluster.podman.run_in(cluster.container(service), command, timeout=60)
        assert done.returncode == 0, f"{service}: {done.output}"
        print(f"ceph: {done.stdout.strip()}")
    lines = {s: cluster.podman.run_in(cluster.container(s), c).stdout for s, c in commands.items()}
    assert "in the quorum (ceph01)" in lines["ceph-mon"]
    assert "active and available" in lines["ceph-mgr"]
    assert "wrote, read and removed an object in images" in lines["ceph-osd"]


def test_a_client_elsewhere_makes_an_rbd_image(cluster: Ceph) -> None:
    cluster.client("create", IMAGE, "--size", "64")
    info = json.loads(cluster.client("info", IMAGE, "--format", "json"))
    assert (info["name"], info["size"]) == ("saline-e2e", 64 * 2**20), info
    assert "saline-e2e" in json.loads(cluster.client("ls", "volumes", "--format", "json"))


def test_status_shows_the_clusters_line(cluster: Ceph) -> None:
    view = cluster.status()["ceph-mon"]["cluster"]
    assert view["healthy"] is True, view
    assert view["summary"].startswith(
        "HEALTH_OK; 1 mon(s) in quorum (ceph01); mgr ceph01 active; osds: 1, 1 up, 1 in; "
    ), view
    assert view["fsid"] == FSID
    text = ok(cluster.env, "status").stdout
    assert "HEALTH_OK; 1 mon(s) in quorum (ceph01)" in text, text


def test_up_again_changes_nothing(cluster: Ceph) -> None:
    report = json.loads(ok(cluster.env, "up", "--format", "json").stdout)
    outcomes = {s["name"]: s["outcome"] for s in report["steps"]}
    assert {outcomes[s] for s in SERVICES} == {"running"}, outcomes
    tasks = {n: o for n, o in outcomes.items() if n.endswith(("-mkfs", "-pools"))}
    assert tasks and set(tasks.values()) == {"already done"}, outcomes


def test_down_and_up_keeps_the_cluster_and_its_data(cluster: Ceph) -> None:
    timed(cluster, "saline down (volumes kept)", lambda: ok(cluster.env, "down"))
    timed(cluster, "saline up after down", lambda: ok(cluster.env, "up"))
    took = until("HEALTH_OK, every PG active+clean", lambda: whole(cluster), SETTLE, 1.0)
    print(f"ceph: whole again {took:.1f} s after up returned")
    st = cluster.ceph("status")
    assert st["fsid"] == FSID and st["health"]["checks"] == {}, st["health"]
    assert cluster.ceph("osd", "dump")["osds"][0]["uuid"] == OSD_UUID
    info = json.loads(cluster.client("info", IMAGE, "--format", "json"))
    assert info["size"] == 64 * 2**20
    cluster.client("rm", IMAGE)
    assert "saline-e2e" not in json.loads(cluster.client("ls", "volumes", "--format", "json"))
    print(f"ceph: memory (MB) {cluster.memory()}")
