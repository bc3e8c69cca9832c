"""A virtual address shared by two haproxy nodes with keepalived, on the real stack
(tests/data/vip: prx01 and prx02 on 10.50.0.0/24, each running haproxy and keepalived;
the address 10.50.0.50; VRRP over unicast between the two). In order, on one stack (its
own name, state folder and registry):

* `saline up`: one node is master and holds the address, the other backup; this machine
  reaches haproxy at the address, and its ARP entry names the master's interface;
* the master's haproxy killed (podman kill): its track script fails, keepalived goes to
  FAULT and the other node takes the address; the failover time is printed, measured
  from the kill until the address answers from the other node, with a client probing
  the address every 0.1 s meanwhile;
* `saline up` brings the killed haproxy back: its keepalived is a backup again and the
  address stays where it is (nopreempt: one move per failure);
* the master's keepalived stopped (SIGTERM, podman stop): it exits 0, drops the address
  and the other node takes it at once; `saline up` brings it back.

Every wait is bounded. Each step prints its time (run with -s to see them).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from integration.conftest import own_stack, until
from integration.test_stack import ok
from saline.runtime.podman import Podman
from tools import REPO, require_tools

pytestmark = pytest.mark.integration

STACK = "vip-e2e"
MODEL = REPO / "tests" / "data" / "vip"
NODES = ("prx01", "prx02")
VIP = "10.50.0.50"
URL = f"http://{VIP}:8404/healthz"
STATE = [
    "saline-entrypoint",
    "with-pillar",
    "keepalived:cluster",
    "python3",
    "/usr/local/lib/saline/keepalived-state.py",
]


@dataclass
class Vip:
    env: dict[str, str]
    podman: Podman
    #: The node that holds the address now.
    master: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def backup(self) -> str:
        return next(n for n in NODES if n != self.master)

    def container(self, service: str) -> str:
        """The container of a compose service (``keepalived-prx01``, ``prx01``)."""
        for c in self.podman.containers(f"io.podman.compose.project={STACK}"):
            if c["Labels"].get("io.podman.compose.service") == service:
                return str(c["Names"][0])
        raise AssertionError(f"no container for {service}")

    def state(self, node: str) -> tuple[int, str]:
        """keepalived's API check on the node: (exit code, its line)."""
        done = self.podman.run_in(self.container(f"keepalived-{node}"), STATE, timeout=60)
        return done.returncode, done.stdout.strip()

    def holds(self, node: str) -> bool:
        """Whether the address is local in the node's network namespace (only a local
        address can be bound), asked through its haproxy container."""
        probe = f"import socket; socket.socket().bind(({VIP!r}, 0))"
        done = self.podman.run_in(
            self.container(f"haproxy-{node}"), ["python3", "-c", probe], timeout=60
        )
        return done.returncode == 0

    def mac(self, node: str) -> str:
        out = self.podman.cli(["inspect", "--format", "json", self.container(node)])
        networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
        return str(networks[f"{STACK}_stack"]["MacAddress"]).lower()

    def status(self) -> dict[str, dict[str, str]]:
        done = ok(self.env, "status", "--format", "json")
        return {row["name"]: row for row in json.loads(done.stdout)["services"]}

    def logs(self, service: str) -> str:
        return self.podman.logs(self.container(service))


def answers() -> bool:
    """haproxy answers at the virtual address (its health frontend)."""
    try:
        with urllib.request.urlopen(URL, timeout=1) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def neighbour() -> str:
    """This machine's ARP entry for the virtual address: the MAC it sends to."""
    out = subprocess.run(
        ["ip", "-j", "neigh", "show", VIP], capture_output=True, text=True, timeout=10
    ).stdout
    entries = json.loads(out or "[]")
    return str(entries[0].get("lladdr", "")).lower() if entries else ""


def timed(v: Vip, label: str, action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    took = time.monotonic() - start
    v.timings[label] = took
    print(f"\nvip: {label}: {took:.1f} s")
    return took


class Prober:
    """A client asking the virtual address every 0.1 s (1 s timeout) in a thread: how
    many requests failed, and the longest stretch without an answer."""

    def __init__(self) -> None:
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.results.append((time.monotonic(), answers()))
            self._stop.wait(0.1)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> str:
        failed = [t for t, good in self.results if not good]
        gap = 0.0
        if failed:
            after = [t for t, good in self.results if good and t > failed[-1]]
            gap = (after[0] if after else failed[-1]) - failed[0]
        return f"{len(failed)} of {len(self.results)} requests failed, no answer for {gap:.1f} s"


@pytest.fixture(scope="module")
def vip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vip]:
    require_tools("podman", "docker-registry", "ip")
    root = tmp_path_factory.mktemp("vip")
    with own_stack(root, MODEL, STACK) as env:
        yield Vip(env, Podman.for_state(str(root / "state")))


def test_up_elects_one_master_that_answers_at_the_virtual_address(vip: Vip) -> None:
    timed(vip, "saline up (images built if missing)", lambda: ok(vip.env, "up"))
    rows = vip.status()
    for node in NODES:
        assert rows[f"haproxy-{node}"]["health"] == "healthy", rows
        assert rows[f"keepalived-{node}"]["health"] == "healthy", rows
    # Both members start as backups; one is elected within a few advertisements.
    until("one keepalived is master", lambda: any(vip.holds(n) for n in NODES), 30, 0.5)
    states = {n: vip.state(n) for n in NODES}
    masters = [n for n, (code, line) in states.items() if "MASTER" in line]
    assert len(masters) == 1, states
    vip.master = masters[0]
    assert states[vip.master][0] == 0, states
    assert states[vip.master][1].startswith(f"VIP: MASTER, holds {VIP} on eth0"), states
    assert states[vip.backup][0] == 0 and states[vip.backup][1].startswith(
        f"VIP: BACKUP, {VIP} is held elsewhere"
    ), states
    assert vip.holds(vip.master) and not vip.holds(vip.backup)
    # --json: who holds it, for a program.
    done = vip.podman.run_in(vip.container(f"keepalived-{vip.master}"), [*STATE, "--json"])
    report = json.loads(done.stdout)["VIP"]
    assert (report["state"], report["holds"]) == ("MASTER", [VIP])
    # This machine reaches haproxy there, on the master's interface.
    until("the address answers", answers, 30, 0.1)
    assert neighbour() == vip.mac(vip.master)
    # keepalived logs to the container's output, and never the VRRP password.
    text = vip.logs(f"keepalived-{vip.master}")
    assert "Entering MASTER STATE" in text, text[-2000:]
    assert "vip-pass" not in text
    print(f"\nvip: {vip.master} is master")


def test_the_address_moves_when_the_masters_haproxy_is_killed(vip: Vip) -> None:
    old, new = vip.master, vip.backup
    mac, haproxy = vip.mac(new), vip.container(f"haproxy-{old}")
    with Prober() as prober:
        until("the prober has an answer", lambda: bool(prober.results), 10, 0.1)
        vip.podman.cli(["kill", haproxy], timeout=60)
        took = until(
            f"the address answers from {new}",
            lambda: answers() and neighbour() == mac,
            30,
            0.05,
        )
        time.sleep(1)  # what the prober sees once it moved (not an assertion)
    vip.timings["failover after a killed haproxy"] = took
    print(f"\nvip: the address answers from {new} {took:.1f} s after {old}'s haproxy was killed")
    print(f"vip: client during the failover: {prober.summary()}")
    assert vip.holds(new) and not vip.holds(old)
    code, line = vip.state(new)
    assert code == 0 and line.startswith(f"VIP: MASTER, holds {VIP}"), line
    # The old master's track script fails: FAULT, unhealthy, without the address.
    code, line = vip.state(old)
    assert code == 1 and line.startswith("VIP: FAULT, holds none of"), line
    rows = vip.status()
    assert rows[f"haproxy-{old}"]["state"].startswith("exited"), rows
    assert rows[f"keepalived-{old}"]["health"] == "unhealthy", rows
    vip.master = new


def test_saline_up_brings_the_killed_haproxy_back(vip: Vip) -> None:
    timed(vip, "saline up, a killed haproxy back", lambda: ok(vip.env, "up"))
    rows = vip.status()
    assert {rows[f"{s}-{n}"]["health"] for s in ("haproxy", "keepalived") for n in NODES} == {
        "healthy"
    }, rows
    # nopreempt: the address stays with the new master, the other is a backup again.
    code, line = vip.state(vip.backup)
    assert code == 0 and line.startswith(f"VIP: BACKUP, {VIP} is held elsewhere"), line
    assert vip.holds(vip.master) and not vip.holds(vip.backup)
    assert answers() and neighbour() == vip.mac(vip.master)


def test_sigterm_stops_keepalived_and_releases_the_address(vip: Vip) -> None:
    old, new = vip.master, vip.backup
    mac, container = vip.mac(new), vip.container(f"keepalived-{old}")
    with Prober() as prober:
        until("the prober has an answer", lambda: bool(prober.results), 10, 0.1)
        start = time.monotonic()
        vip.podman.cli(["stop", container], timeout=60)  # SIGTERM, then 10 s to the kill
        stopped = time.monotonic() - start
        took = until(
            f"the address answers from {new}",
            lambda: answers() and neighbour() == mac,
            30,
            0.05,
        )
        time.sleep(1)
    vip.timings["failover after a stopped keepalived"] = took
    print(f"\nvip: keepalived on {old} stopped (SIGTERM) in {stopped:.1f} s; the address")
    print(f"vip: answers from {new} {took:.1f} s later; client: {prober.summary()}")
    state = vip.podman.inspect_state(container)
    assert state is not None and state["ExitCode"] == 0, state  # SIGTERM, not the kill
    assert stopped < 5
    assert not vip.holds(old), "the stopped keepalived left the address behind"
    assert vip.holds(new)
    vip.master = new
    timed(vip, "saline up, a stopped keepalived back", lambda: ok(vip.env, "up"))
    code, line = vip.state(old)
    assert code == 0 and line.startswith("VIP: BACKUP"), line
    assert vip.holds(vip.master) and not vip.holds(vip.backup)
