"""The local stack's plan and compose document. Pure: nothing is started here."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from saline.errors import ModelError
from saline.manifests.compose import stack_subnet
from saline.stack import Stack, compose_text, openrc, openrc_text
from tools import EXAMPLE, STATE_PLACEHOLDER, example, example_stack


def stack_of(model_dir: Path | str = EXAMPLE) -> Stack:
    # One project name (the copies' folder names differ from the example's); planning
    # writes nothing, so the state folder is a placeholder.
    return example_stack(STATE_PLACEHOLDER, model_dir)


def services(stack: Stack) -> dict[str, Any]:
    out: dict[str, Any] = stack.plan.document["services"]
    return out


def copy_example(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(EXAMPLE, target)
    return target


def test_every_node_holds_its_address_and_its_services_join_it() -> None:
    stack = stack_of()
    svc = services(stack)
    nodes = {s.name: s.node for s in stack.plan.steps if s.kind == "node"}
    assert nodes == {node.split(".")[0]: node for node in example().nodes}
    assert svc["dbs01"]["networks"]["stack"]["ipv4_address"] == "10.10.0.10"
    assert svc["prx01"]["networks"]["stack"]["ipv4_address"] == "10.10.0.40"
    assert stack.plan.subnet == "10.10.0.0/24"
    net = stack.plan.document["networks"]["stack"]["ipam"]["config"][0]
    assert net == {"subnet": "10.10.0.0/24", "gateway": "10.10.0.1"}
    assert svc["keystone"]["network_mode"] == "service:ctl01"
    assert svc["glance-api"]["network_mode"] == "service:ctl01"
    assert svc["mariadb"]["network_mode"] == "service:dbs01"
    assert svc["mariadb-databases"]["network_mode"] == "service:dbs01"


def test_services_tasks_and_their_names() -> None:
    stack = stack_of()
    kinds = {s.name: s.kind for s in stack.plan.steps}
    assert {n for n, k in kinds.items() if k == "service"} == set(example().instances)
    assert {n for n, k in kinds.items() if k == "task"} == set(example().tasks)
    task = services(stack)["keystone-db-sync"]
    assert task["command"] == ["bootstrap", "db-sync"]
    assert task["restart"] == "no"
    # A task mounts its service's volumes: keys written by one are the service's keys.
    assert (
        services(stack)["keystone-keys"]["volumes"][1:]
        == services(stack)["keystone"]["volumes"][1:]
    )


def test_order_follows_depends_and_bootstrap_phases() -> None:
    stack = stack_of()
    order = [s.name for s in stack.plan.steps]

    def before(a: str, b: str) -> bool:
        return order.index(a) < order.index(b)

    # MariaDB runs, then its databases; only then keystone's db sync, keys and identity.
    assert before("dbs01", "mariadb")
    assert before("mariadb", "mariadb-databases")
    assert before("mariadb-databases", "keystone-db-sync")
    assert before("keystone-db-sync", "keystone-keys") and before(
        "keystone-keys", "keystone-identity"
    )
    assert before("keystone-identity", "keystone")
    # glance's db sync needs only the database (its own depends), so it runs while
    # keystone starts; its registration needs keystone healthy; glance-api needs both.
    assert set(stack.plan.step("glance-api-db-sync").after) == {
        "ctl01",
        "mariadb",
        "mariadb-databases",
    }
    assert set(stack.plan.step("glance-api-register").after) >= {
        "keystone",
        "glance-api-db-sync",
    }
    assert before("glance-api-register", "glance-api")
    svc = services(stack)
    assert svc["glance-api-db-sync"]["environment"]["SALINE_WAIT_FOR"] == "10.10.0.10:3306"
    assert set(svc["glance-api-db-sync"]["depends_on"]) == {"ctl01", "mariadb"}
    assert stack.plan.step("mariadb-databases").after == ("mariadb",)
    assert set(stack.plan.step("keystone").after) == {
        "ctl01",
        "mariadb",
        "memcached",
        "mariadb-databases",
        "keystone-identity",
    }


def test_compose_conditions_and_waits_match_the_steps() -> None:
    svc = services(stack_of())
    deps = svc["keystone"]["depends_on"]
    assert deps == {
        "ctl01": {"condition": "service_started"},
        "mariadb": {"condition": "service_healthy"},
        "memcached": {"condition": "service_healthy"},
    }
    # Nothing depends_on a one-shot task (podman --requires would restart it); the
    # entrypoint waits for the tasks' markers and the dependencies' ports instead.
    tasks = {name for name, doc in svc.items() if doc["labels"]["saline.kind"] == "task"}
    for doc in svc.values():
        assert not set(doc.get("depends_on", {})) & tasks
    env = svc["keystone"]["environment"]
    assert env["SALINE_WAIT_TASKS"] == "mariadb-databases,keystone-identity"
    assert env["SALINE_WAIT_FOR"] == "10.10.0.10:3306,10.10.0.30:11211"
    assert svc["keystone-keys"]["environment"]["SALINE_WAIT_TASKS"] == (
        "mariadb-databases,keystone-db-sync"
    )
    assert svc["keystone-keys"]["environment"]["SALINE_TASK_MARK"] == "keystone-keys"
    assert "/run/saline/tasks" in svc["keystone-keys"]["volumes"][1]
    assert svc["mariadb-databases"]["environment"]["SALINE_WAIT_FOR"] == "10.10.0.10:3306"
    assert svc["glance-api-register"]["environment"]["SALINE_WAIT_FOR"] == "10.10.0.30:5000"
    # Health checks probe the node's address, as the dependents will reach it.
    assert svc["keystone"]["healthcheck"]["test"][:5] == [
        "CMD",
        "saline-entrypoint",
        "health",
        "http",
        "http://10.10.0.30:5000/v3",
    ]
    assert svc["mariadb"]["healthcheck"]["test"] == [
        "CMD",
        "mariadb-admin",
        "--protocol=socket",
        "ping",
    ]


def test_secrets_stay_out_of_the_compose_file() -> None:
    stack = stack_of()
    text = compose_text(stack, str(EXAMPLE))
    assert stack.secrets  # the example has secrets...
    for secret in stack.secrets:
        assert secret not in text  # ...and the compose file names none of them
    pillar_mount = services(stack)["keystone"]["volumes"][0]
    assert pillar_mount.endswith(":/run/saline/pillar.json:ro")
    assert "ctl01.openstack.local.json" in pillar_mount


def test_the_document_is_deterministic() -> None:
    assert compose_text(stack_of(), str(EXAMPLE)) == compose_text(stack_of(), str(EXAMPLE))


def test_a_pillar_change_reaches_only_its_node(tmp_path: Path) -> None:
    before = services(stack_of())
    model = copy_example(tmp_path)
    node = model / "nodes" / "dbs01.openstack.local.yml"
    node.write_text(node.read_text() + "  mysql:\n    server:\n      max_connections: 500\n")
    after = services(stack_of(model))
    changed = {
        name
        for name in before
        if before[name]["labels"] != after[name]["labels"]
        or before[name].get("environment") != after[name].get("environment")
    }
    # The node's service and its task see a new pillar (recreated, task run again).
    assert changed == {"mariadb", "mariadb-databases"}
    assert (
        before["mariadb-databases"]["labels"]["saline.inputs"]
        != (after["mariadb-databases"]["labels"]["saline.inputs"])
    )


def test_a_node_without_an_address_is_named(tmp_path: Path) -> None:
    model = copy_example(tmp_path)
    node = model / "nodes" / "msg01.openstack.local.yml"
    node.write_text(node.read_text().replace("    single_address: 10.10.0.20\n", ""))
    with pytest.raises(ModelError) as e:
        stack_of(model)
    msg = str(e.value)
    assert "node msg01.openstack.local" in msg
    assert "_param:single_address" in msg


def test_a_bad_address_is_named(tmp_path: Path) -> None:
    model = copy_example(tmp_path)
    node = model / "nodes" / "msg01.openstack.local.yml"
    node.write_text(node.read_text().replace("10.10.0.20", "10.10.0.300"))
    with pytest.raises(ModelError) as e:
        stack_of(model)
    # Where the value was set: file and line.
    assert str(e.value).startswith("nodes/msg01.openstack.local.yml:6, node msg01.openstack.local")
    assert "'10.10.0.300' is not an IPv4 address" in str(e.value)


def test_a_dependency_no_node_runs_is_an_error(tmp_path: Path) -> None:
    model = copy_example(tmp_path)
    (model / "nodes" / "dbs01.openstack.local.yml").unlink()
    with pytest.raises(ModelError, match=r"keystone on ctl01\.openstack\.local depends on mariadb"):
        stack_of(model)


def test_subnet_rules() -> None:
    assert str(stack_subnet({"a": "10.1.2.3", "b": "10.1.2.200"})) == "10.1.2.0/24"
    assert str(stack_subnet({"a": "10.1.2.3", "b": "10.1.3.3"})) == "10.1.2.0/23"
    with pytest.raises(ModelError, match="gateway"):
        stack_subnet({"a": "10.1.2.1", "b": "10.1.2.7"})
    with pytest.raises(ModelError, match="share the address"):
        stack_subnet({"a": "10.1.2.7", "b": "10.1.2.7"})
    with pytest.raises(ModelError, match="one /16"):
        stack_subnet({"a": "10.1.2.7", "b": "10.2.2.7"})


def test_openrc_comes_from_the_keystone_formula_and_the_model() -> None:
    env = openrc(stack_of())
    assert env["OS_AUTH_URL"] == "http://10.10.0.40:5000/v3"  # the public endpoint (haproxy)
    assert env["OS_USERNAME"] == "admin"
    assert env["OS_PASSWORD"] == "example-admin"
    assert env["OS_PROJECT_NAME"] == "admin"
    assert env["OS_REGION_NAME"] == "RegionOne"
    text = openrc_text(env)
    assert "export OS_AUTH_URL=http://10.10.0.40:5000/v3\n" in text


def _with_glance_openrc(tmp_path: Path, entries: str) -> Stack:
    formulas = tmp_path / "formulas"
    shutil.copytree(Path(EXAMPLE).parents[1] / "formulas", formulas)
    meta = formulas / "glance" / "formula.yml"
    text = meta.read_text()
    anchor = "    depends: [mariadb, memcached]\n"
    assert text.count(anchor) == 1, "glance's formula.yml changed: update this test"
    meta.write_text(text.replace(anchor, anchor + "    openrc:\n" + entries))
    return example_stack(STATE_PLACEHOLDER, formula_dirs=[str(formulas)])


def test_openrc_merges_what_every_formula_declares(tmp_path: Path) -> None:
    env = openrc(
        _with_glance_openrc(
            tmp_path,
            '      OS_IMAGE_API_VERSION: "2"\n      OS_REGION_NAME: "{identity[region]}"\n',
        )
    )
    assert env["OS_IMAGE_API_VERSION"] == "2"  # glance's own
    assert env["OS_AUTH_URL"] == "http://10.10.0.40:5000/v3"  # keystone's, still there
    assert env["OS_REGION_NAME"] == "RegionOne"  # both say so: the same value


def test_openrc_values_that_disagree_are_a_model_error(tmp_path: Path) -> None:
    stack = _with_glance_openrc(tmp_path, "      OS_INTERFACE: internal\n")
    with pytest.raises(
        ModelError, match=r"OS_INTERFACE .* declared by both keystone and glance-api,"
    ):
        openrc(stack)
