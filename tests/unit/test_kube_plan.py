"""Planning on Kubernetes (saline.lifecycle.kube_plan, pure): the waves of the example's
objects, what the server's dry run says applying them does (created, changed fields,
pruned, kept, unchanged; secrets masked), what runs read back from the objects, the plan
as text and JSON, and the admin's credentials with reachable addresses.

Releases come from the real Kubernetes example with given config files (release_tools,
no Salt); "live" objects are the manifests as a server returns them (status, managed
fields and versions added): what the real server does is in the integration test.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from release_tools import edit, release_of
from saline.formulas import FormulaSet
from saline.images import services_by_node
from saline.lifecycle.kube_plan import (
    KubePlan,
    Wave,
    endpoints_of,
    field_changes,
    key,
    kube_plan_text,
    object_changes,
    observed,
    openrc_of,
    plan_waves,
    reachable,
    reachable_openrc,
)
from saline.lifecycle.plan import Current, make_plan
from saline.manifests.kubernetes import KubeOptions, kubernetes_manifests
from saline.model import load_model
from saline.model.secrets import secret_values
from saline.release import Release
from tools import FORMULAS, REPO

KUBE = REPO / "examples" / "openstack-kubernetes"
FORMULA_SET = FormulaSet([str(FORMULAS)])
SPECS = {name: spec for name, (_, spec) in FORMULA_SET.services.items()}

Obj = dict[str, Any]


def example(model: Path = KUBE) -> tuple[Release, dict[str, Any], list[Obj]]:
    release, pillars = release_of(model)
    return release, pillars, kubernetes_manifests(release, pillars, SPECS, KubeOptions())


def served(obj: Obj, version: int = 7) -> Obj:
    """``obj`` as a server returns it: versions, managed fields, status, defaults."""
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    meta.update(
        resourceVersion=str(version),
        uid="0000",
        generation=1,
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[{"manager": "saline", "operation": "Apply"}],
    )
    out["status"] = {"observedGeneration": 1}
    return out


def where(waves: tuple[Wave, ...]) -> dict[tuple[str, str], int]:
    return {key(o): w.number for w in waves for o in w.objects}


# -- waves ---------------------------------------------------------------------------------


def test_the_example_waves_follow_the_dependency_order() -> None:
    release, _, objects = example()
    waves = plan_waves(objects, release)
    assert [w.name for w in waves] == [
        "namespace",
        "config",
        "stateful (mariadb, rabbitmq)",
        "deployments (memcached)",
        "later (mariadb, rabbitmq)",
        "bootstrap (keystone)",
        "deployments (keystone)",
        "bootstrap (glance-api)",
        "deployments (glance-api)",
        "prune",
    ]
    found = where(waves)
    assert sorted(found) == sorted(key(o) for o in objects)  # each object once
    # Everything that is not a workload or a Job comes first, all together.
    config = {k for k, n in found.items() if n == 2}
    assert config == {
        key(o)
        for o in objects
        if o["kind"] not in ("Namespace", "StatefulSet", "Deployment", "Job")
    }
    # Every workload and Job after the workloads of what its service depends on; a task
    # that needs its service running after that service.
    by_service = {
        (o["metadata"]["labels"]["app.kubernetes.io/name"], o["kind"]): found[key(o)]
        for o in objects
        if o["kind"] in ("StatefulSet", "Deployment")
    }
    workload = {svc: n for (svc, _), n in by_service.items()}
    for t in release.tasks:
        if t.scope != "service":
            continue
        [job] = [
            o
            for o in objects
            if o["kind"] == "Job" and o["metadata"]["annotations"]["saline/task"] == t.key
        ]
        for dep in t.depends:
            if dep != t.service:
                assert workload[dep] < found[key(job)], (t.key, dep)
        if t.needs_running:
            assert workload[t.service] < found[key(job)]
        else:
            assert found[key(job)] < workload[t.service]
    for inst in release.instances:
        for dep in inst.depends:
            assert workload[dep] < workload[inst.service]


def test_a_services_jobs_run_in_its_formulas_order_one_at_a_time() -> None:
    release, _, objects = example()
    waves = plan_waves(list(reversed(objects)), release)  # the input order does not matter
    [keystone] = [w for w in waves if w.name == "bootstrap (keystone)"]
    tasks = [o["metadata"]["annotations"]["saline/task"] for o in keystone.objects]
    assert tasks == ["keystone/db-sync", "keystone/identity"]
    assert keystone.one_at_a_time and keystone.waits
    assert not waves[1].waits and not waves[1].one_at_a_time
    assert [w.as_dict()["objects"] for w in waves[:1]] == [["Namespace openstack"]]


def test_a_kind_saline_does_not_order_is_refused() -> None:
    release, _, _ = example()
    odd = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    with pytest.raises(ValueError, match="does not know when to apply a Pod"):
        plan_waves([odd], release)


# -- object changes ------------------------------------------------------------------------


def test_what_the_server_would_store_unchanged_is_unchanged() -> None:
    release, _, objects = example()
    waves = plan_waves(objects, release)
    live = {key(o): served(o) for o in objects}
    dry = {key(o): served(o, version=8) for o in objects}  # only server fields differ
    changes = object_changes(waves, live, dry, live, set())
    assert {c.action for c in changes} == {"unchanged"}
    assert len(changes) == len(objects)


def test_a_keystone_value_changes_its_objects_and_prunes_the_old_config(tmp_path: Path) -> None:
    _, _, objects = example()
    model = tmp_path / "model"
    shutil.copytree(KUBE, model)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    after, _, new_objects = example(model)
    waves = plan_waves(new_objects, after)
    live = {key(o): served(o) for o in objects}
    # The server's dry run of the new objects: for an object that exists, it keeps the
    # server's fields; for a new one there is no live object to compare with.
    dry = {key(o): served(o, version=8) for o in new_objects}
    changes = {(c.kind, c.name): c for c in object_changes(waves, live, dry, live, set())}
    changing = {k: c.action for k, c in changes.items() if c.action != "unchanged"}
    old_config = [k for k in live if k[0] == "ConfigMap" and k[1].startswith("keystone-pillar-")]
    new_config = [k for k in dry if k[0] == "ConfigMap" and k[1].startswith("keystone-pillar-")]
    # The keystone Jobs' own ConfigMaps hold the whole section and change in place:
    # their tasks' inputs did not change (the Jobs keep their names and do not run).
    jobs = {k for k in live if k[0] == "ConfigMap" and k[1].startswith("keystone-db-sync")}
    jobs |= {k for k in live if k[0] == "ConfigMap" and k[1].startswith("keystone-identity")}
    assert len(jobs) == 2
    assert changing == {
        ("Deployment", "keystone"): "change",
        new_config[0]: "create",
        old_config[0]: "prune",
        ("ConfigMap", "saline-release"): "change",
        **dict.fromkeys(jobs, "change"),
    }
    paths = [f.path for f in changes[("Deployment", "keystone")].fields]
    assert 'metadata.annotations["saline/instances"]' in paths
    assert "spec.template.spec.volumes[0].configMap.name" in paths
    volume = next(f for f in changes[("Deployment", "keystone")].fields if "volumes" in f.path)
    assert (volume.before, volume.after) == (old_config[0][1], new_config[0][1])


def test_secret_values_are_never_shown() -> None:
    _, pillars, objects = example()
    secrets = set()
    for p in pillars.values():
        secrets |= secret_values(p)
    secret = next(
        o for o in objects if o["kind"] == "Secret" and "keystone-secrets" in o["metadata"]["name"]
    )
    changed = copy.deepcopy(secret)
    changed["data"]["secrets.json"] = base64.b64encode(b'{"/a": "other"}').decode()
    [f] = field_changes("Secret", secret, changed, secrets)
    assert f.secret and f.before is None and f.after is None
    assert f.as_dict() == {"path": 'data["secrets.json"]', "secret": True}
    # Any value that holds a secret of the model, in any object, is masked too.
    password = next(s for s in secrets if "admin" in s)
    config = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "a"}}
    leaked = {**config, "data": {"x": f"password={password}"}}
    [f] = field_changes("ConfigMap", config, leaked, secrets)
    assert f.secret and password not in json.dumps(f.as_dict())


def test_pruned_and_kept_members_and_an_unchecked_plan() -> None:
    release, _, objects = example()
    waves = plan_waves(objects, release)
    gone = [("ConfigMap", "old-config"), ("PersistentVolumeClaim", "old-data")]
    changes = object_changes(waves, {}, None, gone, set())
    by = {(c.kind, c.name): c for c in changes}
    assert by[("ConfigMap", "old-config")].action == "prune"
    assert by[("PersistentVolumeClaim", "old-data")].action == "keep"
    assert "down --volumes" in by[("PersistentVolumeClaim", "old-data")].note
    assert {c.action for c in changes if c.name not in ("old-config", "old-data")} == {"create"}


# -- what runs -----------------------------------------------------------------------------


def test_what_runs_is_read_from_the_objects() -> None:
    release, pillars, objects = example()
    live = [served(o) for o in objects]
    for o in live:
        if o["kind"] == "Job" and "keystone-db-sync" in o["metadata"]["name"]:
            o["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    current = observed(live, release, pillars, "namespace openstack")
    assert dict(current.digests) == {i.key: i.digest for i in release.instances}
    db_sync = release.task("keystone/db-sync")
    assert db_sync is not None
    assert dict(current.tasks) == {"keystone/db-sync": db_sync.inputs}  # complete Jobs only
    plan = make_plan(release, current, FORMULA_SET, pillars)
    assert not plan.changes and len(plan.tasks) == len(release.tasks) - 1
    empty = observed([], None, {}, "namespace x")
    assert not empty.digests and not empty.tasks


# -- the plan ------------------------------------------------------------------------------


def kube_plan(tmp_path: Path) -> KubePlan:
    release, pillars, objects = example()
    model = tmp_path / "model"
    shutil.copytree(KUBE, model)
    edit(
        model / "classes/cluster/openstack/secrets.yml",
        "keystone_db_password: example-k8s-keystone-db",
        "keystone_db_password: example-k8s-keystone-db2",
    )
    after, new_pillars, new_objects = example(model)
    waves = plan_waves(new_objects, after)
    live = {key(o): served(o) for o in objects}
    dry = {key(o): served(o, version=8) for o in new_objects}
    secrets: set[str] = set()
    for p in (*pillars.values(), *new_pillars.values()):
        secrets |= secret_values(p)
    current = Current.of_release(release, pillars)
    plan = make_plan(after, current, FORMULA_SET, new_pillars)
    changes = object_changes(waves, live, dry, live, secrets)
    return KubePlan(plan, "openstack", "https://127.0.0.1:6443", changes, waves, True)


def test_the_plan_as_text_masks_secrets_and_shows_the_waves(tmp_path: Path) -> None:
    plan = kube_plan(tmp_path)
    text = kube_plan_text(plan)
    assert "example-k8s-keystone-db" not in text
    assert "Order (one at a time)" not in text  # compose's order is not Kubernetes'
    assert "changed (secret)" in text
    assert "Kubernetes objects (namespace openstack at https://127.0.0.1:6443, checked" in text
    assert "  ~ Deployment keystone: change" in text
    assert "  - Secret keystone-secrets-" in text
    # A new password: keystone's Secret is new, its tasks run again (new Jobs).
    assert "  + Secret keystone-secrets-" in text
    assert "  + Job keystone-db-sync-" in text
    assert "  1. namespace: Namespace openstack [unchanged]" in text
    assert text.rstrip().endswith("(namespace openstack).")
    assert text.splitlines()[-1].startswith("Plan: ")


def test_the_plan_as_json(tmp_path: Path) -> None:
    plan = kube_plan(tmp_path)
    data = json.loads(json.dumps(plan.as_dict()))
    assert data["target"] == "kubernetes" and data["checked_by_server"]
    assert "steps" not in data
    assert [w["stage"] for w in data["waves"]][:2] == ["namespace", "config"]
    assert all(o["action"] != "unchanged" for o in data["objects"])
    assert data["counts"]["objects"]["prune"] >= 1
    assert "example-k8s-keystone-db" not in json.dumps(data)
    assert not plan.empty


def test_an_empty_plan_says_so() -> None:
    release, pillars, objects = example()
    waves = plan_waves(objects, release)
    live = {key(o): served(o) for o in objects}
    changes = object_changes(waves, live, live, live, set())
    current = observed(list(live.values()), release, pillars, "namespace openstack")
    plan = KubePlan(
        make_plan(release, current, FORMULA_SET, pillars), "openstack", "s", changes, waves, True
    )
    assert plan.empty
    assert plan.summary() == (
        f"No changes: namespace openstack runs release {release.id} "
        f"({len(objects)} objects unchanged)."
    )
    assert "(none changes)" in kube_plan_text(plan)


# -- credentials ---------------------------------------------------------------------------


def test_openrc_from_the_model_with_service_names_made_reachable() -> None:
    model = load_model(str(KUBE))
    services = services_by_node(model, FORMULA_SET)
    pillars = {n: model.node(n).parameters for n, s in services.items() if s}
    env = openrc_of(services, pillars)
    assert env["OS_AUTH_URL"] == "http://keystone:5000/v3"
    assert env["OS_PASSWORD"] == "example-k8s-admin"
    got = reachable(env, {"keystone": "10.96.0.10"})
    assert got["OS_AUTH_URL"] == "http://10.96.0.10:5000/v3"
    assert got["OS_USERNAME"] == env["OS_USERNAME"]
    assert reachable({"U": "http://keystone.openstack.svc:5000/v3"}, {"keystone": "1.2.3.4"}) == {
        "U": "http://1.2.3.4:5000/v3"
    }
    assert reachable({"U": "http://elsewhere:5000"}, {"keystone": "1.2.3.4"}) == {
        "U": "http://elsewhere:5000"
    }


def test_catalog_endpoints_that_are_service_names_get_overrides() -> None:
    model = load_model(str(KUBE))
    services = services_by_node(model, FORMULA_SET)
    pillars = {n: model.node(n).parameters for n, s in services.items() if s}
    endpoints = endpoints_of(services, pillars)
    assert endpoints == {
        "identity": "http://keystone:5000/v3",
        "image": "http://glance-api:9292",
    }
    addresses = {"keystone": "10.96.0.20", "glance-api": "10.96.0.21"}
    got = reachable_openrc(openrc_of(services, pillars), endpoints, addresses)
    assert got["OS_AUTH_URL"] == "http://10.96.0.20:5000/v3"
    assert got["OS_IDENTITY_ENDPOINT_OVERRIDE"] == "http://10.96.0.20:5000/v3"
    assert got["OS_IMAGE_ENDPOINT_OVERRIDE"] == "http://10.96.0.21:9292"
    assert got["OS_CLOUD"] == "envvars"  # so that the openstack CLI reads the overrides
    # An endpoint the users already reach (an address, not a Service) gets no override.
    plain = reachable_openrc({}, {"image": "http://203.0.113.7:9292"}, addresses)
    assert plain == {}


def test_an_endpoint_the_pillar_cannot_fill_names_the_formula_and_key() -> None:
    model = load_model(str(KUBE))
    services = services_by_node(model, FORMULA_SET)
    pillars = {n: model.node(n).parameters for n, s in services.items() if s}
    node = next(n for n in sorted(services) if any(s.name == "glance-api" for s in services[n]))
    broken = {n: dict(p) for n, p in pillars.items()}
    broken[node] = {**pillars[node], "glance": {"server": {"enabled": True}}}
    with pytest.raises(
        ValueError,
        match=r"endpoints: image of formula service glance-api needs glance:server:'bind'",
    ):
        endpoints_of(services, broken)
