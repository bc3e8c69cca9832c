"""The local Kubernetes cluster (scripts/kube-up) for real: a Ready node, a Deployment of
an image pulled from saline's registry, a ClusterIP Service spreading requests over its
replicas, a Job that completes, ``kubectl logs`` and ``exec``. kube-down's restoring of
the host is checked by the cluster fixture's teardown (integration/kube_cluster.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

import localkube
from integration import kube_cluster as cluster_fixtures
from tools import require_tools

pytestmark = pytest.mark.integration

# The fixtures, as the lead will wire them into conftest.py.
kube_registry = cluster_fixtures.kube_registry
kube_cluster = cluster_fixtures.kube_cluster

BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: one static binary
APPLETS = ("sh", "httpd", "wget", "hostname", "mkdir", "seq", "cat")


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(cluster_fixtures.kubectl_path()), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def web_image(kube_registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small image (busybox: sh, httpd, wget) pushed to saline's registry with skopeo,
    no podman involved: REGISTRY/saline/kube-test:TAG."""
    require_tools("skopeo")
    if not BUSYBOX.exists():
        pytest.skip("needs busybox-static (scripts/install installs it)")
    data = BUSYBOX.read_bytes()
    ref = f"{kube_registry}/saline/kube-test:{hashlib.sha256(data).hexdigest()[:12]}"
    archive = tmp_path_factory.mktemp("image") / "busybox-oci.tar"
    archive.write_bytes(
        localkube.oci_archive(
            ref,
            {"bin/busybox": (data, 0o755)},
            ["/bin/sh"],
            symlinks={f"bin/{a}": "busybox" for a in APPLETS},
        )
    )
    subprocess.run(
        [
            *("skopeo", "copy", "--quiet", "--dest-tls-verify=false"),
            *(f"oci-archive:{archive}", f"docker://{ref}"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return ref


def test_the_node_is_ready_and_runs_the_pinned_version(kube_cluster: Path) -> None:
    nodes = json.loads(kubectl(kube_cluster, "get", "nodes", "-o", "json"))["items"]
    assert len(nodes) == 1
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"] == localkube.KUBERNETES_VERSION
    version = json.loads(kubectl(kube_cluster, "version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"] == localkube.KUBERNETES_VERSION
    assert version["clientVersion"]["gitVersion"] == localkube.KUBERNETES_VERSION


def manifests(namespace: str, image: str) -> dict[str, Any]:
    """A namespace, a 2-replica web Deployment (busybox httpd answering its pod's name)
    pulled from the registry every time, and a ClusterIP Service in front of it."""
    labels = {"app": "web"}
    serve = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "terminationGracePeriodSeconds": 1,
                            "containers": [
                                {
                                    "name": "web",
                                    "image": image,
                                    "imagePullPolicy": "Always",
                                    "command": ["/bin/sh", "-c", serve],
                                    "ports": [{"containerPort": 8080}],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/", "port": 8080},
                                        "periodSeconds": 1,
                                    },
                                }
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {
                    "type": "ClusterIP",
                    "selector": labels,
                    "ports": [{"port": 80, "targetPort": 8080}],
                },
            },
        ],
    }


def probe_job(namespace: str, image: str, address: str, requests: int) -> dict[str, Any]:
    """A Job asking ``address`` ``requests`` times (wget fails the Job on any error)."""
    loop = f"for i in $(seq 1 {requests}); do wget -q -O - http://{address}/ || exit 1; done"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "probe",
                            "image": image,
                            "command": ["/bin/sh", "-c", loop],
                        }
                    ],
                }
            },
        },
    }


def test_a_deployment_from_the_registry_a_service_and_a_job(
    kube_cluster: Path, web_image: str, kube_registry: str
) -> None:
    ns = f"saline-test-{uuid.uuid4().hex[:8]}"
    kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps(manifests(ns, web_image)))
    try:
        kubectl(kube_cluster, "-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
        pods = json.loads(
            kubectl(kube_cluster, "-n", ns, "get", "pods", "-l", "app=web", "-o", "json")
        )
        names = sorted(p["metadata"]["name"] for p in pods["items"])
        assert len(names) == 2
        # Pulled from saline's registry: the image's digest is recorded under its name.
        for pod in pods["items"]:
            image_id = pod["status"]["containerStatuses"][0]["imageID"]
            assert image_id.startswith(f"{kube_registry}/saline/kube-test@sha256:"), image_id

        service_ip = kubectl(
            kube_cluster, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"
        )
        job = probe_job(ns, web_image, f"{service_ip}:80", requests=20)
        kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps(job))
        kubectl(
            kube_cluster, "-n", ns, "wait", "--for=condition=complete", "job/probe", "--timeout=90s"
        )
        answers = kubectl(kube_cluster, "-n", ns, "logs", "job/probe").split()
        assert len(answers) == 20
        # kube-proxy spreads the Service's traffic over both replicas (1 in 2^19 to fail).
        assert sorted(set(answers)) == names

        exec_out = kubectl(kube_cluster, "-n", ns, "exec", names[0], "--", "cat", "/www/index.html")
        assert exec_out.strip() == names[0]
    finally:
        kubectl(kube_cluster, "delete", "namespace", ns, "--wait=false")
