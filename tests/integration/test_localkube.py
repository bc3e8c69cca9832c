"""The local Kubernetes cluster (scripts/kube-up) for real: a Ready node, a Deployment of
an image pulled from saline's registry, a ClusterIP Service spreading requests over its
replicas, a Job that completes, ``kubectl logs`` and ``exec``; cluster DNS (a pod finds
a Service by its short name and its FQDN) and dynamic volumes (a claim on the default
StorageClass is bound, keeps what one pod wrote for the next, and its folder goes with
it). kube-down's restoring of the host is checked by the cluster fixture's teardown
(integration/kube_cluster.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
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
APPLETS = ("sh", "httpd", "wget", "hostname", "mkdir", "seq", "cat", "nslookup")


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
    """A Job asking ``address`` ``requests`` times, 0.3 s apart (wget fails the Job on any
    error): spread over seconds, so a rule kube-proxy writes a moment late still counts."""
    loop = (
        f"for i in $(seq 1 {requests}); do wget -q -O - http://{address}/ || exit 1; "
        "sleep 0.3; done"
    )
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

        # Both replicas in the Service's endpoints first: a rollout is complete when the
        # pods are ready, the endpoints controller and kube-proxy follow (seen here: every
        # request answered by one replica on a busy machine).
        def ready_endpoints() -> int:
            found = kubectl(
                kube_cluster,
                "-n",
                ns,
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "json",
            )
            return sum(
                1
                for eps in json.loads(found)["items"]
                for e in eps.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready")
            )

        deadline = time.monotonic() + 60
        while ready_endpoints() < 2:
            assert time.monotonic() < deadline, "the Service's endpoints: not 2 ready in 60 s"
            time.sleep(1)
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


def job(
    namespace: str, name: str, image: str, script: str, claim: str | None = None
) -> dict[str, Any]:
    """A Job running ``script`` once (no retry), with the volume claim ``claim`` at /data."""
    container: dict[str, Any] = {"name": name, "image": image, "command": ["/bin/sh", "-c", script]}
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if claim:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }


def run_job(kubeconfig: Path, manifest: dict[str, Any], timeout: float = 120) -> str:
    """Apply a Job, wait (bounded) until it succeeded or failed; its logs. A failure shows
    them, and the pod's events."""
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(manifest))
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        got = json.loads(kubectl(kubeconfig, "-n", namespace, "get", "job", name, "-o", "json"))
        status = got.get("status", {})
        if status.get("succeeded") or status.get("failed"):
            break
        time.sleep(1)
    logs = kubectl(kubeconfig, "-n", namespace, "logs", f"job/{name}") if status else ""
    if not status.get("succeeded"):
        events = kubectl(kubeconfig, "-n", namespace, "get", "events", "-o", "wide")
        raise AssertionError(f"job {name}: {status}\nlogs:\n{logs}\nevents:\n{events}")
    return logs


def test_pods_find_services_by_name(kube_cluster: Path, web_image: str) -> None:
    """A pod's resolver is the cluster's DNS (the kube-dns Service), which answers a
    Service's short name (through the pod's search domains), NAME.NAMESPACE.svc and its
    FQDN with the Service's address; the pod reaches the Service by each name."""
    ns = f"saline-test-{uuid.uuid4().hex[:8]}"
    kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps(manifests(ns, web_image)))
    try:
        kubectl(kube_cluster, "-n", ns, "rollout", "status", "deployment/web", "--timeout=90s")
        pods = json.loads(
            kubectl(kube_cluster, "-n", ns, "get", "pods", "-l", "app=web", "-o", "json")
        )
        names = {p["metadata"]["name"] for p in pods["items"]}
        service_ip = kubectl(
            kube_cluster, "-n", ns, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"
        )
        fqdn = f"web.{ns}.svc.{localkube.CLUSTER_DOMAIN}"
        script = (
            "set -e; cat /etc/resolv.conf; "
            "short=$(wget -q -O - http://web/); "
            f"svc=$(wget -q -O - http://web.{ns}.svc/); "
            f"full=$(wget -q -O - http://{fqdn}/); "
            'echo "by-short-name $short"; echo "by-svc-name $svc"; echo "by-fqdn $full"; '
            f"nslookup {fqdn}"
        )
        out = run_job(kube_cluster, job(ns, "dns-probe", web_image, script))
        lines = out.splitlines()
        assert f"nameserver {localkube.DNS_SERVICE_IP}" in lines, out
        assert f"search {ns}.svc.{localkube.CLUSTER_DOMAIN}" in "\n".join(lines), out
        answers = dict(line.split(" ", 1) for line in lines if line.startswith("by-"))
        # web, web.NS.svc (as saline's manifests name Services of other namespaces), FQDN.
        for way in ("by-short-name", "by-svc-name", "by-fqdn"):
            assert answers[way] in names, out
        # nslookup's answer section: the name and the Service's cluster IP.
        answer = out.split(f"Name:\t{fqdn}", 1)
        assert len(answer) == 2 and f"Address: {service_ip}" in answer[1], out
    finally:
        kubectl(kube_cluster, "delete", "namespace", ns, "--wait=false")


def test_a_claim_on_the_default_class_keeps_what_a_pod_wrote(
    kube_cluster: Path, web_image: str
) -> None:
    """A claim naming no StorageClass gets the default one, is bound to a folder under
    the cluster's state folder; what one pod writes there the next one reads; deleting
    the claim deletes its volume and the folder."""
    classes = json.loads(kubectl(kube_cluster, "get", "storageclasses", "-o", "json"))["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if (c["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class"
        )
        == "true"
    ]
    assert default == [localkube.STORAGE_CLASS]

    ns = f"saline-test-{uuid.uuid4().hex[:8]}"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": ns},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "16Mi"}},
        },
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    doc = {"apiVersion": "v1", "kind": "List", "items": [namespace, claim]}
    kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps(doc))
    try:
        kubectl(
            kube_cluster,
            *("-n", ns, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data"),
            "--timeout=60s",
        )
        got = json.loads(kubectl(kube_cluster, "-n", ns, "get", "pvc", "data", "-o", "json"))
        assert got["spec"]["storageClassName"] == localkube.STORAGE_CLASS
        volume = json.loads(
            kubectl(kube_cluster, "get", "pv", got["spec"]["volumeName"], "-o", "json")
        )
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        folder = Path(volume["spec"]["hostPath"]["path"])
        # kube-up's state folder holds the admin kubeconfig; volumes/ is in it.
        assert folder.parent == kube_cluster.parent / "volumes"
        assert folder.is_dir()

        token = uuid.uuid4().hex
        run_job(kube_cluster, job(ns, "writer", web_image, f"echo {token} > /data/token", "data"))
        read = run_job(kube_cluster, job(ns, "reader", web_image, "cat /data/token", "data"))
        assert read.strip() == token
        assert (folder / "token").read_text().strip() == token

        # The claim is in use until its pods are gone (kubernetes.io/pvc-protection).
        kubectl(kube_cluster, "-n", ns, "delete", "job", "writer", "reader", "--cascade=foreground")
        kubectl(kube_cluster, "-n", ns, "delete", "pvc", "data", "--timeout=60s")
        kubectl(
            kube_cluster,
            "wait",
            "--for=delete",
            f"pv/{volume['metadata']['name']}",
            "--timeout=60s",
        )
        assert not folder.exists()
    finally:
        kubectl(kube_cluster, "delete", "namespace", ns, "--wait=false")
