"""A 3-node MariaDB Galera cluster on the real stack (tests/data/galera: three database
nodes, the salt-formulas galera:master / galera:slave pillar), started by `saline up`
with the mariadb formula's images. In order, on one stack (its own name, state folder,
registry and subnet, 10.30.0.0/24):

* `saline up` forms one cluster of three (the master starts it, the others join);
* a row written through dbs01 is read on dbs03;
* a member killed (podman kill): the other two stay Synced and Primary and take
  writes; `saline up` brings it back, and it has what was written meanwhile;
* `saline down` (volumes kept) and `saline up`: the most advanced member starts the
  cluster again, every row is there, three members;
* every member killed at once: each reads its position from InnoDB, and `saline up`
  recovers the cluster from the most advanced one, every row there.

Every wait is bounded. Each step prints its time (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from integration.conftest import free_port
from integration.test_stack import ok, saline
from saline.runtime.podman import Podman
from saline.runtime.registry import LocalRegistry
from tools import REPO, require_tools

pytestmark = pytest.mark.integration

STACK = "saline-galera"
MODEL = REPO / "tests" / "data" / "galera"
MEMBERS = ("dbs01", "dbs02", "dbs03")
CHECK = ["python3", "/usr/local/lib/saline/mariadb-server.py", "check"]


@dataclass
class Galera:
    env: dict[str, str]
    podman: Podman

    def container(self, member: str) -> str:
        """The container of the member's mariadb (compose service mariadb-MEMBER)."""
        for c in self.podman.containers(f"io.podman.compose.project={STACK}"):
            if c["Labels"].get("io.podman.compose.service") == f"mariadb-{member}":
                return str(c["Names"][0])
        raise AssertionError(f"no container for mariadb-{member}")

    def sql(self, member: str, statement: str) -> str:
        done = self.podman.run_in(
            self.container(member),
            ["mariadb", "--protocol=socket", "--batch", "--skip-column-names", "-e", statement],
            timeout=60,
        )
        assert done.returncode == 0, f"{member}: {statement}: {done.output}"
        return done.stdout.strip()

    def wsrep(self, member: str) -> dict[str, str]:
        rows = self.sql(member, "SHOW GLOBAL STATUS LIKE 'wsrep_%'").splitlines()
        return dict(row.split("\t", 1) for row in rows if "\t" in row)

    def rows(self, member: str) -> list[str]:
        return self.sql(member, "SELECT note FROM probe.t ORDER BY id").splitlines()

    def status(self) -> dict[str, dict[str, str]]:
        done = ok(self.env, "status", "--format", "json")
        return {row["name"]: row for row in json.loads(done.stdout)["services"]}

    def logs(self, member: str) -> str:
        return self.podman.logs(self.container(member))


def until(what: str, ready: Callable[[], bool], timeout: float) -> float:
    """Wait (at most ``timeout`` s) until ``ready()``; the seconds it took."""
    start = time.monotonic()
    while not ready():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(1)
    return time.monotonic() - start


def timed(label: str, action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    took = time.monotonic() - start
    print(f"\ngalera: {label}: {took:.1f} s")
    return took


def whole(g: Galera, members: tuple[str, ...] = MEMBERS, size: int = 3) -> None:
    for m in members:
        status = g.wsrep(m)
        assert status["wsrep_cluster_status"] == "Primary", (m, status)
        assert status["wsrep_local_state_comment"] == "Synced", (m, status)
        assert status["wsrep_cluster_size"] == str(size), (m, status)


@pytest.fixture(scope="module")
def galera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Galera]:
    require_tools("podman", "docker-registry")
    root = tmp_path_factory.mktemp("galera")
    registry = LocalRegistry(f"127.0.0.1:{free_port()}", str(root / "registry"))
    registry.start()
    model = root / "model"
    shutil.copytree(MODEL, model)
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_MODEL": str(model),
        "SALINE_STACK": STACK,
        "SALINE_REGISTRY": registry.address,
        "NO_COLOR": "1",
    }
    try:
        yield Galera(env, Podman.for_state(str(root / "state")))
    finally:
        saline(env, "down", "--volumes")
        registry.stop()


def test_up_forms_one_cluster_of_three(galera: Galera) -> None:
    timed("saline up, a new cluster (images built if missing)", lambda: ok(galera.env, "up"))
    whole(galera)
    for m in MEMBERS:
        done = galera.podman.run_in(galera.container(m), CHECK, timeout=60)
        assert done.returncode == 0, done.output
        assert "galera Synced, Primary, 3 of 3 members" in done.stdout
    rows = galera.status()
    assert {rows[f"mariadb-{m}"]["health"] for m in MEMBERS} == {"healthy"}
    assert rows["mariadb-databases"]["state"] == "exited (0)"
    # The master started it; the others joined.
    assert "the seed, starts a new cluster" in galera.logs("dbs01")
    for m in ("dbs02", "dbs03"):
        assert "mariadb-server: join:" in galera.logs(m)
    # The databases task ran once, through dbs01, and every member has its user.
    assert galera.sql("dbs03", "SELECT user FROM mysql.user WHERE user = 'probe'") == "probe"


def test_a_row_written_through_one_member_is_read_on_another(galera: Galera) -> None:
    galera.sql(
        "dbs01",
        "CREATE TABLE probe.t (id INT PRIMARY KEY, note VARCHAR(64));"
        "INSERT INTO probe.t VALUES (1, 'through dbs01')",
    )
    assert galera.rows("dbs03") == ["through dbs01"]


def test_a_killed_member_leaves_the_others_primary_and_rejoins(galera: Galera) -> None:
    galera.podman.cli(["kill", galera.container("dbs02")], timeout=60)

    def two_left() -> bool:
        return all(galera.wsrep(m).get("wsrep_cluster_size") == "2" for m in ("dbs01", "dbs03"))

    took = until("dbs01 and dbs03 see two members", two_left, 60)
    print(f"\ngalera: the two others see 2 members after {took:.1f} s")
    whole(galera, ("dbs01", "dbs03"), size=2)
    galera.sql("dbs03", "INSERT INTO probe.t VALUES (2, 'through dbs03, dbs02 down')")
    assert galera.status()["mariadb-dbs02"]["state"].startswith("exited")
    # The API check says the cluster is not whole.
    done = galera.podman.run_in(galera.container("dbs01"), CHECK, timeout=60)
    assert done.returncode == 1 and "2 of 3 members" in done.stdout, done.output
    timed("saline up, a killed member back", lambda: ok(galera.env, "up"))
    whole(galera)
    assert galera.rows("dbs02") == ["through dbs01", "through dbs03, dbs02 down"]


def test_a_full_stop_and_start_keeps_every_row(galera: Galera) -> None:
    galera.sql("dbs02", "INSERT INTO probe.t VALUES (3, 'through dbs02')")
    timed("saline down, volumes kept", lambda: ok(galera.env, "down"))
    assert galera.podman.containers(f"io.podman.compose.project={STACK}") == []
    timed("saline up after a full stop", lambda: ok(galera.env, "up"))
    whole(galera)
    want = ["through dbs01", "through dbs03, dbs02 down", "through dbs02"]
    for m in MEMBERS:
        assert galera.rows(m) == want
    logs = [galera.logs(m) for m in MEMBERS]
    assert sum("--wsrep-new-cluster" in text for text in logs) == 1, "one member starts it"
    assert any("has the most recent data" in text for text in logs)


def test_every_member_killed_recovers_from_the_most_advanced(galera: Galera) -> None:
    galera.sql("dbs03", "INSERT INTO probe.t VALUES (4, 'through dbs03, before the crash')")
    galera.podman.cli(["kill", *(galera.container(m) for m in MEMBERS)], timeout=60)
    timed("saline up after every member was killed", lambda: ok(galera.env, "up"))
    whole(galera)
    for m in MEMBERS:
        assert galera.rows(m)[-1] == "through dbs03, before the crash"
        assert "(recovered from InnoDB)" in galera.logs(m)
