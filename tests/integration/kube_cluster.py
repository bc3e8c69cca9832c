"""A real single-node Kubernetes cluster for tests: scripts/kube-up once per session.

The cluster keeps its state in a temporary folder (``kube-down --purge`` deletes it); the
binaries come from kube-up's cache (``~/.cache/saline/kube``), built on first use (several
minutes on 2 cores; docs/kubernetes.md). containerd pulls from a saline registry the
session starts on a free port. At the end, teardown runs ``kube-down --purge`` and then
checks the host is as it was: no KUBE-* iptables chains, every sysctl the cluster may
change back at its value from before kube-up, no CNI bridge, no kubelet cgroups, no
host folder (/var/lib/kubelet, ...) that was not there before, no process (CoreDNS, the
volume provisioner, ...) or mount left of the state folder.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import localkube
from integration.conftest import free_port
from saline.runtime.registry import LocalRegistry
from tools import REPO, require_tools

KUBE_UP = REPO / "scripts" / "kube-up"
KUBE_DOWN = REPO / "scripts" / "kube-down"
#: Debian packages kube-up runs (scripts/install installs them).
TOOLS = ("containerd", "ctr", "runc", "conntrack", "iptables", "openssl", "gcc")


def kubectl_path() -> Path:
    """The kubectl kube-up built with the cluster's binaries (same version as the server)."""
    return localkube.Layout(
        state=localkube.default_state(), cache=localkube.default_cache()
    ).binary("kubectl")


def host_leftovers(before: dict[str, str], absent: list[str], state: Path) -> list[str]:
    """What a stopped cluster left on the host: KUBE-* chains, sysctls not back at their
    values in ``before``, the CNI bridge, kubelet cgroups, host folders of ``absent``,
    processes whose command line names the ``state`` folder, mounts in it."""
    found = []
    for save in ("iptables-save", "ip6tables-save"):
        dump = subprocess.run([save], capture_output=True, text=True, check=True).stdout
        chains = sorted({w.lstrip(":") for w in dump.split() if w.lstrip(":").startswith("KUBE-")})
        if chains:
            found.append(f"{save}: {', '.join(chains)}")
    after = localkube.read_sysctls()
    found += [
        f"sysctl {k}: {before[k]} -> {after.get(k)}" for k in before if after.get(k) != before[k]
    ]
    if Path(f"/sys/class/net/{localkube.BRIDGE}").exists():
        found.append(f"bridge {localkube.BRIDGE}")
    found += [str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")]
    found += [f"{p} (made by the cluster)" for p in absent if os.path.lexists(p)]
    found += [
        f"process {pid}: {' '.join(localkube.cmdline(pid) or [])}"
        for pid in localkube.our_processes(f"{state}/")
        if pid != os.getpid()
    ]
    found += [f"mount {m}" for m in localkube.mounts_under(state)]
    return found


# Module scope, not session: the cluster's kube-proxy rules share the filter and nat
# tables with podman's networks, so it goes down before the podman-stack tests that come
# after its module run.
@pytest.fixture(scope="module")
def kube_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """saline's registry (Debian's docker-registry, as ``saline registry start`` runs it)
    on a free port: HOST:PORT."""
    require_tools("docker-registry")
    address = f"127.0.0.1:{free_port()}"
    registry = LocalRegistry(address, str(tmp_path_factory.mktemp("kube-registry")))
    registry.start()
    yield address
    registry.stop()


@pytest.fixture(scope="module")
def kube_cluster(kube_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The cluster's admin kubeconfig; the cluster pulls from ``kube_registry``."""
    require_tools(*TOOLS)
    if os.geteuid() != 0:
        pytest.skip("kube-up needs root (containerd, the kubelet and kube-proxy change the host)")
    state = tmp_path_factory.mktemp("kube") / "state"
    before = localkube.read_sysctls()
    absent = localkube.absent_host_paths()
    try:
        up = subprocess.run(
            [KUBE_UP, "--state", state, "--registry", kube_registry],
            capture_output=True,
            text=True,
            # A cold build of the binaries takes minutes; from the cache it is seconds.
            timeout=3600,
        )
        assert up.returncode == 0, f"kube-up failed:\n{up.stderr[-4000:]}"
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        assert kubeconfig.is_file(), up.stdout
        yield kubeconfig
    finally:
        down = subprocess.run(
            [KUBE_DOWN, "--state", state, "--purge"], capture_output=True, text=True, timeout=300
        )
        assert down.returncode == 0, f"kube-down failed:\n{down.stderr[-4000:]}"
        assert not state.exists(), f"kube-down --purge left {state}"
        left = host_leftovers(before, absent, state)
        assert not left, "kube-down left on the host:\n" + "\n".join(left)
