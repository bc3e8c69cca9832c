"""The highly available example (examples/openstack-ha) without a container: its
clusters pass saline's checks, and the formulas render each member's part (RabbitMQ's
node name and peers, glance's transport to every member with quorum queues, haproxy's
database listener). rabbitmq's API check (files/check.py) judges cluster states given
as rabbitmqctl reports them. The real stack runs in tests/integration/test_openstack_ha.py.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any, cast

import pytest

from release_tools import release_of
from saline.errors import ModelError
from saline.formulas import FormulaSet
from saline.manifests.kubernetes import KubeOptions, kubernetes_manifests
from saline.model import load_model
from saline.runtime.process import Completed
from saline.salt.runner import RenderSession
from saline.stack import cluster_view
from tools import FORMULAS, REPO, STATE_PLACEHOLDER, example_stack

HA = REPO / "examples" / "openstack-ha"


def node(short: str) -> str:
    return f"{short}.openstack-ha.local"


@pytest.fixture(scope="module")
def files() -> Iterator[dict[tuple[str, str], str]]:
    """{(node, path): content} of the rendered configs this module reads."""
    model = load_model(str(HA))
    wanted = {
        "msg02": [["rabbitmq.configure"]],
        "ctl03": [["glance.configure"]],
        "prx02": [["haproxy.configure"]],
    }
    out: dict[tuple[str, str], str] = {}
    with RenderSession(str(HA), [str(FORMULAS)]) as session:
        for short, sls in wanted.items():
            [rendered] = session.render(node(short), model.node(node(short)).parameters, sls)
            for f in rendered:
                out[(short, f.path)] = f.content
    yield out


def test_the_ha_example_plans_a_stack_of_three_members_per_cluster() -> None:
    # load_stack runs the cluster checks (docs/formulas.md): a mistake would raise.
    stack = example_stack(STATE_PLACEHOLDER, HA, project="ha")
    svc = stack.plan.document["services"]
    for service, role in (("mariadb", "dbs"), ("rabbitmq", "msg"), ("keystone", "ctl")):
        assert {f"{service}-{role}0{i}" for i in (1, 2, 3)} <= set(svc)
    assert {"haproxy-prx01", "haproxy-prx02"} <= set(svc)
    # Each RabbitMQ member keeps its own data (its node name is in it).
    for i in (1, 2, 3):
        assert f"rabbitmq-msg0{i}-data:/var/lib/rabbitmq" in svc[f"rabbitmq-msg0{i}"]["volumes"]


def test_a_rabbitmq_member_is_named_by_its_address_and_lists_its_peers(
    files: dict[tuple[str, str], str],
) -> None:
    env = files[("msg02", "/etc/rabbitmq/rabbitmq-env.conf")]
    assert "NODENAME=rabbit@10.20.0.22" in env.splitlines()
    assert "USE_LONGNAME=true" in env.splitlines()
    conf = dict(
        line.split(" = ", 1)
        for line in files[("msg02", "/etc/rabbitmq/rabbitmq.conf")].splitlines()
        if " = " in line and not line.startswith("#")
    )
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    assert [conf[f"cluster_formation.classic_config.nodes.{i}"] for i in (1, 2, 3)] == [
        "rabbit@10.20.0.21",
        "rabbit@10.20.0.22",
        "rabbit@10.20.0.23",
    ]
    assert conf["cluster_partition_handling"] == "pause_minority"


def test_glance_reaches_every_rabbitmq_member_with_quorum_queues(
    files: dict[tuple[str, str], str],
) -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(files[("ctl03", "/etc/glance/glance-api.conf")])
    assert cfg["DEFAULT"]["transport_url"] == (
        "rabbit://openstack:ha-rabbit@10.20.0.21:5672,openstack:ha-rabbit@10.20.0.22:5672,"
        "openstack:ha-rabbit@10.20.0.23:5672/%2Fopenstack"
    )
    assert cfg["oslo_messaging_rabbit"]["rabbit_quorum_queue"] == "true"
    assert cfg["oslo_messaging_notifications"]["driver"] == "messagingv2"
    assert cfg["database"]["connection"].endswith("@10.20.0.50:3306/glance")
    assert cfg["keystone_authtoken"]["memcached_servers"] == (
        "10.20.0.31:11211,10.20.0.32:11211,10.20.0.33:11211"
    )


def test_the_example_without_a_cluster_keeps_its_rabbitmq_and_glance_settings() -> None:
    example = REPO / "examples" / "openstack"
    model = load_model(str(example))
    with RenderSession(str(example), [str(FORMULAS)]) as session:
        [msg] = session.render(
            "msg01.openstack.local",
            model.node("msg01.openstack.local").parameters,
            [["rabbitmq.configure"]],
        )
        [ctl] = session.render(
            "ctl01.openstack.local",
            model.node("ctl01.openstack.local").parameters,
            [["glance.configure"]],
        )
    text = {f.path: f.content for f in [*msg, *ctl]}
    assert "NODENAME=rabbit@localhost" in text["/etc/rabbitmq/rabbitmq-env.conf"].splitlines()
    assert "cluster_formation" not in text["/etc/rabbitmq/rabbitmq.conf"]
    glance = text["/etc/glance/glance-api.conf"]
    url = "rabbit://openstack:example-rabbit@10.10.0.20:5672/%2Fopenstack"
    assert f"transport_url = {url}" in glance
    assert "oslo_messaging" not in glance


def test_haproxy_sends_every_database_connection_to_the_first_live_member(
    files: dict[tuple[str, str], str],
) -> None:
    cfg = files[("prx02", "/etc/haproxy/haproxy.cfg")]
    section = cfg.split("listen mysql_cluster\n", 1)[1].split("\nlisten ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip()]
    assert lines[:4] == ["bind 0.0.0.0:3306", "mode tcp", "option tcplog", "balance first"]
    assert "timeout client 90m" in lines and "timeout server 90m" in lines
    assert not any(line.startswith("option httpchk") for line in lines)
    servers = [line.split()[1:3] for line in lines if line.startswith("server ")]
    assert servers == [
        [node("dbs01"), "10.20.0.11:3306"],
        [node("dbs02"), "10.20.0.12:3306"],
        [node("dbs03"), "10.20.0.13:3306"],
    ]
    # The HTTP APIs keep their HTTP checks.
    api = cfg.split("listen keystone_public_api\n", 1)[1].split("\nlisten ", 1)[0]
    assert "option httpchk GET /v3" in api and "mode tcp" not in api


# -- rabbitmq's API check ----------------------------------------------------------------


def load_check() -> ModuleType:
    path = FORMULAS / "rabbitmq" / "files" / "check.py"
    spec = importlib.util.spec_from_file_location("rabbitmq_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = load_check()
NODES = [f"rabbit@10.20.0.2{i}" for i in (1, 2, 3)]
CLUSTER = {
    "enabled": True,
    "members": [{"name": f"m{i}", "host": f"10.20.0.2{i}"} for i in (1, 2, 3)],
}


def fake_ctl(status: dict[str, Any], queues: list[dict[str, Any]]) -> Any:
    def ctl(*args: str) -> Any:
        if args[0] == "cluster_status":
            return status
        if args[0] == "list_vhosts":
            return [{"name": "/"}, {"name": "/openstack"}]
        if args[0] == "list_queues":
            return queues if args[2] == "/openstack" else []
        raise AssertionError(args)

    return ctl


def quorum(name: str, online: list[str]) -> dict[str, Any]:
    return {"name": name, "type": "quorum", "members": NODES, "online": online}


@pytest.mark.parametrize(
    ("status", "queues", "problem"),
    [
        ({"running_nodes": NODES, "alarms": [], "partitions": {}}, [quorum("q", NODES)], None),
        (
            {"running_nodes": NODES[:2], "alarms": [], "partitions": {}},
            [],
            "rabbit@10.20.0.23 not running in the cluster",
        ),
        (
            {"running_nodes": NODES, "alarms": [{"node": NODES[0], "type": "mem"}]},
            [],
            "alarms:",
        ),
        (
            {"running_nodes": NODES, "alarms": []},
            [quorum("notifications.info", NODES[1:]), {"name": "c", "type": "classic"}],
            "/openstack/notifications.info (rabbit@10.20.0.21 offline)",
        ),
    ],
    ids=["whole", "a member not running", "an alarm", "a quorum queue member offline"],
)
def test_the_check_wants_every_member_running_no_alarm_and_every_queue_member_online(
    monkeypatch: pytest.MonkeyPatch,
    status: dict[str, Any],
    queues: list[dict[str, Any]],
    problem: str | None,
) -> None:
    monkeypatch.setattr(check, "ctl", fake_ctl(status, queues))
    facts, problems, summary = check.cluster_facts(CLUSTER)
    if problem is None:
        assert problems == []
        assert summary == (
            "3 of 3 members running, no alarms, 1 quorum queues with every member online"
        )
    else:
        assert any(problem in p for p in problems), problems
    assert facts["members"] == NODES
    json.dumps(facts)  # what --json prints


# -- what `saline status` makes of a status command ----------------------------------------


class FakePodman:
    def __init__(self, code: int, stdout: str, stderr: str = "") -> None:
        self.done = Completed(("podman", "exec"), code, stdout, stderr, 0.1)

    def run_in(self, name: str, command: list[str], timeout: float) -> Completed:
        return self.done


@pytest.mark.parametrize(
    ("code", "stdout", "stderr", "healthy", "summary"),
    [
        (
            0,
            '{"healthy": true, "summary": "galera Synced, Primary, 3 of 3 members"}',
            "",
            True,
            "galera Synced, Primary, 3 of 3 members",
        ),
        (
            1,
            '{"healthy": false, "summary": "galera Donor/Desynced"}',
            "",
            False,
            "galera Donor/Desynced",
        ),
        # A command that says healthy but fails is not healthy.
        (1, '{"healthy": true, "summary": "x"}', "", False, "x"),
        (
            126,
            "",
            "OCI runtime error: no such file",
            False,
            "no status: OCI runtime error: no such file",
        ),
        (0, "not json", "", False, "no status: not json"),
    ],
)
def test_a_status_command_becomes_one_view(
    code: int, stdout: str, stderr: str, healthy: bool, summary: str
) -> None:
    view = cluster_view(cast(Any, FakePodman(code, stdout, stderr)), "c", ["status"], 5.0)
    assert view["healthy"] is healthy
    assert view["summary"] == summary


def test_kubernetes_refuses_a_clustered_service_naming_the_member_and_key() -> None:
    release, pillars = release_of(REPO / "tests" / "data" / "galera")
    formulas = FormulaSet([str(FORMULAS)])
    specs = {name: spec for name, (_, spec) in formulas.services.items()}
    with pytest.raises(ModelError) as caught:
        kubernetes_manifests(release, pillars, specs, KubeOptions())
    msg = str(caught.value)
    assert "node dbs01.galera.local" in msg
    assert "key galera:master:enabled" in msg
    assert "service mariadb on dbs01.galera.local is a member of a cluster (galera:master)" in msg
    assert "Kubernetes" in msg
