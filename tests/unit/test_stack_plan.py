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
    assert svc["ctl02"]["networks"]["stack"]["ipv4_address"] == "10.10.0.31"
    # Replicas: keystone and glance-api on both controllers, named SERVICE-NODE.
    assert svc["keystone-ctl01"]["network_mode"] == "service:ctl01"
    assert svc["keystone-ctl02"]["network_mode"] == "service:ctl02"
    assert svc["glance-api-ctl01"]["network_mode"] == "service:ctl01"
    assert svc["glance-api-ctl02"]["network_mode"] == "service:ctl02"
    assert svc["mariadb"]["network_mode"] == "service:dbs01"
    assert svc["mariadb-databases"]["network_mode"] == "service:dbs01"


def test_memcached_is_one_instance_that_every_replica_uses() -> None:
    stack = stack_of()
    svc = services(stack)
    assert [(s.name, s.node) for s in stack.plan.steps if s.service == "memcached"] == [
        ("memcached", "ctl01.openstack.local")
    ]
    for name in ("keystone-ctl01", "keystone-ctl02", "glance-api-ctl01", "glance-api-ctl02"):
        assert "memcached" in stack.plan.step(name).after
        assert "10.10.0.30:11211" in svc[name]["environment"]["SALINE_WAIT_FOR"]


def test_services_tasks_and_their_names() -> None:
    stack = stack_of()
    kinds = {s.name: s.kind for s in stack.plan.steps}
    assert {n for n, k in kinds.items() if k == "service"} == set(example().instances)
    assert {n for n, k in kinds.items() if k == "task"} == set(example().tasks)
    task = services(stack)["keystone-db-sync"]
    assert task["command"] == ["bootstrap", "db-sync"]
    assert task["restart"] == "no"
    # A task mounts its service's volumes: what it writes there is the service's.
    svc = services(stack)
    assert svc["glance-api-db-sync"]["volumes"][1:] == svc["glance-api-ctl01"]["volumes"][1:]


def test_a_services_volumes_are_shared_by_its_instances() -> None:
    stack = stack_of()
    svc = services(stack)
    volumes = stack.plan.document["volumes"]
    # One file store for every glance-api: an image uploaded through one is served by all.
    assert volumes["glance-api-images"] == {
        "name": "openstack_glance-api-images",
        "labels": {"saline.service": "glance-api"},
    }
    for name in ("glance-api-ctl01", "glance-api-ctl02", "glance-api-register"):
        assert "glance-api-images:/var/lib/glance/images" in svc[name]["volumes"]
    # keystone keeps nothing: its keys come from the model.
    assert not [v for v in volumes if v.startswith("keystone")]
    assert svc["keystone-ctl01"]["volumes"][1:] == ["tasks:/run/saline/tasks"]


def test_order_follows_depends_and_bootstrap_phases() -> None:
    stack = stack_of()
    order = [s.name for s in stack.plan.steps]

    def before(a: str, b: str) -> bool:
        return order.index(a) < order.index(b)

    # MariaDB runs, then its databases; only then keystone's db sync and identity, once,
    # and then both keystones.
    assert before("dbs01", "mariadb")
    assert before("mariadb", "mariadb-databases")
    assert before("mariadb-databases", "keystone-db-sync")
    assert before("keystone-db-sync", "keystone-identity")
    assert before("keystone-identity", "keystone-ctl01")
    assert before("keystone-identity", "keystone-ctl02")
    # glance's db sync needs only the database (its own depends), so it runs while
    # keystone starts; its registration needs keystone healthy; glance-api needs both.
    assert set(stack.plan.step("glance-api-db-sync").after) == {
        "ctl01",
        "mariadb",
        "mariadb-databases",
    }
    assert set(stack.plan.step("glance-api-register").after) >= {
        "keystone-ctl01",
        "keystone-ctl02",
        "glance-api-db-sync",
    }
    assert before("glance-api-register", "glance-api-ctl01")
    assert before("glance-api-register", "glance-api-ctl02")
    svc = services(stack)
    assert svc["glance-api-db-sync"]["environment"]["SALINE_WAIT_FOR"] == "10.10.0.10:3306"
    assert set(svc["glance-api-db-sync"]["depends_on"]) == {"ctl01"}
    assert stack.plan.step("mariadb-databases").after == ("mariadb",)
    assert set(stack.plan.step("keystone-ctl01").after) == {
        "ctl01",
        "mariadb",
        "memcached",
        "mariadb-databases",
        "keystone-identity",
    }
    assert set(stack.plan.step("keystone-ctl02").after) == {
        "ctl02",
        "mariadb",
        "memcached",
        "mariadb-databases",
        "keystone-identity",
    }


def test_host_discovery_runs_once_the_schedulers_and_compute_services_run() -> None:
    """nova's discover-hosts (a needs_running task of nova-scheduler with its own
    depends): after every scheduler instance and every nova-compute, once; nothing waits
    for it but `saline up` itself (a server asked for after `up` finds its host mapped)."""
    stack = stack_of()
    step = stack.plan.step("nova-scheduler-discover-hosts")
    assert set(step.after) == {"nova-scheduler-ctl01", "nova-scheduler-ctl02", "nova-compute"}
    assert not [s.name for s in stack.plan.steps if step.name in s.after]


def test_a_needs_running_tasks_dependency_no_node_runs_is_named(tmp_path: Path) -> None:
    model = copy_example(tmp_path)
    (model / "nodes" / "cmp01.openstack.local.yml").unlink()
    with pytest.raises(ModelError, match="depends on nova-compute, which no node of the model"):
        stack_of(model)


def test_compose_conditions_and_waits_match_the_steps() -> None:
    svc = services(stack_of())
    # Every container depends_on its node only (its network namespace): podman-compose
    # recreates the running dependents of a service it recreates, so a depends_on
    # memcached would restart every keystone with it. The entrypoint waits for the tasks'
    # markers and the dependencies' ports instead.
    nodes = {name for name, doc in svc.items() if doc["labels"]["saline.kind"] == "node"}
    for name, doc in svc.items():
        if name in nodes:
            assert "depends_on" not in doc
        else:
            node = doc["network_mode"].removeprefix("service:")
            assert node in nodes
            assert doc["depends_on"] == {node: {"condition": "service_started"}}, name
    for keystone in ("keystone-ctl01", "keystone-ctl02"):
        env = svc[keystone]["environment"]
        assert env["SALINE_WAIT_TASKS"] == "mariadb-databases,keystone-identity"
        assert env["SALINE_WAIT_FOR"] == "10.10.0.10:3306,10.10.0.30:11211"
    assert svc["keystone-identity"]["environment"]["SALINE_WAIT_TASKS"] == (
        "mariadb-databases,keystone-db-sync"
    )
    assert svc["keystone-identity"]["environment"]["SALINE_TASK_MARK"] == "keystone-identity"
    assert "/run/saline/tasks" in svc["keystone-identity"]["volumes"][1]
    assert svc["mariadb-databases"]["environment"]["SALINE_WAIT_FOR"] == "10.10.0.10:3306"
    # glance's registration needs every keystone.
    assert svc["glance-api-register"]["environment"]["SALINE_WAIT_FOR"] == (
        "10.10.0.30:5000,10.10.0.31:5000"
    )
    # Health checks probe the node's address, as the dependents will reach it.
    assert svc["keystone-ctl01"]["healthcheck"]["test"][:5] == [
        "CMD",
        "saline-entrypoint",
        "health",
        "http",
        "http://10.10.0.30:5000/v3",
    ]
    assert svc["keystone-ctl02"]["healthcheck"]["test"][4] == "http://10.10.0.31:5000/v3"
    # An exec check runs in the container as the formula says.
    assert svc["mariadb"]["healthcheck"]["test"] == [
        "CMD",
        "python3",
        "/usr/local/lib/saline/mariadb-server.py",
        "health",
    ]


def test_secrets_stay_out_of_the_compose_file() -> None:
    stack = stack_of()
    text = compose_text(stack, str(EXAMPLE))
    assert stack.secrets  # the example has secrets...
    for secret in stack.secrets:
        assert secret not in text  # ...and the compose file names none of them
    for node in ("ctl01", "ctl02"):
        keystone = services(stack)[f"keystone-{node}"]
        pillar_mount = keystone["volumes"][0]
        assert pillar_mount.endswith(f"/pillar/{node}.openstack.local:/run/saline/pillar:ro")
        assert keystone["environment"]["SALINE_PILLAR"] == "/run/saline/pillar/keystone.json"
    # The keys are secrets of the model, written at run time from the pillar.
    assert "NnS7BZoDUkOsL8eVB5VteLw5Y8-i6gEdq_hciDcKti8=" in stack.secrets


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
    # The node's service sees a new pillar (recreated); its task does not use that value
    # (its inputs are mysql:server:database), so it does not run again.
    assert changed == {"mariadb"}


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


# --- bootstrap task scopes and inputs ---------------------------------------------------


def _formulas_with(tmp_path: Path, edits: dict[str, tuple[str, str]]) -> str:
    """A copy of the shipped formulas with ``edits`` (formula.yml of a formula -> (old,
    new) text) applied; returns its folder."""
    formulas = tmp_path / "formulas"
    shutil.copytree(Path(EXAMPLE).parents[1] / "formulas", formulas)
    for name, (old, new) in edits.items():
        meta = formulas / name / "formula.yml"
        text = meta.read_text()
        assert text.count(old) == 1, f"{name}'s formula.yml changed: update this test"
        meta.write_text(text.replace(old, new))
    return str(formulas)


#: keystone's first bootstrap task in its formula.yml.
KEYSTONE_TASKS = "    bootstrap:\n      - name: db-sync\n"


def _keystone_with_tasks(tmp_path: Path, tasks: str) -> Stack:
    """The example with ``tasks`` (formula.yml text) listed first among keystone's."""
    first = KEYSTONE_TASKS.replace("    bootstrap:\n", "    bootstrap:\n" + tasks)
    formulas = _formulas_with(tmp_path, {"keystone": (KEYSTONE_TASKS, first)})
    return example_stack(STATE_PLACEHOLDER, formula_dirs=[formulas])


def test_a_service_scoped_task_is_one_step_that_every_instance_waits_for() -> None:
    stack = stack_of()
    svc = services(stack)
    checked = []
    for service in example().replicated:  # keystone, glance-api...: two instances each
        instances = [s for s in stack.plan.steps if s.kind == "service" and s.service == service]
        assert len(instances) == 2
        # The tasks before the service (a task that needs it running comes after).
        tasks = [
            s
            for s in stack.plan.steps
            if s.kind == "task"
            and s.service == service
            and not any(i.name in s.after for i in instances)
        ]
        if not tasks:
            continue
        checked.append(service)
        assert {t.scope for t in tasks} == {"service"}
        for t in tasks:
            # One step, named SERVICE-TASK, on the first node, with its pillar.
            assert t.name == f"{service}-{t.task}"
            assert t.node == "ctl01.openstack.local"
            assert svc[t.name]["network_mode"] == "service:ctl01"
            assert "/pillar/ctl01.openstack.local:" in svc[t.name]["volumes"][0]
            assert svc[t.name]["environment"]["SALINE_PILLAR"] == "/run/saline/pillar/tasks.json"
            assert svc[t.name]["labels"]["saline.scope"] == "service"
        # Every instance waits for the last of them (which waits for the others).
        last = tasks[-1].name
        for inst in instances:
            assert last in inst.after
            assert last in svc[inst.name]["environment"]["SALINE_WAIT_TASKS"].split(",")
    assert {"keystone", "glance-api", "placement-api", "nova-api"} <= set(checked)
    # One task run for two instances, not two.
    assert sorted(s.name for s in stack.plan.steps if s.task == "db-sync") == sorted(
        f"{service}-db-sync" for service in checked
    )
    assert "placement-api" in example().replicated


def test_instance_scoped_tasks_run_once_per_instance(tmp_path: Path) -> None:
    """An instance-scoped task listed before a service-scoped one: one step per instance
    (INSTANCE-TASK, in its node), each instance waits for its own; the service-scoped task
    after it waits for every instance's."""
    stack = _keystone_with_tasks(
        tmp_path,
        "      - name: prepare\n        states: [keystone.bootstrap.db_sync]\n",
    )
    svc = services(stack)
    one, two = stack.plan.step("keystone-ctl01-prepare"), stack.plan.step("keystone-ctl02-prepare")
    assert (one.scope, one.node, two.node) == (
        "instance",
        "ctl01.openstack.local",
        "ctl02.openstack.local",
    )
    assert svc["keystone-ctl02-prepare"]["network_mode"] == "service:ctl02"
    assert "keystone-prepare" not in svc
    assert {"keystone-ctl01-prepare", "keystone-ctl02-prepare"} <= set(
        stack.plan.step("keystone-db-sync").after
    )
    assert "keystone-ctl01-prepare" not in stack.plan.step("keystone-ctl02").after


def test_an_instance_task_after_a_service_task_waits_for_it(tmp_path: Path) -> None:
    formulas = _formulas_with(
        tmp_path,
        {
            "keystone": (
                "          - keystone:server:bind:port\n",
                "          - keystone:server:bind:port\n"
                "      - name: warm\n        states: [keystone.bootstrap.db_sync]\n",
            )
        },
    )
    stack = example_stack(STATE_PLACEHOLDER, formula_dirs=[formulas])
    for node in ("ctl01", "ctl02"):
        warm = stack.plan.step(f"keystone-{node}-warm")
        assert "keystone-identity" in warm.after
        # The instance waits for its own task only (which waits for the service's).
        assert set(stack.plan.step(f"keystone-{node}").after) & {
            "keystone-ctl01-warm",
            "keystone-ctl02-warm",
            "keystone-identity",
        } == {f"keystone-{node}-warm"}


def test_a_service_scoped_task_of_a_running_service_waits_for_every_instance(
    tmp_path: Path,
) -> None:
    """needs_running and scope service: once every instance is healthy; what depends on
    the service waits for it."""
    stack = _keystone_with_tasks(
        tmp_path,
        "      - name: catalog\n        states: [keystone.bootstrap.identity]\n"
        "        needs_running: true\n        scope: service\n",
    )
    svc = services(stack)
    step = stack.plan.step("keystone-catalog")
    assert set(step.after) == {"keystone-ctl01", "keystone-ctl02"}
    assert set(svc["keystone-catalog"]["depends_on"]) == {"ctl01"}
    assert svc["keystone-catalog"]["environment"]["SALINE_WAIT_FOR"] == (
        "10.10.0.30:5000,10.10.0.31:5000"
    )
    assert "keystone-catalog" in stack.plan.step("glance-api-register").after


def test_a_task_runs_again_only_when_its_own_inputs_change(tmp_path: Path) -> None:
    before = services(stack_of())
    model = copy_example(tmp_path)
    cls = model / "classes" / "system" / "keystone" / "server.yml"
    text = cls.read_text()
    for old, new in (
        ("expiration: 3600", "expiration: 7200"),
        ("admin_project: admin", "admin_project: cloud-admin"),
    ):
        assert text.count(old) == 1
        text = text.replace(old, new)
    cls.write_text(text)
    after = services(stack_of(model))

    def inputs(name: str, doc: dict[str, Any]) -> str:
        return str(doc[name]["labels"]["saline.inputs"])

    changed = {n for n in before if inputs(n, before) != inputs(n, after)}
    # Both keystones (a container's definition follows its node's whole pillar here);
    # of the tasks only the identity bootstrap (admin_project is one of its inputs): not
    # the db sync (its input is the database) nor glance's.
    assert {"keystone-ctl01", "keystone-ctl02"} <= changed
    assert {n for n in changed if before[n]["labels"]["saline.kind"] == "task"} == {
        "keystone-identity"
    }


def test_a_task_records_its_inputs_not_the_nodes_pillar() -> None:
    svc = services(stack_of())
    task = svc["keystone-db-sync"]["labels"]
    assert "saline.pillar" not in task and len(task["saline.task-inputs"]) == 16
    assert "saline.pillar" in svc["keystone-ctl01"]["labels"]


def test_instances_that_disagree_on_a_service_tasks_inputs_are_an_error(tmp_path: Path) -> None:
    model = copy_example(tmp_path)
    node = model / "nodes" / "ctl02.openstack.local.yml"
    node.write_text(
        node.read_text() + "  keystone:\n    server:\n      database:\n        host: 10.10.0.11\n"
    )
    with pytest.raises(ModelError) as e:
        stack_of(model)
    msg = str(e.value)
    assert msg.startswith("nodes/ctl02.openstack.local.yml:")
    assert (
        "bootstrap task db-sync of keystone runs once for all its instances, but "
        "keystone:server:database differs between ctl01.openstack.local and "
        "ctl02.openstack.local"
    ) in msg
