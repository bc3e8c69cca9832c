"""Applying releases to a real Kubernetes cluster (scripts/kube-up; fixtures in
integration/kube_cluster.py): the server's dry run of the whole example, then a small
deployment of saline's shape (a web Deployment of busybox pulled from the fixture's
registry, its ConfigMap and Service, a bootstrap Job) rolled out wave by wave through
:mod:`saline.lifecycle.kube_deploy`, in order:

* the server-side dry run of every object of ``examples/openstack-kubernetes`` is
  accepted by the real API server;
* apply: the namespace, the ApplySet parent (id, tooling, kinds), members labelled,
  the Job complete and the Deployment rolled out before apply returns;
* a second apply with nothing changed changes nothing (no object's resourceVersion
  moves);
* an object dropped from the release is pruned; the parent's kinds narrow;
* a field another manager took is a conflict error naming it, before anything changes;
* a rollout that never becomes ready is rolled back to the previous release's objects;
* ``status``, ``logs`` and ``releases`` through the command line;
* ``down --volumes`` removes everything saline created, the namespace too;
* the example itself, deployed until every wave is healthy, then changed (when the
  cluster has DNS and a default StorageClass, which the example needs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration import kube_cluster as cluster_fixtures
from integration.clients import TokenLoop, admin_auth, running
from integration.test_localkube import web_image
from integration.test_stack import openstack_in
from release_tools import edit, release_of
from saline.formulas import FormulaSet
from saline.lifecycle.desired import Desired
from saline.lifecycle.kube_deploy import (
    KubeApplyFailed,
    KubePrepared,
    Target,
    _prepare,
    down,
    execute,
    prepare,
)
from saline.manifests.kubernetes import KubeOptions
from saline.model import load_model
from saline.release import Instance, Release
from saline.runtime.kubernetes import (
    APPLYSET_ID,
    KINDS_ANNOTATION,
    PART_OF,
    TOOLING_ANNOTATION,
    Cluster,
    FieldConflict,
    NamespaceNotOurs,
    Ref,
    applyset_id,
    kinds_annotation,
)
from saline.runtime.podman import Podman
from tools import FORMULAS, REPO

pytestmark = pytest.mark.integration

kube_registry = cluster_fixtures.kube_registry
kube_cluster = cluster_fixtures.kube_cluster
__all__ = ["web_image"]  # a fixture of this module too

SALINE = str(Path(sys.executable).parent / "saline")
KUBE_EXAMPLE = REPO / "examples" / "openstack-kubernetes"
NS = "saline-apply"
FORMULA_SET = FormulaSet([str(FORMULAS)])
NAME = "app.kubernetes.io/name"


def labels(service: str, component: str = "server") -> dict[str, str]:
    return {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": NS,
        "app.kubernetes.io/managed-by": "saline",
        NAME: service,
    }


def objects(image: str, version: int, ready_port: int = 8080, drop: bool = False) -> list[Any]:
    """A deployment of saline's shape: namespace, ConfigMap (+ one to drop later),
    Service, a bootstrap Job, a 2-replica web Deployment serving its ConfigMap."""
    selector = {k: v for k, v in labels("web").items() if k != "app.kubernetes.io/managed-by"}
    serve = "cp /config/index.html /www/ && exec httpd -f -p 8080 -h /www"
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NS, "labels": labels("saline", "namespace")},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"web-config-{version}", "namespace": NS, "labels": labels("web")},
            "data": {"index.html": f"version {version}\n"},
            "immutable": True,
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS, "labels": labels("web")},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"web-setup-{version}",
                "namespace": NS,
                "labels": {**labels("web", "bootstrap"), "saline/task": "setup"},
            },
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "setup",
                                "image": image,
                                "command": ["sh", "-c", "echo set up"],
                            }
                        ],
                    }
                },
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS, "labels": labels("web")},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
                },
                "template": {
                    "metadata": {"labels": labels("web")},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            {
                                "name": "web",
                                "image": image,
                                "command": ["sh", "-c", f"mkdir -p /www && {serve}"],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": ready_port},
                                    "periodSeconds": 1,
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/config"}],
                            }
                        ],
                        "volumes": [
                            {"name": "config", "configMap": {"name": f"web-config-{version}"}}
                        ],
                    },
                },
            },
        },
    ]
    if not drop:
        out.insert(
            1,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "dropme", "namespace": NS, "labels": labels("web")},
                "data": {"a": "b"},
            },
        )
    return out


def release(version: int, image: str) -> Release:
    """A release whose id follows ``version`` (the records key the objects by it)."""
    tag = image.rpartition(":")[2]
    inst = Instance(
        node="web",
        service="web",
        formula="web",
        image="saline/kube-test",
        image_tag=tag,
        configs=(),
        command=(),
        user=None,
        env={"VERSION": str(version)},
        volumes={},
        ports=(),
        health={},
        api_check=None,
        depends=(),
        pillar_digest="",
    )
    return Release((inst,), (), (("web",),), {"model": "test"})


@pytest.fixture(scope="module")
def target(kube_cluster: Path, kube_registry: str) -> Target:
    return Target(str(kube_cluster), None, KubeOptions(NS, NS, kube_registry))


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("kube-state"))


def prepared(target: Target, state: str, image: str, version: int, **kw: Any) -> KubePrepared:
    cluster = Cluster.connect(target.kubeconfig)
    objs = objects(image, version, **kw)
    return _prepare(state, target, cluster, release(version, image), {}, objs, FORMULA_SET, None)


def lines() -> Any:
    seen: list[str] = []
    return seen, seen.append


def cluster_of(target: Target) -> Cluster:
    return Cluster.connect(target.kubeconfig)


def versions(cluster: Cluster) -> dict[str, str]:
    """resourceVersion of every object saline made in the namespace."""
    out = {}
    for api_version, kind in (
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("v1", "Secret"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
    ):
        for o in cluster.objects(api_version, kind, NS, {}):
            out[f"{kind}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
    return out


# -- the example -------------------------------------------------------------------------


def test_the_api_server_accepts_every_object_of_the_example(
    kube_cluster: Path, kube_registry: str, tmp_path: Path
) -> None:
    """Server-side dry run (dryRun=All) of the whole example, as the ApplySet members
    they become: every object is valid for the real API server; nothing is stored."""
    rel, pillars = release_of(KUBE_EXAMPLE)
    desired = Desired(rel, pillars, load_model(str(KUBE_EXAMPLE)))
    ns = "saline-dry-run"
    tgt = Target(str(kube_cluster), None, KubeOptions(ns, ns, kube_registry))
    cluster = cluster_of(tgt)
    # The namespace first (a dry run in a namespace that does not exist is refused).
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": {
                    "app.kubernetes.io/managed-by": "saline",
                    "app.kubernetes.io/instance": ns,
                },
            },
        }
    )
    try:
        p = prepare(str(tmp_path), tgt, desired, FORMULA_SET)
        assert p.plan.checked
        kinds = {o.kind for o in p.plan.objects}
        assert {"StatefulSet", "Deployment", "Job", "Secret", "NetworkPolicy"} <= kinds
        assert {o.action for o in p.plan.objects if o.kind != "Namespace"} == {"create"}
        assert len(p.plan.objects) == len(p.objects)
        # Nothing was stored.
        assert cluster.objects("apps/v1", "Deployment", ns, {}) == []
        assert cluster.objects("v1", "ConfigMap", ns, {NAME: "keystone"}) == []
    finally:
        cluster.delete(Ref("v1", "Namespace", ns))


def test_the_applyset_id_and_kinds_are_kubectls(kube_cluster: Path) -> None:
    """kubectl's own ApplySet (KUBECTL_APPLYSET) names its parent with the id saline
    computes, and lists kinds as saline does."""
    ns = "saline-applyset-check"
    cluster = Cluster.connect(str(kube_cluster))
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        objs = [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "j"},
                "spec": {
                    "suspend": True,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "saline.local/none:1"}],
                        }
                    },
                },
            },
        ]
        done = subprocess.run(
            [
                str(cluster_fixtures.kubectl_path()),
                f"--kubeconfig={kube_cluster}",
                *("-n", ns, "apply", "--server-side", "--prune"),
                "--applyset=secret/some-parent",
                *("-f", "-"),
            ],
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}),
            env={**os.environ, "KUBECTL_APPLYSET": "true"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        parent = cluster.get(Ref("v1", "Secret", "some-parent", ns))
        assert parent is not None
        assert parent["metadata"]["labels"][APPLYSET_ID] == applyset_id("some-parent", ns)
        assert parent["metadata"]["annotations"][KINDS_ANNOTATION] == kinds_annotation(
            [Ref.of(o).gk for o in objs]
        )
        member = cluster.get(Ref("v1", "ConfigMap", "a", ns))
        assert member is not None
        assert member["metadata"]["labels"][PART_OF] == applyset_id("some-parent", ns)
    finally:
        cluster.delete(Ref("v1", "Namespace", ns))


# -- a deployment of saline's shape --------------------------------------------------------


def test_apply_rolls_out_wave_by_wave(target: Target, state: str, web_image: str) -> None:
    p = prepared(target, state, web_image, 1)
    assert not p.plan.checked  # the namespace is not there yet
    assert [w.stage for w in p.waves] == [
        "namespace",
        "config",
        "bootstrap",
        "deployments",
        "prune",
    ]
    seen, progress = lines()
    result = execute(p, progress)
    assert [w.outcome for w in result.waves] == ["done"] * 5
    cluster = cluster_of(target)
    job = cluster.get(Ref("batch/v1", "Job", "web-setup-1", NS))
    assert job is not None and job["status"]["succeeded"] == 1
    web = cluster.get(Ref("apps/v1", "Deployment", "web", NS))
    assert web is not None and web["status"]["availableReplicas"] == 2
    # The ApplySet: parent labelled and annotated as KEP-3659 / kubectl say; members.
    set_id = applyset_id("saline-applyset", NS)
    parent = cluster.get(Ref("v1", "Secret", "saline-applyset", NS))
    assert parent is not None
    assert parent["metadata"]["labels"][APPLYSET_ID] == set_id
    annotations = parent["metadata"]["annotations"]
    assert annotations[TOOLING_ANNOTATION].startswith("saline/v")
    assert annotations[KINDS_ANNOTATION] == "ConfigMap,Deployment.apps,Job.batch,Service"
    for kind, name in (("ConfigMap", "dropme"), ("Service", "web")):
        obj = cluster.get(Ref("v1", kind, name, NS))
        assert obj is not None and obj["metadata"]["labels"][PART_OF] == set_id
    # Managed by saline's field manager, by server-side apply.
    managers = {m["manager"]: m["operation"] for m in web["metadata"]["managedFields"]}
    assert managers.get("saline") == "Apply"
    assert any("wave 4/5 deployments (web)" in line for line in seen)


def test_a_second_apply_with_nothing_changed_changes_nothing(
    target: Target, state: str, web_image: str
) -> None:
    p = prepared(target, state, web_image, 1)
    assert p.plan.checked
    assert p.plan.empty, [o for o in p.plan.objects if o.action != "unchanged"]
    cluster = cluster_of(target)
    before = versions(cluster)
    execute(p, lines()[1])
    assert versions(cluster) == before


def test_an_object_dropped_is_pruned(target: Target, state: str, web_image: str) -> None:
    p = prepared(target, state, web_image, 1, drop=True)
    changes = {(o.kind, o.name): o.action for o in p.plan.objects}
    assert changes[("ConfigMap", "dropme")] == "prune"
    assert [a for a in changes.values() if a != "unchanged"] == ["prune"]
    result = execute(p, lines()[1])
    assert result.pruned == ("ConfigMap dropme",)
    assert cluster_of(target).get(Ref("v1", "ConfigMap", "dropme", NS)) is None


def test_a_field_another_manager_took_is_a_conflict(
    target: Target, state: str, web_image: str
) -> None:
    cluster = cluster_of(target)
    other = [
        "--kubeconfig",
        target.kubeconfig,
        "-n",
        NS,
        "apply",
        "--server-side",
        "--field-manager=someone-else",
        "--force-conflicts",
        "-f",
        "-",
    ]
    scale = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3},
    }
    kubectl = str(cluster_fixtures.kubectl_path())
    subprocess.run(
        [kubectl, *other],
        input=json.dumps(scale),
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    web = Ref("apps/v1", "Deployment", "web", NS)
    cluster.wait_healthy([web], 120, lines()[1], "scaled by someone else")  # settled
    before = versions(cluster)
    with pytest.raises(FieldConflict) as e:
        prepared(target, state, web_image, 1, drop=True)
    assert "Deployment web" in str(e.value)
    assert "someone-else" in str(e.value) and ".spec.replicas" in str(e.value)
    assert "nothing was changed" in str(e.value)
    assert versions(cluster) == before
    # The other manager gives the field up (applies without it): saline's again.
    release_field = {**scale, "spec": {}}
    subprocess.run(
        [kubectl, *other],
        input=json.dumps(release_field),
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )
    p = prepared(target, state, web_image, 1, drop=True)
    [change] = [o for o in p.plan.objects if o.name == "web" and o.kind == "Deployment"]
    assert [f.path for f in change.fields] == ["spec.replicas"]
    execute(p, lines()[1])


def test_a_rollout_that_never_becomes_ready_is_rolled_back(
    target: Target, state: str, web_image: str
) -> None:
    cluster = cluster_of(target)
    good = cluster.get(Ref("apps/v1", "Deployment", "web", NS))
    assert good is not None
    # Version 2 is probed on a port nothing listens on: never ready.
    p = prepared(target, state, web_image, 2, ready_port=9, drop=True)
    seen, progress = lines()
    with pytest.raises(KubeApplyFailed) as e:
        execute(p, progress, timeout=25)
    text = str(e.value)
    assert "not healthy after 25 s" in text and "Deployment web" in text
    assert "Rolled back" in text
    web = cluster.get(Ref("apps/v1", "Deployment", "web", NS))
    assert web is not None
    volume = web["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    assert volume == "web-config-1"
    assert web["status"]["availableReplicas"] == 2
    assert web["status"].get("updatedReplicas") == 2
    # What only version 2 added is gone.
    assert cluster.get(Ref("v1", "ConfigMap", "web-config-2", NS)) is None
    assert cluster.get(Ref("batch/v1", "Job", "web-setup-2", NS)) is None
    assert any("putting release" in line and "back" in line for line in seen)


def test_status_logs_and_releases_on_the_command_line(
    target: Target, state: str, tmp_path: Path, web_image: str
) -> None:
    model = tmp_path / NS
    (model / "nodes").mkdir(parents=True)
    (model / "classes").mkdir()
    env = {
        **os.environ,
        "SALINE_STATE_DIR": state,
        "SALINE_MODEL": str(model),
        "SALINE_TARGET": "kubernetes",
        "SALINE_KUBECONFIG": target.kubeconfig,
        "NO_COLOR": "1",
    }

    def saline(*args: str) -> str:
        done = subprocess.run([SALINE, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = json.loads(saline("status", "--format", "json"))
    assert rows["namespace"] == NS
    kinds = {(r["kind"], r["name"]): r for r in rows["objects"]}
    assert kinds[("Deployment", "web")]["healthy"]
    assert kinds[("Deployment", "web")]["ready"] == "2/2"
    assert kinds[("Job", "web-setup-1")]["healthy"]
    assert "set up" in saline("logs", "web-setup-1")
    history = json.loads(saline("releases", "--format", "json"))
    outcomes = [r["outcome"] for r in history["releases"]]
    assert outcomes[-1] == "failed" and "applied" in outcomes
    assert history["current"] == release(1, web_image).id


def test_a_namespace_of_something_else_is_refused(target: Target, state: str) -> None:
    cluster = cluster_of(target)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "not-saline"}})
    try:
        other = Target(target.kubeconfig, None, KubeOptions("not-saline", NS, "r:1"))
        with pytest.raises(
            NamespaceNotOurs, match="namespace not-saline exists and is not saline's"
        ):
            _prepare(state, other, cluster, release(1, "x:y"), {}, [], FORMULA_SET, None)
    finally:
        cluster.delete(Ref("v1", "Namespace", "not-saline"))


def test_down_removes_everything_saline_created(target: Target) -> None:
    removed = down(target, True, lines()[1])
    assert "Deployment web" in removed and f"Namespace {NS}" in removed
    assert cluster_of(target).get(Ref("v1", "Namespace", NS)) is None


# -- the example, end to end ---------------------------------------------------------------


def openstack_cli(env: dict[str, str], *args: str) -> str:
    """The openstack CLI as in the stack test (:func:`openstack_in`): run on the host's
    network, which reaches the cluster's Service addresses."""
    images = json.loads(
        subprocess.run(
            [SALINE, "images", "--format", "json"], env=env, capture_output=True, text=True
        ).stdout
    )
    pushed = next(i["image"] for i in images if i["service"] == "glance-api")
    # The build's own name in podman's store (the cluster pulls the pushed one).
    image = "localhost/saline/" + pushed.split("/saline/", 1)[1]
    return openstack_in(image, {**env, **Podman.for_state(env["SALINE_STATE_DIR"]).env()}, *args)


def cluster_services(cluster: Cluster) -> tuple[bool, bool]:
    """Whether the cluster has DNS for Services (a kube-dns Service) and a default
    StorageClass: what the example needs (its addresses are Service names; mariadb's and
    rabbitmq's data are volume claims)."""
    dns = cluster.get(Ref("v1", "Service", "kube-dns", "kube-system")) is not None
    classes = cluster.objects("storage.k8s.io/v1", "StorageClass", None, {})
    default = any(
        (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
        for c in classes
    )
    return dns, default


def test_the_example_deploys_and_a_change_rolls_only_its_service(
    kube_cluster: Path, kube_registry: str, tmp_path: Path
) -> None:
    """``saline apply --target kubernetes`` of examples/openstack-kubernetes until every
    wave is healthy; the plan again is empty; ``saline smoke`` passes and the openstack
    CLI works with ``saline openrc`` (Services' cluster IPs, endpoint overrides); a
    keystone value changes only keystone's objects, rolls only its Deployment under a
    client loop with 0 failed requests, shows through the API and runs no bootstrap Job
    again; ``down --volumes`` leaves nothing.
    """
    cluster = Cluster.connect(str(kube_cluster))
    dns, storage = cluster_services(cluster)
    if not (dns and storage):
        pytest.skip(
            f"the local cluster has no {'cluster DNS' if not dns else 'default StorageClass'}"
            " (scripts/localkube.py): the example's addresses are Service names and its"
            " databases keep their data in volume claims"
        )
    model = tmp_path / "model"
    shutil.copytree(KUBE_EXAMPLE, model)  # its classes/system link copied as files
    ns = "openstack-kubernetes"
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(tmp_path / "state"),
        "SALINE_MODEL": str(model),
        "SALINE_STACK": ns,
        "SALINE_REGISTRY": kube_registry,
        "SALINE_TARGET": "kubernetes",
        "SALINE_KUBECONFIG": str(kube_cluster),
        "SALINE_KUBE_SHARED_ACCESS_MODE": "ReadWriteOnce",
        "NO_COLOR": "1",
    }

    def saline(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SALINE, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def generations() -> dict[str, int]:
        return {
            f"{kind} {o['metadata']['name']}": o["metadata"]["generation"]
            for api_version, kind in (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"))
            for o in cluster.objects(api_version, kind, ns, {})
        }

    def jobs() -> set[str]:
        return {o["metadata"]["name"] for o in cluster.objects("batch/v1", "Job", ns, {})}

    try:
        done = saline("apply", "--yes", "--timeout", "900")
        assert done.returncode == 0, done.stderr[-6000:]
        rows = json.loads(saline("status", "--format", "json").stdout)["objects"]
        assert rows and all(r["healthy"] for r in rows), [r for r in rows if not r["healthy"]]
        again = saline("plan", "--detailed-exitcode")
        assert again.returncode == 0, again.stdout[-4000:]

        # The cloud as its users see it, from this machine: openstacksdk's smoke checks
        # and the openstack CLI, given only what `saline openrc` exports. The catalog
        # names Services (http://glance-api:9292); openrc adds endpoint overrides.
        smoke = saline("smoke", "--format", "json")
        assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-4000:]
        checks = [c["name"] for c in json.loads(smoke.stdout)["checks"]]
        assert "project and user" in checks and "image upload and download" in checks
        rc = json.loads(saline("openrc", "--format", "json").stdout)
        assert rc["OS_IMAGE_ENDPOINT_OVERRIDE"].endswith(":9292")
        cli = openstack_cli(env, "token", "issue", "-f", "value", "-c", "project_id")
        assert cli.strip()
        assert openstack_cli(env, "image", "list", "-f", "json").strip().startswith("[")

        loop = TokenLoop(rc["OS_AUTH_URL"], admin_auth(rc))
        assert 3500 <= loop.token_lifetime() <= 3700

        edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
        plan = json.loads(saline("plan", "--format", "json").stdout)
        changing = {(o["kind"], o["name"]): o["action"] for o in plan["objects"]}
        assert plan["tasks"] == []  # no task uses the token expiration
        assert {c["key"] for c in plan["changes"]} == {"keystone@control"}
        assert changing[("Deployment", "keystone")] == "change"
        for kind, name in changing:
            assert name.startswith("keystone-") or (kind, name) in (
                ("Deployment", "keystone"),
                ("ConfigMap", "saline-release"),
            ), (kind, name)
        before_gen, before_jobs = generations(), jobs()
        # Rolled under a client loop through keystone's Service: not one request fails
        # (a surge replica, readiness gates, preStop while the endpoints drain).
        with running(loop):
            done = saline("apply", "--yes", "--timeout", "900")
        assert done.returncode == 0, done.stderr[-6000:]
        assert loop.requests > 20 and loop.failures == [], loop.failures[:5]
        assert 7100 <= loop.token_lifetime() <= 7300  # the new value, through the API
        after_gen = generations()
        assert {k for k in after_gen if after_gen[k] != before_gen[k]} == {"Deployment keystone"}
        assert jobs() == before_jobs  # no bootstrap task ran again
    finally:
        down = saline("down", "--volumes", timeout=900)
        assert down.returncode == 0, down.stderr[-4000:]
    assert cluster.get(Ref("v1", "Namespace", ns)) is None
