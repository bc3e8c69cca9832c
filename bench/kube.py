"""Benchmark: the example on the local Kubernetes cluster against the same services on
podman (issue 11).

Measures, in one run, with a registry of its own on a free port:

* images: `saline build --push` of both examples (normally nothing to build, only the
  push to the new registry), timed apart: the deployments below start with every image
  in the registry, so their figures are deployment only;
* cluster up: `scripts/kube-up --state DIR --registry HOST:PORT` until it returns (the
  node Ready), the binaries from kube-up's cache (the JSON says whether they were
  cached: a first run builds them, for minutes), and the cluster's own memory then;
* Kubernetes, deploy until smoke passes: a copy of examples/openstack-kubernetes (its
  `classes/system` link copied as files), `saline apply --yes` (`--target kubernetes`
  through SALINE_TARGET, volumes ReadWriteOnce: one node) until `saline smoke` passes,
  and the apply's progress lines stamped with the seconds since it started;
* memory on Kubernetes, deployed and smoke passed: the cluster's own processes (etcd,
  the control plane, the kubelet, kube-proxy, containerd and its per-pod shims, CoreDNS,
  the volume provisioner: every process whose command line names the cluster's state
  folder, outside the pods' cgroups) as summed RSS (VmRSS); and the pods: the `kubepods`
  memory cgroup's `memory.usage_in_bytes` (cgroup v1), the same counter `podman stats`
  reports for each container on this machine (podman 4.3: usage including page cache),
  so the two sides compare; its working set (usage less `total_inactive_file`, what the
  kubelet reports) and each pod's usage are recorded too;
* then `saline down --volumes` and `scripts/kube-down --purge` (timed); the cluster is
  gone before podman starts anything (kube-proxy's iptables rules share tables with
  podman's networks);
* compose, up until smoke passes: examples/openstack, `saline up` until `saline smoke`
  passes, as bench/stack.py's cold run (every bootstrap task runs), then each running
  container's memory (`podman stats`, summed) and, apart, the RSS of their conmon
  monitors (podman's per-container process, like the shims on Kubernetes; not in the
  total); then `saline down --volumes`.

Both examples share their system classes and formulas (`classes/system` of the
Kubernetes example is a link to the compose example's): the same service images, the
same bootstrap tasks; the Kubernetes one names Services as addresses. They run the same
services (mariadb, rabbitmq, memcached, keystone and glance-api twice each); compose adds
haproxy in front of the two controllers, where Kubernetes has Services.

Ratios: Kubernetes deploy-to-smoke / compose up-to-smoke; Kubernetes total memory (the
cluster's processes and the pods) / compose total (its containers); pods / containers.

Usage: flock /tmp/saline-kube.lock flock -o /tmp/saline-podman.lock .venv/bin/python bench/kube.py
(as root: kube-up needs it; no other cluster, no other stack of the example model.)
Results: printed, and bench/out/kube.json. Every command is bounded; a failure exits
non-zero with the end of the command's output, after tearing everything down.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "kube.json"
KUBE_EXAMPLE = REPO / "examples" / "openstack-kubernetes"
COMPOSE_EXAMPLE = REPO / "examples" / "openstack"
SALINE = str(Path(sys.executable).parent / "saline")
KUBE_UP = str(REPO / "scripts" / "kube-up")
KUBE_DOWN = str(REPO / "scripts" / "kube-down")
STACK = "saline-bench-kube"  # the compose project and the Kubernetes namespace
KUBEPODS = Path("/sys/fs/cgroup/memory/kubepods")

sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))
import localkube  # noqa: E402
from saline.runtime.kubernetes import Cluster  # noqa: E402
from saline.runtime.podman import Podman  # noqa: E402
from saline.runtime.registry import LocalRegistry  # noqa: E402


class Failed(Exception):
    """A step failed: the message names the command and ends with its output."""


def tail(text: str, chars: int = 4000) -> str:
    return text if len(text) <= chars else "..." + text[-chars:]


def run(argv: Sequence[str], env: dict[str, str], timeout: float) -> tuple[str, list[str], float]:
    """Run a command in its own process group, at most ``timeout`` seconds (then the whole
    group is killed). Returns its stdout, its stderr lines stamped with the seconds since
    it started, and its wall time. A non-zero exit or the timeout raises Failed."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out: list[str] = []
    lines: list[str] = []
    err, std = proc.stderr, proc.stdout

    def read_err() -> None:
        for line in err:
            lines.append(f"{time.perf_counter() - t:7.1f} {line.rstrip()}")

    threads = [
        threading.Thread(target=read_err, daemon=True),
        threading.Thread(target=lambda: out.append(std.read()), daemon=True),
    ]
    for thread in threads:
        thread.start()
    name = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(argv))
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        for thread in threads:
            thread.join(5)
        raise Failed(
            f"{name}: not done within {timeout:.0f} s (killed)\n" + tail("\n".join(lines))
        ) from None
    for thread in threads:
        thread.join(30)
    took = time.perf_counter() - t
    stdout = "".join(out)
    if code != 0:
        raise Failed(
            f"{name} failed (exit {code}) after {took:.1f} s:\n"
            + tail(stdout, 2000)
            + tail("\n".join(lines))
        )
    return stdout, lines, took


def saline(env: dict[str, str], *args: str, timeout: float = 600) -> tuple[Any, float]:
    """A saline command with ``--format json``: its output (parsed) and its wall time."""
    stdout, _, took = run([SALINE, *args, "--format", "json"], env, timeout)
    return (json.loads(stdout) if stdout.strip() else None), took


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- Memory ---------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """VmRSS in bytes; 0 for a process gone (or a kernel thread)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def in_pods(pid: int) -> bool:
    """Whether a process is in the kubelet's pod cgroups (counted with the pods)."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False
    return any(line.split(":", 2)[2].startswith("/kubepods") for line in text.splitlines())


def cluster_processes(state: Path) -> dict[str, dict[str, float]]:
    """The cluster's own processes by program: count and summed RSS (MB)."""
    found: dict[str, dict[str, float]] = {}
    for pid in localkube.our_processes(f"{state}/"):
        argv = localkube.cmdline(pid)
        if pid == os.getpid() or not argv or in_pods(pid):
            continue
        row = found.setdefault(os.path.basename(argv[0]), {"processes": 0, "rss_mb": 0.0})
        row["processes"] += 1
        row["rss_mb"] += rss(pid) / 1e6
    return {k: {**v, "rss_mb": round(v["rss_mb"], 1)} for k, v in sorted(found.items())}


def cgroup_memory(folder: Path) -> tuple[int, int]:
    """(usage_in_bytes, working set: usage less total_inactive_file) of a v1 memory
    cgroup."""
    usage = int((folder / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    return usage, max(0, usage - int(stat.get("total_inactive_file", 0)))


def pods_memory(kubeconfig: Path, namespace: str) -> dict[str, Any]:
    """The pods' memory: the kubepods cgroup's usage and working set, and each pod's
    usage (its cgroup is kubepods[/QOS]/pod<UID>)."""
    if not KUBEPODS.is_dir():
        raise Failed(f"{KUBEPODS} is missing: not the cgroup v1 layout this bench reads")
    usage, working_set = cgroup_memory(KUBEPODS)
    names = {
        p["metadata"]["uid"]: f"{p['metadata']['name']} ({p['status'].get('phase')})"
        for p in Cluster.connect(str(kubeconfig)).objects("v1", "Pod", namespace, {})
    }
    per_pod: dict[str, float] = {}
    for folder in KUBEPODS.rglob("pod*"):
        uid = folder.name.removeprefix("pod")
        if folder.is_dir() and uid in names:
            per_pod[names[uid]] = round(cgroup_memory(folder)[0] / 1e6, 1)
    return {
        "usage_mb": round(usage / 1e6, 1),
        "working_set_mb": round(working_set / 1e6, 1),
        "per_pod_usage_mb": dict(sorted(per_pod.items())),
    }


def stack_memory(podman: Podman) -> dict[str, Any]:
    """The compose stack's running containers: `podman stats` each (as bench/stack.py),
    and the RSS of their conmon monitors."""
    running = [
        c
        for c in podman.containers(f"io.podman.compose.project={STACK}")
        if c.get("State") == "running"
    ]
    memory = podman.memory([c["Names"][0] for c in running])
    ids = {c["Id"] for c in running}
    conmon = 0
    for pid in localkube.our_processes("conmon"):
        argv = localkube.cmdline(pid) or []
        if argv and os.path.basename(argv[0]) == "conmon" and ids.intersection(argv):
            conmon += rss(pid)
    return {
        "containers_mb": {
            k.removeprefix(f"{STACK}_").removesuffix("_1"): round(v / 1e6, 1)
            for k, v in sorted(memory.items())
        },
        "total_mb": round(sum(memory.values()) / 1e6, 1),
        "conmon_rss_mb": round(conmon / 1e6, 1),
    }


# --- The steps ------------------------------------------------------------------------------


def binaries_cached(layout: localkube.Layout) -> bool:
    names = [*localkube.KUBE_COMMANDS, "etcd", *localkube.ADDON_COMMANDS]
    return all(layout.binary(n).exists() for n in names) and layout.pause_archive.exists()


def build_images(env: dict[str, str]) -> dict[str, Any]:
    images, took = saline(env, "build", "--push", timeout=3600)
    return {
        "images": len(images),
        "built": sum(1 for i in images if i["status"] == "built"),
        "pushed": sum(1 for i in images if i["pushed"]),
        "s": round(took, 1),
    }


def kube_deploy(env: dict[str, str]) -> dict[str, Any]:
    """`saline apply --yes` until `saline smoke` passes, on the cluster."""
    t = time.perf_counter()
    _, timeline, apply_s = run(
        [SALINE, "apply", "--yes", "--timeout", "900", "--format", "json"], env, 3600
    )
    saline(env, "smoke", timeout=600)
    return {
        "apply_s": round(apply_s, 1),
        "deploy_to_smoke_s": round(time.perf_counter() - t, 1),
        "apply_timeline": timeline,
    }


def compose_deploy(env: dict[str, str]) -> dict[str, Any]:
    """`saline up` until `saline smoke` passes, on podman (bench/stack.py's cold run)."""
    t = time.perf_counter()
    report, up_s = saline(env, "up", timeout=1800)
    saline(env, "smoke", timeout=600)
    ran = [s["name"] for s in report["steps"] if s["outcome"] == "ran"]
    return {
        "up_s": round(up_s, 1),
        "up_to_smoke_s": round(time.perf_counter() - t, 1),
        "tasks_run": len(ran),
    }


def table(results: dict[str, Any]) -> str:
    k, c, r = results["kubernetes"], results["compose"], results["ratios"]
    rows = [
        ("images: build --push (both examples)", f"{results['images_s']} s"),
        (
            "cluster up (kube-up to a Ready node)",
            f"{k['cluster_up_s']} s, binaries "
            + ("cached" if k["binaries_cached"] else "built in this run"),
        ),
        ("Kubernetes: apply", f"{k['apply_s']} s"),
        ("Kubernetes: apply until smoke passes", f"{k['deploy_to_smoke_s']} s"),
        ("compose: up", f"{c['up_s']} s"),
        ("compose: up until smoke passes", f"{c['up_to_smoke_s']} s"),
        ("ratio Kubernetes / compose, to smoke", f"{r['deploy_to_smoke']}x"),
        ("cluster processes, idle (RSS)", f"{k['cluster_idle_rss_mb']} MB"),
        ("cluster processes, deployed (RSS)", f"{k['cluster_rss_mb']} MB"),
        ("pods (kubepods usage)", f"{k['pods']['usage_mb']} MB"),
        ("Kubernetes total", f"{k['memory_total_mb']} MB"),
        ("compose containers (podman stats)", f"{c['memory']['total_mb']} MB"),
        ("ratio Kubernetes / compose, memory", f"{r['memory_total']}x"),
        ("ratio pods / containers", f"{r['memory_pods_to_containers']}x"),
        ("Kubernetes down, kube-down --purge", f"{k['down_s']} s, {k['kube_down_s']} s"),
    ]
    width = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def main() -> None:
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="saline-bench-kube-"))
    cluster_state = root / "cluster"
    layout = localkube.Layout(state=cluster_state, cache=localkube.default_cache())
    model = root / "model"
    shutil.copytree(KUBE_EXAMPLE, model)  # its classes/system link copied as files
    registry = LocalRegistry(f"127.0.0.1:{free_port()}", str(root / "registry"))
    base = {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_STACK": STACK,
        "SALINE_REGISTRY": registry.address,
        "NO_COLOR": "1",
    }
    compose_env = {**base, "SALINE_MODEL": str(COMPOSE_EXAMPLE), "SALINE_TARGET": "compose"}
    kube_env = {
        **base,
        "SALINE_MODEL": str(model),
        "SALINE_TARGET": "kubernetes",
        "SALINE_KUBE_SHARED_ACCESS_MODE": "ReadWriteOnce",
    }
    podman = Podman.for_state(base["SALINE_STATE_DIR"])  # the settings saline uses below
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cores": os.cpu_count(), "load_1m_at_start": round(os.getloadavg()[0], 2)},
    }
    kube: dict[str, Any] = {}
    compose: dict[str, Any] = {}
    cluster_started = kube_deployed = compose_started = False
    failure: str | None = None
    try:
        registry.start()
        print(f"images: build --push to {registry.address} ...", flush=True)
        results["images"] = {
            "kubernetes_example": build_images(kube_env),
            "compose_example": build_images(compose_env),
        }
        results["images_s"] = round(sum(i["s"] for i in results["images"].values()), 1)

        kube["binaries_cached"] = binaries_cached(layout)
        print(f"cluster up (binaries cached: {kube['binaries_cached']}) ...", flush=True)
        cluster_started = True
        stdout, _, took = run(
            [KUBE_UP, "--state", str(cluster_state), "--registry", registry.address],
            dict(os.environ),
            3600,  # a first run builds the binaries
        )
        kube["cluster_up_s"] = round(took, 1)
        kubeconfig = Path(stdout.strip().splitlines()[-1])
        kube_env["SALINE_KUBECONFIG"] = str(kubeconfig)
        idle = cluster_processes(cluster_state)
        kube["cluster_idle_rss_mb"] = round(sum(v["rss_mb"] for v in idle.values()), 1)

        print("Kubernetes: apply -> smoke ...", flush=True)
        kube_deployed = True
        kube.update(kube_deploy(kube_env))
        processes = cluster_processes(cluster_state)
        kube["cluster_processes"] = processes
        kube["cluster_rss_mb"] = round(sum(v["rss_mb"] for v in processes.values()), 1)
        kube["pods"] = pods_memory(kubeconfig, STACK)
        kube["memory_total_mb"] = round(kube["cluster_rss_mb"] + kube["pods"]["usage_mb"], 1)

        print("Kubernetes: down, kube-down ...", flush=True)
        _, kube["down_s"] = saline(kube_env, "down", "--volumes", timeout=900)
        kube["down_s"] = round(kube["down_s"], 1)
        kube_deployed = False
        _, _, took = run(
            [KUBE_DOWN, "--state", str(cluster_state), "--purge"], dict(os.environ), 300
        )
        kube["kube_down_s"] = round(took, 1)
        cluster_started = False

        print("compose: up -> smoke ...", flush=True)
        compose_started = True
        saline(compose_env, "down", "--volumes", timeout=600)  # leftovers of a killed run
        compose.update(compose_deploy(compose_env))
        compose["memory"] = stack_memory(podman)
        print("compose: down ...", flush=True)
        _, took = saline(compose_env, "down", "--volumes", timeout=600)
        compose["down_s"] = round(took, 1)
        compose_started = False

        results["kubernetes"] = kube
        results["compose"] = compose
        results["ratios"] = {
            "deploy_to_smoke": round(kube["deploy_to_smoke_s"] / compose["up_to_smoke_s"], 2),
            "memory_total": round(kube["memory_total_mb"] / compose["memory"]["total_mb"], 2),
            "memory_pods_to_containers": round(
                kube["pods"]["usage_mb"] / compose["memory"]["total_mb"], 2
            ),
        }
    except Failed as e:
        failure = str(e)
    finally:
        left = teardown(
            kube_env if kube_deployed else None,
            cluster_state if cluster_started else None,
            compose_env if compose_started else None,
            registry,
        )
        shutil.rmtree(root, ignore_errors=True)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    if failure or left:
        sys.exit("\n\n".join(filter(None, [failure, *left])))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    shown = {**results, "kubernetes": {k: v for k, v in kube.items() if k != "apply_timeline"}}
    print(json.dumps(shown, indent=2))
    print(table(results))
    print(f"wall time {results['wall_s']} s; results in {OUT.relative_to(REPO)}")


def teardown(
    kube_env: dict[str, str] | None,
    cluster_state: Path | None,
    compose_env: dict[str, str] | None,
    registry: LocalRegistry,
) -> list[str]:
    """Remove what is still up; the failures, as messages."""
    left: list[str] = []
    steps: list[tuple[str, list[str], dict[str, str], float]] = []
    if kube_env is not None:
        steps.append(("Kubernetes down", [SALINE, "down", "--volumes"], kube_env, 900))
    if cluster_state is not None:
        steps.append(
            (
                "kube-down",
                [KUBE_DOWN, "--state", str(cluster_state), "--purge"],
                {**os.environ},
                300,
            )
        )
    if compose_env is not None:
        steps.append(("compose down", [SALINE, "down", "--volumes"], compose_env, 600))
    for what, argv, env, timeout in steps:
        print(f"teardown: {what} ...", flush=True)
        try:
            run(argv, env, timeout)
        except Failed as e:
            left.append(f"teardown: {e}")
    try:
        registry.stop()
    except Exception as e:  # the registry's own error: reported, the run still ends
        left.append(f"teardown: registry stop: {e}")
    return left


if __name__ == "__main__":
    main()
