"""Kubernetes manifests of a Release. Pure: no I/O, no clock, no environment.

:func:`kubernetes_manifests` turns the release of a model (every service instance's image,
config digests, health, ports, depends; every bootstrap task's inputs), the nodes'
pillars and the formulas' metadata into a list of Kubernetes objects (plain dicts, valid
for Kubernetes v1.37), byte-identical for the same inputs. :func:`manifest_files` lays
them out as one YAML stream per kind, numbered in the order ``kubectl apply -f DIR``
should meet them. What becomes what, and why:

* **A service is one workload**, named after the service (``keystone``). Its replicas
  are ``saline:kubernetes:services:SERVICE:replicas`` in the model, else the number of
  model nodes that run it. Several nodes running one service become one workload whose
  pods share one configuration: their rendered config files and their pillar sections
  must be the same (else a :class:`ModelError` naming the service, the file and the
  model values that differ, with the file and line that set each).
* **Stateless services are Deployments**: ``RollingUpdate`` with ``maxUnavailable: 0``
  and ``maxSurge: 1`` (a new pod serves before an old one goes), a 5 s ``preStop`` sleep
  so that endpoints drop the pod before its process is told to stop, and a grace period
  that covers it; startup, readiness and liveness probes from the formula's ``health``
  (``httpGet`` when every status it accepts is one the kubelet counts as success,
  200-399; else the image's own ``saline-entrypoint health http``, the compose
  health check; ``tcpSocket``; ``exec``); resource requests from the formula's
  ``resources``. A Deployment's volumes are shared by its replicas, as the compose stack
  shares them: glance's file store is one PersistentVolumeClaim every glance-api pod
  mounts (access mode :attr:`KubeOptions.shared_access_mode`, ReadWriteMany by default:
  each replica must serve every image; a store per replica would lose images).
* **Stateful services are StatefulSets** (formula ``stateful: true``: mariadb, rabbitmq):
  a volume claim per replica (``volumeClaimTemplates``, sizes from
  ``saline:kubernetes:services:SERVICE:storage``, default 1Gi) and a headless Service
  (``SERVICE-headless``) for their pods' identities. A formula volume under ``/run`` is
  runtime state (a socket folder, cleared at boot on any host): an ``emptyDir``.
* **Configuration**: the pods of a service get only its pillar section (formula
  ``pillar``, e.g. ``keystone:server``; formulas read nothing else), so a value of
  another service never touches them. It is split in two: a **ConfigMap**
  ``SERVICE-pillar-DIGEST`` (the section as JSON, every value that is or holds a secret
  of the model, see :func:`saline.model.secrets.secret_values`, replaced by
  :data:`PLACEHOLDER`) and a **Secret** ``SERVICE-secrets-DIGEST`` (those values by JSON
  Pointer). Both are named by a digest of their content and ``immutable``: a change
  makes new ones, the pod template names them, so the pods roll; the old ReplicaSet
  keeps its own, and a rollback is a re-apply of the earlier manifests. The image's
  entrypoint merges the two (``SALINE_PILLAR`` + ``SALINE_PILLAR_SECRETS``) and runs the
  configure states as on compose. A change of any value in the section rolls the pods
  (on compose the impact table may let it reload or do nothing): the price of pods
  that never change under a running ReplicaSet.
* **A bootstrap task with ``scope: service`` is a Job** named
  ``SERVICE-TASK-INPUTS`` (its input digest: image, states and the pillar values it
  declares). A changed task gets a new name and runs; an unchanged one keeps its name
  and never runs again; a Job is never patched: its pod template depends on nothing
  but its name. So its pillar comes from a ConfigMap and a Secret named like the Job
  and *not* immutable: a value outside the task's inputs may change (it updates them in
  place, the finished Job does not care), one of its inputs cannot without a new name.
  Finished Jobs are kept (no TTL): they are the record that the task ran. A task that
  ``needs_running`` waits (``SALINE_WAIT_FOR``) for its own service's Service; the
  others for the services they depend on. Job pods mount the volumes a Deployment
  shares, never a StatefulSet's (those belong to one pod each).
* **A bootstrap task with ``scope: instance`` is an initContainer** of the service's
  pods: on Kubernetes a pod is the instance, with its own volumes and network, which a
  separate Job could not reach; the task is idempotent by the formula's contract, so
  running again when a pod is recreated is harmless. One that ``needs_running`` (it
  must talk to its own running service) has no such place: a model error.
* **Services**: a ClusterIP Service per service with ports, named after the service (so
  the model's addresses are Service names), ports from the formula.
  **PodDisruptionBudget** (``maxUnavailable: 1``) for each service with more than one
  replica.
* **NetworkPolicies**: ``default-deny`` (every ingress in the namespace refused), then
  one per service admitting, on its ports: its own pods and Jobs; the pods and Jobs of
  every *client*; and, for a service the model marks ``public``, anyone. A client of S
  is a service that depends on S (its ``depends`` or a task's), or whose pillar section
  names S as an address (a value under a key ending in ``host``, ``address``, ``server``,
  ``url``, ``uri`` or ``endpoint``, or the host of any URL, equal to S or ``S.NAMESPACE...``):
  glance-api talks to rabbitmq without depending on it, and its
  ``message_queue:host`` says so. ``saline:kubernetes:services:S:clients`` adds more.
  Egress is not restricted.
* **Capabilities** a formula adds (``capabilities``) are the container's
  ``securityContext.capabilities.add``. A service that holds a **virtual address**
  (``vrrp``: keepalived) is refused with a :class:`ModelError` naming it: pods have no
  such address, a Service is the equivalent. So is a service that needs its node
  (formula ``host``: privileged, host network, devices, shared folders: libvirt,
  nova-compute, the network agents), which needs a pod per node: not rendered yet.
* **Labels**: ``app.kubernetes.io/name`` (the service), ``instance``
  (:attr:`KubeOptions.name`), ``component`` (``server``, ``bootstrap``), ``part-of``,
  ``managed-by: saline``, ``version`` (the image tag: a config change is not a new
  version of the software). **Annotations** carry the change keys, as the compose labels
  do: ``saline/instances`` (each instance's digest), ``saline/task`` and
  ``saline/task-inputs``. The release id is in one object, the ConfigMap
  ``saline-release`` (with every instance's digest and task's inputs): on every object
  it would make each release touch every object, and on a pod template roll every pod.
* **Images** are ``REGISTRY/saline/SERVICE:TAG`` from the release (tags are content
  digests, so ``IfNotPresent``); the cluster pulls from saline's registry.

No object holds a secret outside a Secret: not a ConfigMap, a label, an annotation or
an environment variable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..errors import FormulaError, Location, ModelError, UsageError
from ..formulas.schema import Service
from ..model import pillar_value
from ..model.secrets import secret_values
from ..release import Instance, Release, Task

#: Where a node's value is set: (``file:line``, origin through references), or Nones.
Locate = Callable[[str, str], tuple[str | None, str | None]]

#: Each kind's API group and version (Kubernetes v1.37), in the order they are applied.
API_VERSIONS: dict[str, str] = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolumeClaim": "v1",
    "Service": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PodDisruptionBudget": "policy/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "Deployment": "apps/v1",
}
#: The file of each kind: ``kubectl apply -f DIR`` reads them in this (lexical) order.
FILES: dict[str, str] = {
    "Namespace": "00-namespace.yaml",
    "ConfigMap": "10-configmaps.yaml",
    "Secret": "20-secrets.yaml",
    "PersistentVolumeClaim": "30-volume-claims.yaml",
    "Service": "40-services.yaml",
    "NetworkPolicy": "50-network-policies.yaml",
    "PodDisruptionBudget": "60-disruption-budgets.yaml",
    "StatefulSet": "70-statefulsets.yaml",
    "Job": "80-jobs.yaml",
    "Deployment": "90-deployments.yaml",
}
SECRETS_FILE = FILES["Secret"]

#: The model's Kubernetes settings: ``saline:kubernetes:services:SERVICE:...``.
SETTINGS = ("saline", "kubernetes")
SERVICE_SETTINGS = ("replicas", "public", "clients", "storage")

#: What a secret value is replaced with in a pillar ConfigMap.
PLACEHOLDER = "saline:secret"
PILLAR_DIR = "/run/saline/pillar"
PILLAR_KEY = "pillar.json"
SECRETS_DIR = "/run/saline/secrets"
SECRETS_KEY = "secrets.json"
RELEASE_OBJECT = "saline-release"

#: Seconds a stopping pod keeps serving while endpoints drop it, and then for the service
#: to stop (a database flushes: longer).
PRESTOP_SECONDS = 5
STOP_SECONDS = 30
STATEFUL_STOP_SECONDS = 60
LIVENESS_PERIOD = 10
#: Pod failures a Job retries (tasks are idempotent; a dependency may still be starting).
JOB_BACKOFF_LIMIT = 3
#: How long the entrypoint waits for what a container needs (its SALINE_WAIT_TIMEOUT).
WAIT_SECONDS = 600
DEFAULT_STORAGE = "1Gi"
ACCESS_MODES = ("ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")

ANNOTATION = "saline/"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
TASK_LABEL = "saline/task"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_HOST_KEY = re.compile(r"(^|_)(host|hosts|address|addresses|server|servers|url|uri|endpoint)$")


@dataclass(frozen=True)
class KubeOptions:
    """Where and how the manifests run: given explicitly, never read from anywhere."""

    #: The namespace every object goes in.
    namespace: str = "openstack"
    #: The deployment's name (``app.kubernetes.io/instance``).
    name: str = "openstack"
    #: The registry the cluster pulls saline's images from (HOST:PORT).
    registry: str = "127.0.0.1:5000"
    #: The StorageClass of every volume claim; None: the cluster's default class.
    storage_class: str | None = None
    #: Access mode of a volume all replicas of a Deployment mount (glance's file store).
    #: ReadWriteOnce suffices on a single-node cluster.
    shared_access_mode: str = "ReadWriteMany"
    part_of: str = "openstack"
    #: Include the Namespace object (off when the namespace is someone else's to make).
    namespace_object: bool = True

    def check(self) -> None:
        """Raise :class:`UsageError` for a value Kubernetes would refuse."""
        for what, value in (("namespace", self.namespace), ("name", self.name)):
            if len(value) > 63 or not _DNS_LABEL.match(value):
                raise UsageError(
                    f"{what} {value!r}: at most 63 lowercase letters, digits and '-', "
                    "starting and ending with a letter or digit"
                )
        if not self.registry or "/" in self.registry.strip("/") or " " in self.registry:
            raise UsageError(f"registry {self.registry!r}: give HOST:PORT")
        if self.shared_access_mode not in ACCESS_MODES:
            raise UsageError(
                f"access mode {self.shared_access_mode!r}: one of {', '.join(ACCESS_MODES)}"
            )


def namespace_name(text: str) -> str:
    """A namespace (DNS label) from a folder or stack name: ``openstack_kube`` ->
    ``openstack-kube``."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return name or "saline"


# -- the model's settings -----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSettings:
    """``saline:kubernetes:services:SERVICE`` of the model."""

    replicas: int | None = None
    public: bool = False
    clients: tuple[str, ...] = ()
    storage: Mapping[str, str] = field(default_factory=dict)


def _nowhere(node: str, key: str) -> tuple[str | None, str | None]:
    return None, None


def _location(locate: Locate, node: str, key: str) -> Location:
    where, _ = locate(node, key)
    file: str | None = None
    line: int | None = None
    if where:
        file, _, number = where.rpartition(":")
        if number.isdigit():
            line = int(number)
        else:
            file = where
    return Location(file=file, line=line, node=node, key=key)


def _settings(
    node: str, pillar: Mapping[str, Any], services: Iterable[str], locate: Locate
) -> dict[str, ServiceSettings]:
    """The node's ``saline:kubernetes`` settings, checked: unknown keys and services, and
    values of the wrong type, are model errors naming the key."""
    base = ":".join(SETTINGS)

    def fail(key: str, message: str) -> ModelError:
        return ModelError(message, _location(locate, node, key))

    value: Any = pillar
    for k in SETTINGS:
        value = value.get(k) if isinstance(value, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, Mapping) or set(value) - {"services"}:
        raise fail(base, "must be a mapping with one key, services")
    found = value.get("services") or {}
    if not isinstance(found, Mapping):
        raise fail(f"{base}:services", "must be a mapping of service name: settings")
    known = sorted(services)
    out: dict[str, ServiceSettings] = {}
    for name, raw in found.items():
        key = f"{base}:services:{name}"
        if name not in known:
            raise fail(
                key, f"no node of the model runs a service {name!r} (it runs: {', '.join(known)})"
            )
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise fail(key, f"must be a mapping of {', '.join(SERVICE_SETTINGS)}")
        unknown = sorted(set(raw) - set(SERVICE_SETTINGS))
        if unknown:
            raise fail(
                f"{key}:{unknown[0]}", f"unknown setting (known: {', '.join(SERVICE_SETTINGS)})"
            )
        replicas = raw.get("replicas")
        if replicas is not None and (
            isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1
        ):
            raise fail(f"{key}:replicas", f"must be a whole number of at least 1, not {replicas!r}")
        public = raw.get("public", False)
        if not isinstance(public, bool):
            raise fail(f"{key}:public", f"must be true or false, not {public!r}")
        clients = raw.get("clients") or []
        if not isinstance(clients, list) or not all(c in known for c in clients):
            raise fail(
                f"{key}:clients", f"must be a list of the model's services ({', '.join(known)})"
            )
        storage = raw.get("storage") or {}
        if not isinstance(storage, Mapping) or not all(
            isinstance(v, str) and _QUANTITY.match(v) for v in storage.values()
        ):
            raise fail(f"{key}:storage", "must map volume names to sizes (like 10Gi)")
        out[str(name)] = ServiceSettings(
            replicas, public, tuple(sorted(set(clients))), dict(sorted(storage.items()))
        )
    return out


# -- pillars and secrets ------------------------------------------------------------------


def _section(pillar: Mapping[str, Any], path: str) -> Any:
    value: Any = pillar
    for k in path.split(":"):
        value = value.get(k) if isinstance(value, Mapping) else None
    return value


def _wrapped(path: str, value: Any) -> dict[str, Any]:
    """``{"keystone": {"server": value}}`` for ``keystone:server``."""
    out: Any = value
    for k in reversed(path.split(":")):
        out = {k: out}
    result: dict[str, Any] = out
    return result


def _pointer_key(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def split_secrets(tree: Any, secrets: set[str]) -> tuple[Any, dict[str, Any]]:
    """``tree`` with every value that is or holds a secret replaced by
    :data:`PLACEHOLDER`, and those values by JSON Pointer (RFC 6901). Pure.

    A mapping key holding a secret is a ValueError (it has no place in a ConfigMap)."""
    found: dict[str, Any] = {}
    ordered = sorted(secrets, key=lambda s: (-len(s), s))

    def secret(text: str) -> bool:
        return any(s in text for s in ordered)

    def walk(value: Any, pointer: str) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if secret(str(k)):
                    raise ValueError(f"a key at {pointer or '/'} holds a secret value")
                out[k] = walk(v, f"{pointer}/{_pointer_key(str(k))}")
            return out
        if isinstance(value, list):
            return [walk(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        if value is not None and not isinstance(value, bool) and secret(str(value)):
            found[pointer] = value
            return PLACEHOLDER
        return value

    return walk(tree, ""), found


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _digest(text: str, size: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path, value


# -- the services ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Workload:
    """One service as Kubernetes runs it."""

    name: str
    spec: Service
    instances: tuple[Instance, ...]
    settings: ServiceSettings
    replicas: int
    pillar: dict[str, Any]  # the section, wrapped in its keys
    secrets: set[str]

    @property
    def first(self) -> Instance:
        return self.instances[0]

    @property
    def kind(self) -> str:
        return "StatefulSet" if self.spec.stateful else "Deployment"


def _shown(value: Any, secrets: set[str]) -> str:
    if value is None:
        return "not set"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    if any(s in text for s in secrets):
        return "(a secret value)"
    return text if len(text) <= 60 else text[:57] + "..."


def _check_alike(
    name: str,
    kind: str,
    spec: Service,
    instances: Sequence[Instance],
    pillars: Mapping[str, Mapping[str, Any]],
    secrets: set[str],
    locate: Locate,
) -> None:
    """The instances of a service on several nodes are one workload: the same files, the
    same pillar section (what its pods are configured from)."""
    first = instances[0]
    want = _section(pillars[first.node], spec.pillar)
    for other in instances[1:]:
        what = ""
        mine = {c.path: (c.digest, c.mode) for c in first.configs}
        theirs = {c.path: (c.digest, c.mode) for c in other.configs}
        for path in sorted(set(mine) | set(theirs)):
            if mine.get(path) != theirs.get(path):
                what = f"its config file {path} differs between them"
                break
        have = _section(pillars[other.node], spec.pillar)
        if not what and have == want:
            continue
        if not what:
            what = f"its pillar section {spec.pillar} differs between them"
        a, b = dict(_leaves(want)), dict(_leaves(have))
        causes: list[str] = []
        location: Location | None = None
        for leaf in sorted(set(a) | set(b)):
            if a.get(leaf) == b.get(leaf):
                continue
            key = ":".join((spec.pillar, *leaf))
            where_a, _ = locate(first.node, key)
            where_b, _ = locate(other.node, key)
            causes.append(
                f"{key} is {_shown(a.get(leaf), secrets)} on {first.node}"
                f" ({where_a or 'not set'}) and {_shown(b.get(leaf), secrets)} on"
                f" {other.node} ({where_b or 'not set'})"
            )
            if location is None:
                location = _location(locate, other.node, key)
        because = "; ".join(causes[:5]) + (f"; and {len(causes) - 5} more" if causes[5:] else "")
        if not causes:
            because = f"no value of {spec.pillar} differs: something else in the nodes' pillars"
        raise ModelError(
            f"service {name} runs on {first.node} and {other.node}, which Kubernetes runs "
            f"as one {kind} whose pods share one configuration, but {what}: {because}. "
            "Give the nodes the same values, or run the service on one node with "
            f"{':'.join(SETTINGS)}:services:{name}:replicas: {len(instances)}",
            location,
        )


def _host_needs(spec: Service) -> str:
    """What a service asks of its node, in words (``privileged, shared /run/libvirt``)."""
    host = spec.host
    needs = [
        word
        for word, on in (
            ("privileged", host.privileged),
            ("host network", host.host_network),
            ("init", host.init),
        )
        if on
    ]
    needs += [f"device {d}" for d in host.devices]
    needs += [f"shared {path}" for path in host.shared.values()]
    return ", ".join(needs)


def _workloads(
    release: Release,
    pillars: Mapping[str, Mapping[str, Any]],
    specs: Mapping[str, Service],
    locate: Locate,
) -> list[_Workload]:
    by_service: dict[str, list[Instance]] = {}
    for inst in sorted(release.instances, key=lambda i: (i.service, i.node)):
        by_service.setdefault(inst.service, []).append(inst)
    out = []
    for name, instances in sorted(by_service.items()):
        spec = specs.get(name)
        if spec is None:
            raise ModelError(f"no formula provides service {name}, which the release runs")
        if spec.vrrp is not None:
            raise ModelError(
                f"service {name} holds a virtual address (VRRP, {spec.vrrp.instances}) on "
                f"{', '.join(i.node for i in instances)}: Kubernetes gives pods no such "
                "address, a Service is its equivalent. Run it on compose or on hosts; leave "
                f"it out of a model for Kubernetes ({spec.pillar}:enabled: false, or not "
                "in the nodes' applications)",
                _location(locate, instances[0].node, f"{spec.pillar}:enabled"),
            )
        if spec.host.needs_host():
            raise ModelError(
                f"service {name} on {', '.join(i.node for i in instances)} needs its node "
                f"itself ({_host_needs(spec)}): saline does not render host-level "
                "services for Kubernetes yet (they need a pod on each node, with the "
                "node's network and folders). Run them on compose or on hosts; leave "
                f"them out of a model for Kubernetes ({spec.pillar}:enabled: false)",
                _location(locate, instances[0].node, f"{spec.pillar}:enabled"),
            )
        if spec.cluster is not None:
            for inst in instances:
                for section in spec.cluster.pillar:
                    if pillar_value(pillars[inst.node], f"{section}:enabled") is True:
                        raise ModelError(
                            f"service {name} on {inst.node} is a member of a cluster "
                            f"({section}): saline does not run clustered {name} on "
                            "Kubernetes yet (its members are named by the nodes' addresses, "
                            "which pods do not have). Run the cluster on compose or on "
                            f"hosts; on Kubernetes run one {name} ({section}:enabled: false)",
                            _location(locate, inst.node, f"{section}:enabled"),
                        )
        settings: ServiceSettings | None = None
        secrets: set[str] = set()
        for inst in instances:
            found = _settings(inst.node, pillars[inst.node], by_service, locate).get(
                name, ServiceSettings()
            )
            if settings is not None and found != settings:
                raise ModelError(
                    f"nodes {instances[0].node} and {inst.node} run service {name} with "
                    f"different {':'.join(SETTINGS)}:services:{name}: Kubernetes runs "
                    "one workload for both",
                    _location(locate, inst.node, f"{':'.join(SETTINGS)}:services:{name}"),
                )
            settings = found
            secrets |= secret_values(dict(pillars[inst.node]))
        assert settings is not None
        kind = "StatefulSet" if spec.stateful else "Deployment"
        if len(instances) > 1:
            _check_alike(name, kind, spec, instances, pillars, secrets, locate)
        for vol in settings.storage:
            if vol not in spec.volumes:
                raise ModelError(
                    f"service {name} has no volume {vol!r} (its formula declares: "
                    f"{', '.join(sorted(spec.volumes)) or 'none'})",
                    _location(
                        locate,
                        instances[0].node,
                        f"{':'.join(SETTINGS)}:services:{name}:storage:{vol}",
                    ),
                )
        section = _section(pillars[instances[0].node], spec.pillar)
        out.append(
            _Workload(
                name=name,
                spec=spec,
                instances=tuple(instances),
                settings=settings,
                replicas=settings.replicas or len(instances),
                pillar=_wrapped(spec.pillar, section),
                secrets=secrets,
            )
        )
    return out


def _hosts(tree: Any) -> set[str]:
    """Host names a pillar section points at (see the module's docstring)."""
    found: set[str] = set()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k).lower())
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            if "://" in value:
                try:
                    host = urlsplit(value).hostname
                except ValueError:
                    host = None
                if host:
                    found.add(host)
            elif _HOST_KEY.search(key):
                found.add(value.rsplit(":", 1)[0] if value.count(":") == 1 else value)

    walk(tree, "")
    return found


def _clients(
    workloads: Sequence[_Workload], tasks: Sequence[Task], namespace: str
) -> dict[str, set[str]]:
    """For each service, the services whose pods or Jobs talk to it."""
    names = {w.name for w in workloads}
    out: dict[str, set[str]] = {n: set() for n in names}
    for w in workloads:
        for inst in w.instances:
            for dep in inst.depends:
                if dep in out and dep != w.name:
                    out[dep].add(w.name)
        for host in _hosts(w.pillar):
            for target in names - {w.name}:
                if host == target or host.startswith(f"{target}.{namespace}"):
                    out[target].add(w.name)
        for c in w.settings.clients:
            out[w.name].add(c)
    for t in tasks:
        for dep in t.depends:
            if dep in out and dep != t.service:
                out[dep].add(t.service)
    for n in out:
        out[n].discard(n)
    return out


# -- objects ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, options: KubeOptions) -> None:
        self.options = options

    def labels(self, name: str, component: str, version: str | None) -> dict[str, str]:
        labels = {
            COMPONENT: component,
            INSTANCE: self.options.name,
            "app.kubernetes.io/managed-by": "saline",
            NAME: name,
            "app.kubernetes.io/part-of": self.options.part_of,
        }
        if version:
            labels["app.kubernetes.io/version"] = version
        return labels

    def selector(self, name: str, component: str = "server") -> dict[str, str]:
        return {COMPONENT: component, INSTANCE: self.options.name, NAME: name}

    def meta(
        self,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
        namespaced: bool = True,
    ) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if namespaced:
            meta["namespace"] = self.options.namespace
        meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(sorted(annotations.items()))
        return meta

    def obj(self, kind: str, meta: dict[str, Any], **body: Any) -> dict[str, Any]:
        return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta, **body}

    def image(self, image: str, tag: str) -> str:
        return f"{self.options.registry.rstrip('/')}/{image}:{tag}"


def _probe_handler(health: Mapping[str, Any]) -> dict[str, Any]:
    if "http" in health:
        http = health["http"]
        codes = [int(c) for c in http.get("status", [200])]
        if all(200 <= c < 400 for c in codes):
            return {"httpGet": {"path": http.get("path", "/"), "port": int(http["port"])}}
        url = f"http://127.0.0.1:{http['port']}{http.get('path', '/')}"
        command = ["saline-entrypoint", "health", "http", url, ",".join(map(str, codes))]
        return {"exec": {"command": command}}
    if "tcp" in health:
        return {"tcpSocket": {"port": int(health["tcp"]["port"])}}
    return {"exec": {"command": [str(c) for c in health["exec"]["command"]]}}


def _probes(health: Mapping[str, Any]) -> dict[str, Any]:
    """startup, readiness and liveness from the formula's health: startup allows the
    start period and then three misses, as the compose health check does."""
    handler = _probe_handler(health)
    period = max(1, math.ceil(float(health.get("interval", 2))))
    timeout = max(1, math.ceil(float(health.get("timeout", 5))))
    start = math.ceil(float(health.get("start_period", 120)))
    return {
        "startupProbe": {
            **handler,
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": math.ceil(start / period) + 3,
        },
        "readinessProbe": {
            **handler,
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            **handler,
            "periodSeconds": max(LIVENESS_PERIOD, period),
            "timeoutSeconds": timeout,
            "failureThreshold": 3,
        },
    }


def _ephemeral(path: str) -> bool:
    """A volume path that holds runtime state only (a socket folder): an emptyDir."""
    return path == "/run" or path.startswith(("/run/", "/var/run/"))


def _wait_target(w: _Workload) -> str | None:
    """``SERVICE:PORT`` that accepts connections once the service is up."""
    health = w.first.health
    if "http" in health:
        return f"{w.name}:{health['http']['port']}"
    if "tcp" in health:
        return f"{w.name}:{health['tcp']['port']}"
    if w.first.ports:
        return f"{w.name}:{w.first.ports[0]['port']}"
    return None


def _config_objects(
    b: _Builder,
    name: str,
    tree: Any,
    secrets: set[str],
    labels: dict[str, str],
    annotations: dict[str, str],
    immutable: bool,
    where: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ConfigMap and a Secret holding ``tree`` (named NAME-pillar-DIGEST and
    NAME-secrets-DIGEST when ``immutable``, else both NAME)."""
    try:
        public, hidden = split_secrets(tree, secrets)
    except ValueError as e:
        raise ModelError(f"{where}: {e}; secrets belong in values, not keys") from None
    config_text = _json(public)
    secret_text = _json(hidden)
    config_name = f"{name}-pillar-{_digest(config_text)}" if immutable else name
    secret_name = f"{name}-secrets-{_digest(secret_text)}" if immutable else name
    config = b.obj(
        "ConfigMap",
        b.meta(config_name, labels, annotations),
        data={PILLAR_KEY: config_text},
    )
    secret = b.obj(
        "Secret",
        b.meta(secret_name, labels, annotations),
        type="Opaque",
        data={SECRETS_KEY: base64.b64encode(secret_text.encode()).decode()},
    )
    if immutable:
        config["immutable"] = True
        secret["immutable"] = True
    return config, secret


def _env(node: str, base: Mapping[str, str], wait: Sequence[str]) -> list[dict[str, str]]:
    env = {
        **base,
        "SALINE_NODE": node,
        "SALINE_PILLAR": f"{PILLAR_DIR}/{PILLAR_KEY}",
        "SALINE_PILLAR_SECRETS": f"{SECRETS_DIR}/{SECRETS_KEY}",
    }
    if wait:
        env["SALINE_WAIT_FOR"] = ",".join(dict.fromkeys(wait))
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def _config_volumes(config: str, secret: str) -> tuple[list[Any], list[Any]]:
    mounts = [
        {"name": "saline-pillar", "mountPath": PILLAR_DIR, "readOnly": True},
        {"name": "saline-secrets", "mountPath": SECRETS_DIR, "readOnly": True},
    ]
    volumes = [
        {"name": "saline-pillar", "configMap": {"name": config}},
        # Read by the entrypoint (root) before it drops to the service's user.
        {"name": "saline-secrets", "secret": {"secretName": secret, "defaultMode": 0o400}},
    ]
    return mounts, volumes


def _resources(spec: Service) -> dict[str, Any]:
    return {"requests": {"cpu": spec.resources.cpu, "memory": spec.resources.memory}}


def _ports(w: _Workload) -> list[dict[str, Any]]:
    out = []
    for p in w.first.ports:
        pname = str(p["name"])
        if len(pname) > 15 or not _PORT_NAME.match(pname) or pname.isdigit():
            raise FormulaError(
                f"service {w.name}: port name {pname!r} is not a Kubernetes port name "
                "(at most 15 lowercase letters, digits and '-')"
            )
        out.append(
            {
                "name": pname,
                "containerPort": int(p["port"]),
                "protocol": str(p.get("protocol", "tcp")).upper(),
            }
        )
    return out


def _storage_claim(b: _Builder, w: _Workload, vol: str, name: str, mode: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": [mode],
        "resources": {"requests": {"storage": w.settings.storage.get(vol, DEFAULT_STORAGE)}},
    }
    if b.options.storage_class:
        spec["storageClassName"] = b.options.storage_class
    labels = b.labels(w.name, "server", None)
    return {"metadata": {"name": name, "labels": labels}, "spec": spec}


def _job_name(task: Task) -> str:
    prefix = f"{task.service}-{task.task}"[:46].rstrip("-")
    return f"{prefix}-{task.inputs}"


def _service_objects(
    b: _Builder,
    w: _Workload,
    waits: Mapping[str, str | None],
    clients: set[str],
    tasks: Sequence[Task],
    pillars: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    first = w.first
    version = first.image_tag
    labels = b.labels(w.name, "server", version)
    selector = b.selector(w.name)
    digests = json.dumps(
        {i.key: i.digest for i in w.instances}, sort_keys=True, separators=(",", ":")
    )
    annotations = {f"{ANNOTATION}instances": digests}

    config, secret = _config_objects(
        b,
        w.name,
        w.pillar,
        w.secrets,
        b.labels(w.name, "server", None),
        {f"{ANNOTATION}pillar": w.spec.pillar},
        True,
        f"service {w.name}",
    )
    objects += [config, secret]
    mounts, volumes = _config_volumes(config["metadata"]["name"], secret["metadata"]["name"])
    claims: list[dict[str, Any]] = []
    shared: list[tuple[str, str]] = []  # (volume, claim) a Deployment's pods share
    for vol, path in sorted(first.volumes.items()):
        mounts.append({"name": vol, "mountPath": path})
        if _ephemeral(path):
            volumes.append({"name": vol, "emptyDir": {}})
        elif w.spec.stateful:
            claims.append(_storage_claim(b, w, vol, vol, "ReadWriteOnce"))
        else:
            claim = f"{w.name}-{vol}"
            pvc = _storage_claim(b, w, vol, claim, b.options.shared_access_mode)
            pvc["metadata"]["namespace"] = b.options.namespace
            objects.append(b.obj("PersistentVolumeClaim", pvc["metadata"], spec=pvc["spec"]))
            volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claim}})
            shared.append((vol, claim))

    wait = [t for t in (waits.get(d) for d in first.depends) if t]
    env = _env(first.node, first.env, wait)
    resources = _resources(w.spec)

    init: list[dict[str, Any]] = []
    task_annotations: dict[str, str] = {}
    for t in tasks:
        if t.scope != "instance" or t.service != w.name or t.node != first.node:
            continue
        if t.needs_running:
            raise ModelError(
                f"bootstrap task {t.task} of {w.name} runs once per instance and needs the "
                "running service: on Kubernetes an instance's tasks run before its service "
                "starts (initContainers); make it scope: service, or needs_running: false"
            )
        init.append(
            {
                "name": f"task-{t.task}",
                "image": b.image(t.image, t.image_tag),
                "imagePullPolicy": "IfNotPresent",
                "args": ["bootstrap", t.task],
                "env": env,
                "resources": resources,
                "volumeMounts": mounts,
            }
        )
        task_annotations[f"{ANNOTATION}task-{t.task}"] = t.inputs

    container: dict[str, Any] = {
        "name": w.name,
        "image": b.image(first.image, first.image_tag),
        "imagePullPolicy": "IfNotPresent",
        "env": env,
    }
    ports = _ports(w)
    if ports:
        container["ports"] = ports
    container["resources"] = resources
    container["volumeMounts"] = mounts
    container.update(_probes(first.health))
    if w.spec.capabilities:
        container["securityContext"] = {"capabilities": {"add": list(w.spec.capabilities)}}
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}}

    stop = STATEFUL_STOP_SECONDS if w.spec.stateful else STOP_SECONDS
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": PRESTOP_SECONDS + stop,
    }
    if init:
        pod["initContainers"] = init
    pod["containers"] = [container]
    pod["volumes"] = volumes
    template = {
        "metadata": {
            "labels": labels,
            "annotations": dict(sorted({**annotations, **task_annotations}.items())),
        },
        "spec": pod,
    }
    meta = b.meta(w.name, labels, annotations)
    if w.spec.stateful:
        spec: dict[str, Any] = {
            "replicas": w.replicas,
            "serviceName": f"{w.name}-headless",
            "selector": {"matchLabels": selector},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "template": template,
        }
        if claims:
            spec["volumeClaimTemplates"] = claims
        objects.append(b.obj("StatefulSet", meta, spec=spec))
    else:
        spec = {
            "replicas": w.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": template,
        }
        objects.append(b.obj("Deployment", meta, spec=spec))

    service_ports = [
        {
            "name": p["name"],
            "port": p["containerPort"],
            "targetPort": p["name"],
            "protocol": p["protocol"],
        }
        for p in ports
    ]
    if service_ports:
        objects.append(
            b.obj(
                "Service",
                b.meta(w.name, b.labels(w.name, "server", None)),
                spec={"type": "ClusterIP", "selector": selector, "ports": service_ports},
            )
        )
        if w.spec.stateful:
            objects.append(
                b.obj(
                    "Service",
                    b.meta(f"{w.name}-headless", b.labels(w.name, "server", None)),
                    spec={
                        "clusterIP": "None",
                        "publishNotReadyAddresses": True,
                        "selector": selector,
                        "ports": service_ports,
                    },
                )
            )
        peers = [
            {"podSelector": {"matchLabels": {INSTANCE: b.options.name, NAME: c}}}
            for c in sorted(clients | {w.name})
        ]
        rule: dict[str, Any] = {}
        if not w.settings.public:
            rule["from"] = peers
        rule["ports"] = [{"protocol": p["protocol"], "port": p["port"]} for p in service_ports]
        objects.append(
            b.obj(
                "NetworkPolicy",
                b.meta(w.name, b.labels(w.name, "server", None)),
                spec={
                    "podSelector": {"matchLabels": selector},
                    "policyTypes": ["Ingress"],
                    "ingress": [rule],
                },
            )
        )
    if w.replicas > 1:
        objects.append(
            b.obj(
                "PodDisruptionBudget",
                b.meta(w.name, b.labels(w.name, "server", None)),
                spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            )
        )

    for t in tasks:
        if t.scope == "service" and t.service == w.name:
            objects += _job(b, w, t, pillars, waits, shared, resources)
    return objects


def _job(
    b: _Builder,
    w: _Workload,
    task: Task,
    pillars: Mapping[str, Mapping[str, Any]],
    waits: Mapping[str, str | None],
    shared: Sequence[tuple[str, str]],
    resources: dict[str, Any],
) -> list[dict[str, Any]]:
    """A service-scoped task's Job, with its own (mutable) ConfigMap and Secret."""
    name = _job_name(task)
    labels = dict(
        sorted({**b.labels(w.name, "bootstrap", task.image_tag), TASK_LABEL: task.task}.items())
    )
    annotations = {f"{ANNOTATION}task": task.key, f"{ANNOTATION}task-inputs": task.inputs}
    pillar = pillars[task.node]
    config, secret = _config_objects(
        b,
        name,
        _wrapped(w.spec.pillar, _section(pillar, w.spec.pillar)),
        secret_values(dict(pillar)),
        labels,
        annotations,
        False,
        f"bootstrap task {task.key}",
    )
    mounts, volumes = _config_volumes(name, name)
    claims = dict(shared)
    for vol, path in sorted(w.first.volumes.items()):
        if _ephemeral(path):
            volumes.append({"name": vol, "emptyDir": {}})
        elif vol in claims:
            volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claims[vol]}})
        else:
            continue  # a StatefulSet's volume belongs to one pod
        mounts.append({"name": vol, "mountPath": path})
    targets = (
        [waits.get(task.service)] if task.needs_running else [waits.get(d) for d in task.depends]
    )
    container = {
        "name": task.task,
        "image": b.image(task.image, task.image_tag),
        "imagePullPolicy": "IfNotPresent",
        "args": ["bootstrap", task.task],
        "env": _env(task.node, {}, [t for t in targets if t]),
        "resources": resources,
        "volumeMounts": mounts,
    }
    job = b.obj(
        "Job",
        b.meta(name, labels, annotations),
        spec={
            "backoffLimit": JOB_BACKOFF_LIMIT,
            # Its dependencies' start (the entrypoint waits up to 600 s), then its own.
            "activeDeadlineSeconds": WAIT_SECONDS + max(1, math.ceil(task.timeout)),
            "template": {
                "metadata": {"labels": labels, "annotations": dict(sorted(annotations.items()))},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    )
    return [config, secret, job]


def kubernetes_manifests(
    release: Release,
    pillars: Mapping[str, Mapping[str, Any]],
    specs: Mapping[str, Service],
    options: KubeOptions,
    locate: Locate = _nowhere,
) -> list[dict[str, Any]]:
    """The Kubernetes objects of ``release``, in the order they are applied. Pure.

    ``pillars``: each node's compiled parameters (what the release was made from);
    ``specs``: each service's formula metadata (its pillar section, ``stateful``,
    ``resources``); ``locate``: where a node's value is set in the model, for errors.
    """
    options.check()
    b = _Builder(options)
    workloads = _workloads(release, pillars, specs, locate)
    waits = {w.name: _wait_target(w) for w in workloads}
    clients = _clients(workloads, release.tasks, options.namespace)
    objects: list[dict[str, Any]] = []
    if options.namespace_object:
        objects.append(
            b.obj(
                "Namespace",
                b.meta(options.namespace, b.labels("saline", "namespace", None), None, False),
            )
        )
    objects.append(
        b.obj(
            "NetworkPolicy",
            b.meta("default-deny", b.labels("saline", "network-policy", None)),
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
        )
    )
    record = {
        "id": release.id,
        "instances": {i.key: i.digest for i in release.instances},
        "tasks": {t.key: t.inputs for t in release.tasks},
        "waves": [list(wave) for wave in release.waves],
    }
    objects.append(
        b.obj(
            "ConfigMap",
            b.meta(
                RELEASE_OBJECT,
                b.labels("saline", "release", None),
                {f"{ANNOTATION}release": release.id},
            ),
            data={"release.json": _json(record)},
        )
    )
    for w in workloads:
        objects += _service_objects(b, w, waits, clients[w.name], release.tasks, pillars)
    order = {kind: i for i, kind in enumerate(API_VERSIONS)}
    objects.sort(key=lambda o: (order[o["kind"]], o["metadata"]["name"]))
    seen: set[tuple[str, str]] = set()
    for o in objects:
        key = (o["kind"], o["metadata"]["name"])
        if key in seen:
            raise ModelError(f"two objects would be the {key[0]} {key[1]}: rename a service")
        seen.add(key)
    return objects


# -- files ----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style; text of several lines (a pillar's JSON) as a literal block; no
    anchors and aliases (objects share dicts, readers expect them spelled out)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)

HEADER = (
    "# Written by `saline manifests --target kubernetes` from the model: edit the model,\n"
    "# not this file. Apply with `kubectl apply --server-side -f DIR`.\n"
)


def manifest_text(objects: Iterable[Mapping[str, Any]]) -> str:
    """A YAML stream of ``objects``. Pure, deterministic."""
    docs = [
        yaml.dump(
            dict(o),
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=True,
            width=100,
        )
        for o in objects
    ]
    return HEADER + "".join(f"---\n{d}" for d in docs)


def manifest_files(objects: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """File name -> YAML stream, one file per kind (:data:`FILES`), kinds that have no
    object left out. Pure."""
    by_kind: dict[str, list[Mapping[str, Any]]] = {}
    for o in objects:
        by_kind.setdefault(str(o["kind"]), []).append(o)
    return {FILES[kind]: manifest_text(found) for kind, found in by_kind.items()}
