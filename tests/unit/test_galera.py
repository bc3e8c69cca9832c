"""mariadb's Galera cluster without a container: the stack's plan (a volume per member),
the rendered option files, and the start decision of files/server.py (which member
starts the cluster, which join, which wait). The real cluster runs in
tests/integration/test_galera.py."""

from __future__ import annotations

import configparser
import importlib.util
import json
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from saline.model import load_model
from saline.salt.runner import RenderSession
from tools import FORMULAS, REPO, STATE_PLACEHOLDER, example_stack

GALERA = REPO / "tests" / "data" / "galera"
NODES = [f"dbs0{i}.galera.local" for i in (1, 2, 3)]


def load_server() -> ModuleType:
    path = FORMULAS / "mariadb" / "files" / "server.py"
    spec = importlib.util.spec_from_file_location("mariadb_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


server = load_server()


# -- the stack: one volume per member ----------------------------------------------------


def test_each_member_has_its_own_data_and_the_example_keeps_one_volume() -> None:
    stack = example_stack(STATE_PLACEHOLDER, GALERA, project="galera")
    doc = stack.plan.document
    svc = doc["services"]
    for short in ("dbs01", "dbs02", "dbs03"):
        mounts = svc[f"mariadb-{short}"]["volumes"]
        assert f"mariadb-{short}-data:/var/lib/mysql" in mounts
        assert f"mariadb-{short}-run:/run/mysqld" in mounts
        assert doc["volumes"][f"mariadb-{short}-data"]["name"] == f"galera_mariadb-{short}-data"
    assert "mariadb-data" not in doc["volumes"]
    # The service-scoped task runs beside the first member, with its volumes; it counts as
    # done while every member's data is the data it ran against.
    assert "mariadb-dbs01-data:/var/lib/mysql" in svc["mariadb-databases"]["volumes"]
    task = stack.plan.step("mariadb-databases")
    assert {f"galera_mariadb-dbs0{i}-data" for i in (1, 2, 3)} <= set(task.volumes)
    assert task.after == ("mariadb-dbs01", "mariadb-dbs02", "mariadb-dbs03")
    # One instance (the example): the service's volume, as before.
    one = example_stack(STATE_PLACEHOLDER).plan.document
    assert "mariadb-data:/var/lib/mysql" in one["services"]["mariadb"]["volumes"]


# -- the option files --------------------------------------------------------------------


def rendered(node: str) -> configparser.ConfigParser:
    model = load_model(str(GALERA))
    with RenderSession(str(GALERA), [str(FORMULAS)]) as session:
        [files] = session.render(node, model.node(node).parameters, [["mariadb.configure"]])
    text = {f.path: f.content for f in files}["/etc/mysql/mariadb.conf.d/99-saline.cnf"]
    parser = configparser.ConfigParser(interpolation=None, allow_no_value=True)
    parser.read_string(text)
    return parser


def test_each_member_gets_the_wsrep_settings_and_only_the_master_is_the_seed() -> None:
    for i, node in enumerate(NODES, 1):
        cnf = rendered(node)
        mysqld = cnf["mysqld"]
        assert mysqld["wsrep_on"] == "ON"
        assert mysqld["wsrep_provider"] == "/usr/lib/galera/libgalera_smm.so"
        assert mysqld["wsrep_cluster_name"] == "openstack"
        assert mysqld["wsrep_cluster_address"] == (
            "gcomm://10.30.0.11:4567,10.30.0.12:4567,10.30.0.13:4567"
        )
        assert mysqld["wsrep_node_name"] == node
        assert mysqld["wsrep_node_address"] == f"10.30.0.1{i}"
        assert mysqld["wsrep_sst_method"] == "rsync"
        assert mysqld["binlog_format"] == "ROW"
        assert mysqld["innodb_autoinc_lock_mode"] == "2"
        assert mysqld["init-file"] == "/etc/mysql/saline-admin.sql"
        assert cnf["saline-galera"]["seed"] == ("1" if i == 1 else "0")


# -- the start decision ------------------------------------------------------------------

MEMBERS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
UUID = "6b1b5f8a-ecbc-11f1-81ed-875394e7bc4a"
OTHER = "11111111-ecbc-11f1-81ed-875394e7bc4a"


def pos(seqno: int = -1, uuid: str | None = UUID, safe: bool = False, seed: bool = False) -> Any:
    return server.Position(uuid or server.ZERO_UUID, seqno, safe, seed=seed)


def waiting(p: Any) -> Any:
    return server.Seen("waiting", p)


RUNNING = server.Seen("running")
UNKNOWN = server.Seen("unknown")
FRESH = pos(uuid=None)

# (what each member knows or shows: [member 1, member 2, member 3]; what each decides)
CASES: dict[str, tuple[list[Any], list[str]]] = {
    "a new cluster: the seed starts it, the others wait for it": (
        [pos(uuid=None, seed=True), FRESH, FRESH],
        ["bootstrap", "wait", "wait"],
    ),
    "the seed need not be the first member": (
        [FRESH, FRESH, pos(uuid=None, seed=True)],
        ["wait", "wait", "bootstrap"],
    ),
    "after a stop, the highest seqno starts, whatever the seed": (
        [pos(10, seed=True), pos(12), pos(11)],
        ["wait", "bootstrap", "wait"],
    ),
    "equal seqnos: safe_to_bootstrap (the last to leave) first": (
        [pos(12), pos(12), pos(12, safe=True)],
        ["wait", "wait", "bootstrap"],
    ),
    "equal seqnos, none safe (killed): the first member": (
        [pos(7), pos(7), pos(7)],
        ["bootstrap", "wait", "wait"],
    ),
    "a member without data (new volume) joins the members that have some": (
        [pos(uuid=None, seed=True), pos(5), pos(4)],
        ["wait", "bootstrap", "wait"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_member_reaches_the_same_decision(case: str) -> None:
    positions, want = CASES[case]
    got = []
    for i, me in enumerate(MEMBERS):
        seen = {m: waiting(positions[j]) for j, m in enumerate(MEMBERS) if m != me}
        action, _why = server.decide(MEMBERS, me, positions[i], seen)
        got.append(action)
    assert got == want
    assert got.count("bootstrap") == 1


def test_a_running_member_is_joined_and_an_unknown_one_waited_for() -> None:
    me, other, third = MEMBERS
    assert server.decide(MEMBERS, me, pos(99), {other: RUNNING, third: UNKNOWN}) == (
        "join",
        "10.0.0.2 runs",
    )
    # Even the most advanced member waits while one has not told its position: that one
    # may have committed more.
    action, why = server.decide(
        MEMBERS, me, pos(99, safe=True), {other: waiting(pos(1)), third: UNKNOWN}
    )
    assert (action, why) == ("wait", "no answer from 10.0.0.3")


def test_data_of_two_clusters_stops_everything() -> None:
    me, other, third = MEMBERS
    action, why = server.decide(
        MEMBERS, me, pos(3), {other: waiting(pos(9, uuid=OTHER)), third: waiting(FRESH)}
    )
    assert action == "error"
    assert f"10.0.0.1 {UUID}:3; 10.0.0.2 {OTHER}:9" in why


def test_grastate_and_recovery_output_are_read() -> None:
    text = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   -1\nsafe_to_bootstrap: 0\n"
    )
    assert server.read_grastate(text) == {
        "version": "2.1",
        "uuid": UUID,
        "seqno": "-1",
        "safe_to_bootstrap": "0",
    }
    log = (
        "2026-11-30 12:31:34 0 [Note] InnoDB: ...\n"
        f"2026-11-30 12:31:34 0 [Note] WSREP: Recovered position: {UUID}:14\n"
    )
    assert server.recovered_position(log) == (UUID, 14)
    assert server.recovered_position("nothing here") is None
    assert server.cluster_members("gcomm://a:4567,b,c:4000?pc.wait_prim=no") == [
        ("a", 4567),
        ("b", 4567),
        ("c", 4000),
    ]


def test_own_position_from_grastate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No grastate.dat: never in a cluster.
    assert server.own_position(str(tmp_path), True, "n") == server.Position(
        server.ZERO_UUID, -1, False, seed=True, name="n"
    )
    # A clean stop: grastate.dat has it all.
    grastate = tmp_path / "grastate.dat"
    grastate.write_text(f"version: 2.1\nuuid: {UUID}\nseqno: 42\nsafe_to_bootstrap: 1\n")
    assert server.own_position(str(tmp_path), False, "n") == server.Position(
        UUID, 42, True, name="n"
    )
    # Killed: InnoDB has it (mariadbd --wsrep-recover).
    grastate.write_text(f"version: 2.1\nuuid: {server.ZERO_UUID}\nseqno: -1\n")
    monkeypatch.setattr(server, "recover", lambda datadir: (UUID, 17))
    assert server.own_position(str(tmp_path), False, "n") == server.Position(
        UUID, 17, False, recovered=True, name="n"
    )
    # The member that starts the cluster says it is safe to.
    grastate.write_text(f"version: 2.1\nuuid: {UUID}\nseqno: -1\nsafe_to_bootstrap: 0\n")
    server.set_safe_to_bootstrap(str(tmp_path))
    assert "safe_to_bootstrap: 1\n" in grastate.read_text()
    assert f"uuid: {UUID}\n" in grastate.read_text()


def test_a_waiting_member_announces_its_position(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(server, "ANNOUNCE_PORT", port)
    mine = server.Position(UUID, 5, True, seed=True, name="dbs01")
    announcer = server.Announcer(mine)
    try:
        # Nothing on the Galera port: the member waits, and says where it is.
        seen = server.probe("127.0.0.1", 1)
        assert seen == server.Seen("waiting", mine)
        line = socket.create_connection(("127.0.0.1", port)).makefile().readline()
        assert json.loads(line)["seqno"] == 5
    finally:
        announcer.close()
    assert server.probe("127.0.0.1", 1) == UNKNOWN
    # Its Galera port answers: it runs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        assert server.probe("127.0.0.1", listener.getsockname()[1]) == RUNNING
