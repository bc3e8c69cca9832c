"""The local stack as a compose document, and the order ``saline up`` starts it in. Pure.

From the model and the formulas:

* one **node container** per model node that runs services: the base image sleeping,
  holding the node's address from the model (``_param:single_address``) on the stack's
  network, so every address in the pillar means what it says. The node's services join
  its network namespace (``network_mode: service:NODE``), as processes on one host would;
* one container per **service instance** (node, service), configured at start from the
  node's pillar, mounted read-only at ``/run/saline/pillar.json`` (secrets reach the
  container only at run time, never the image or the compose file);
* one **one-shot container per bootstrap task**, with its service's image, volumes and
  pillar, running ``saline-entrypoint bootstrap TASK``: a task with ``scope: instance``
  once per instance (``INSTANCE-TASK``), one with ``scope: service`` once for all the
  service's instances (``SERVICE-TASK``), in the network and with the pillar of the
  service's first node, and every instance waits for it;
* a service's ``capabilities`` (formula.yml) as ``cap_add`` on its container:
  keepalived's NET_ADMIN and NET_RAW act on the node's network namespace, so the virtual
  address it adds is the node's, as on a host. Virtual addresses (``vrrp``) are checked
  against the stack's network before anything starts (:mod:`saline.formulas.vrrp`);
* what a host-level service needs of its node (formula ``host``): ``privileged``,
  ``devices`` and ``init`` on its containers (its tasks' too: a task of nova-compute
  talks to libvirt as the service does), and each ``shared`` folder as one named volume
  per node (``NODE-NAME``) that every service of the node naming it mounts: libvirt's
  socket folder is nova-compute's. ``host_network`` adds the node's host name (every
  service already runs in its node's network namespace): libvirt names its hypervisor
  by it, and a container joining another's network gets a random one;
* named volumes for each service's data, **shared by the service's instances**
  (``SERVICE-VOLUME``: glance's file store is the same for every glance-api), except a
  stateful service's (``stateful: true``: a Galera member's data), where each instance
  has its own when several run (``INSTANCE-VOLUME``, ``mariadb-dbs01-data``); and one
  network with a subnet holding every node.

A task's inputs are its image and the pillar values it declares it uses (``inputs`` in
formula.yml; the service's whole pillar section by default), not the node's whole
pillar: a change elsewhere in the pillar does not run it again. A service-scoped task
must see the same values from every instance (else the model is ambiguous: an error).

Dependencies are written for two runners:

* for plain ``podman-compose up``: environment variables the entrypoint waits on:
  ``SALINE_WAIT_FOR`` (the ports of the services it needs; podman-compose cannot wait for
  health with podman < 4.6) and ``SALINE_WAIT_TASKS`` (the markers bootstrap tasks write
  into the stack's ``tasks`` volume when they succeed). ``depends_on`` names only the
  container's node (whose network namespace it joins). No service or task depends on
  another there: podman-compose turns every dependency into ``podman --requires`` (podman
  4.3 restarts an exited dependency, or fails to start at all: "not found in input
  list"), and podman-compose 1.6 tears down and recreates the running dependents of any
  service it recreates, even with ``--no-deps``: a new memcached would restart every
  keystone and glance-api at once, the very outage `saline apply` exists to avoid;
* :class:`Step` records for ``saline up``, which gates every start on real health checks
  and runs each bootstrap task once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import Location, ModelError
from ..formulas import Service, ServiceInstance
from ..formulas.schema import BootstrapTask, Health
from ..formulas.vrrp import check_virtual_addresses
from ..release import Release

#: Where a node's pillar folder is mounted (read-only): the pillar of each release the
#: node ran, by digest, and one link per instance (``SERVICE.json``) and for the
#: bootstrap tasks (``tasks.json``); the entrypoint reads the one $SALINE_PILLAR names.
PILLAR_DIR = "/run/saline/pillar"
#: Where bootstrap tasks leave their markers, and the volume that holds them.
TASK_MARKS = "/run/saline/tasks"
TASKS_VOLUME = "tasks"
#: The model value that places a node on the stack's network.
ADDRESS_KEY = ("_param", "single_address")
NETWORK = "stack"

StepKind = Literal["node", "service", "task"]
TaskScope = Literal["instance", "service"]


@dataclass(frozen=True)
class Step:
    """One thing ``saline up`` starts: a node container, a service, or a bootstrap task.

    A node is done when it runs, a service when its health check passes, a task when it
    exited 0. ``after`` names the steps that must be done first.
    """

    name: str  # the compose service name
    kind: StepKind
    node: str  # the model node
    service: str | None  # the formula service (None for a node container)
    after: tuple[str, ...]
    task: str | None = None
    #: For a task: the podman volumes where its work lives (its service's and those of
    #: every service it depends on, transitively). A task counts as done only while
    #: these are the volumes it ran against.
    volumes: tuple[str, ...] = ()
    #: For a task: ``instance`` (one step per instance) or ``service`` (one step for all
    #: the instances of the service, on its first node: ``node`` is that node's).
    scope: TaskScope | None = None


@dataclass(frozen=True)
class StackNode:
    name: str  # the model node, e.g. ctl01.openstack.local
    short: str  # the compose service of its node container, e.g. ctl01
    address: str
    services: tuple[ServiceInstance, ...]


@dataclass(frozen=True)
class StackPlan:
    project: str
    subnet: str
    nodes: tuple[StackNode, ...]
    steps: tuple[Step, ...]
    document: dict[str, Any] = field(repr=False)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def spec(self, step: Step) -> Service:
        """The formula service a service or task step runs."""
        for n in self.nodes:
            if n.name == step.node:
                for s in n.services:
                    if s.name == step.service:
                        return s.spec
        raise KeyError(step.name)


def project_name(text: str) -> str:
    """A compose project name from a folder name: lowercase letters, digits, '-' and '_'."""
    name = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")
    return name or "saline"


def pillar_digest(pillar: dict[str, Any]) -> str:
    """Changes whenever the node's pillar does, so its containers are recreated."""
    blob = json.dumps(pillar, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: What a task's input that the pillar does not have is recorded as.
ABSENT = {"saline": "absent"}


def task_inputs(pillar: dict[str, Any], spec: Service, task: BootstrapTask) -> dict[str, Any]:
    """The pillar values a bootstrap task uses, by colon path: those its ``inputs`` name,
    else the service's whole pillar section. A path the pillar lacks is :data:`ABSENT`."""
    out: dict[str, Any] = {}
    for path in task.inputs if task.inputs is not None else [spec.pillar]:
        value: Any = pillar
        for k in path.split(":"):
            if not isinstance(value, dict) or k not in value:
                value = ABSENT
                break
            value = value[k]
        out[path] = value
    return out


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: Where in the model a node's parameter was set (file and line), for error messages.
Locate = Callable[[str, tuple[str, ...]], Location]


def _no_file(node: str, path: tuple[str, ...]) -> Location:
    return Location(node=node, key="parameters:" + ":".join(path))


def _address(node: str, pillar: dict[str, Any], locate: Locate) -> str:
    value: Any = pillar
    for k in ADDRESS_KEY:
        value = value.get(k) if isinstance(value, dict) else None
    if value is None:
        raise ModelError(
            f"node {node} runs services but has no {':'.join(ADDRESS_KEY)}: the local stack "
            "places each node at that address",
            locate(node, ADDRESS_KEY),
        )
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise ModelError(f"{value!r} is not an IPv4 address", locate(node, ADDRESS_KEY)) from None


def stack_subnet(addresses: dict[str, str], locate: Locate = _no_file) -> ipaddress.IPv4Network:
    """The smallest network of at least /24 holding every node, whose first host (the
    gateway) no node uses."""
    ips = {n: ipaddress.IPv4Address(a) for n, a in addresses.items()}
    first = min(ips.values())
    for prefix in range(24, 15, -1):
        net = ipaddress.IPv4Network(f"{first}/{prefix}", strict=False)
        if all(ip in net for ip in ips.values()):
            break
    else:
        spread = ", ".join(f"{n} {a}" for n, a in sorted(addresses.items()))
        raise ModelError(f"node addresses do not fit in one /16 network: {spread}")
    gateway = net.network_address + 1
    for n, ip in sorted(ips.items()):
        if ip == gateway:
            raise ModelError(
                f"{ip} is the stack network's gateway ({net}); give the node another address",
                locate(n, ADDRESS_KEY),
            )
        if ip in (net.network_address, net.broadcast_address):
            raise ModelError(f"{ip} is not a host address of {net}", locate(n, ADDRESS_KEY))
    duplicates = {a for a in addresses.values() if list(addresses.values()).count(a) > 1}
    if duplicates:
        who = ", ".join(sorted(n for n, a in addresses.items() if a in duplicates))
        raise ModelError(f"nodes {who} share the address {sorted(duplicates)[0]}")
    return net


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def health_target(address: str, svc: Service) -> str | None:
    """``host:port`` that answers once the service is up (what dependents wait for)."""
    h = svc.health
    if h.http is not None:
        return f"{address}:{h.http.port}"
    if h.tcp is not None:
        return f"{address}:{h.tcp.port}"
    if svc.ports:
        return f"{address}:{svc.ports[0].port}"
    return None


def healthcheck_test(address: str, h: Health) -> list[str]:
    if h.http is not None:
        url = f"http://{address}:{h.http.port}{h.http.path}"
        codes = ",".join(str(c) for c in h.http.status)
        return ["CMD", "saline-entrypoint", "health", "http", url, codes]
    if h.tcp is not None:
        return ["CMD", "saline-entrypoint", "health", "tcp", address, str(h.tcp.port)]
    assert h.exec is not None
    return ["CMD", *h.exec.command]


def _healthcheck(address: str, h: Health) -> dict[str, Any]:
    return {
        "test": healthcheck_test(address, h),
        "interval": _duration(h.interval),
        "timeout": _duration(h.timeout),
        "start_period": _duration(h.start_period),
        "retries": 3,
    }


def plan_stack(
    project: str,
    pillars: dict[str, dict[str, Any]],
    services: dict[str, list[ServiceInstance]],
    images: dict[str, str],
    pillar_dirs: dict[str, str],
    locate: Locate = _no_file,
    release: Release | None = None,
) -> StackPlan:
    """The stack of the model's nodes.

    ``pillars`` and ``services``: each node's parameters and services; ``images``: image
    reference by image name (``base`` and each service); ``pillar_dirs``: the host path
    of each node's pillar folder (written by the caller, 0700, files 0600). With
    ``release``, each container carries its change key from it (``saline.instance`` and
    ``saline.digest``; ``saline.task-key`` and ``saline.task-inputs``): what runs can be
    read back, and ``saline up`` recreates a container only when its key changed.
    """
    nodes: list[StackNode] = []
    shorts: dict[str, str] = {}
    for node in sorted(services):
        if not services[node]:
            continue
        short = project_name(node.split(".")[0])
        if short in shorts:
            raise ModelError(
                f"nodes {shorts[short]} and {node} would both be called {short!r} in the stack"
            )
        shorts[short] = node
        address = _address(node, pillars[node], locate)
        nodes.append(StackNode(node, short, address, tuple(services[node])))
    if not nodes:
        raise ModelError("no node of the model runs a service of the formulas")
    net = stack_subnet({n.name: n.address for n in nodes}, locate)
    # Virtual addresses (keepalived) live on that network too: checked before anything
    # starts.
    check_virtual_addresses(
        {n.name: n.services for n in nodes},
        pillars,
        {n.name: n.address for n in nodes},
        net,
        locate,
    )

    # The instances of each service, in node order: the first one's node runs the
    # service's service-scoped tasks.
    by_service: dict[str, list[tuple[StackNode, ServiceInstance]]] = {}
    for n in nodes:
        for s in n.services:
            by_service.setdefault(s.name, []).append((n, s))

    # Compose names: a service's own name when one node runs it, else SERVICE-NODE.
    names: dict[tuple[str, str], str] = {}
    for n in nodes:
        for s in n.services:
            several = len(by_service[s.name]) > 1
            names[(n.name, s.name)] = f"{s.name}-{n.short}" if several else s.name

    def task_name(n: StackNode, inst: ServiceInstance, task: BootstrapTask) -> str:
        """SERVICE-TASK for a service-scoped task, INSTANCE-TASK for the others."""
        if task.scope == "service":
            return f"{inst.name}-{task.name}"
        return f"{names[(n.name, inst.name)]}-{task.name}"

    def first(service: str) -> StackNode:
        return by_service[service][0][0]

    taken = {n.short for n in nodes}
    for n in nodes:
        for s in n.services:
            own = [
                task_name(n, s, t)
                for t in s.spec.bootstrap
                if t.scope == "instance" or first(s.name) is n
            ]
            for part in [names[(n.name, s.name)], *own]:
                if part in taken:
                    raise ModelError(
                        f"two parts of the stack would be called {part!r}: rename a node"
                    )
                taken.add(part)

    # A service-scoped task runs once, with the first instance's pillar: every instance
    # must agree on what it uses.
    for service, instances in by_service.items():
        (n0, s0), others = instances[0], instances[1:]
        for task in [t for t in s0.spec.bootstrap if t.scope == "service"]:
            want = task_inputs(pillars[n0.name], s0.spec, task)
            for on, os_ in others:
                got = task_inputs(pillars[on.name], os_.spec, task)
                for path in want:
                    if got[path] != want[path]:
                        raise ModelError(
                            f"bootstrap task {task.name} of {service} runs once for all its "
                            f"instances, but {path} differs between {n0.name} and {on.name}",
                            locate(on.name, tuple(path.split(":"))),
                        )

    def image_of(service: str, node: str, kind: str) -> str:
        """The release's image for the instance (or its tasks), else the formulas': the
        same unless the release is a recorded one (a rollback)."""
        found = release.instance(f"{service}@{node}") if release is not None else None
        if found is not None:
            return f"localhost/{found.image}:{found.image_tag}"
        return images[service]

    node_image = images["base"]
    if release is not None and release.node_image:
        node_image = f"localhost/{release.node_image}"

    steps: list[Step] = []
    doc_services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}

    def volume_names(service: str, vname: str) -> dict[str, str]:
        """A service's volume by node: one for all its instances (glance's file store),
        except that each instance of a stateful service has its own (a Galera member's
        data) when several nodes run it: ``INSTANCE-VOLUME``."""
        instances = by_service[service]
        if instances[0][1].spec.stateful and len(instances) > 1:
            return {n.name: f"{names[(n.name, service)]}-{vname}" for n, _ in instances}
        return {n.name: f"{service}-{vname}" for n, _ in instances}

    def data_volumes(service: str) -> tuple[str, ...]:
        """Podman names of the volumes of ``service`` and of everything it depends on."""
        found = {f"{project}_{TASKS_VOLUME}"}
        seen: set[str] = set()
        todo = [service]
        while todo:
            name = todo.pop()
            if name in seen or name not in by_service:
                continue
            seen.add(name)
            spec = by_service[name][0][1].spec
            for v in spec.volumes:
                found |= {f"{project}_{volume}" for volume in volume_names(name, v).values()}
            todo += spec.depends
        return tuple(sorted(found))

    def ready(dep: str, who: str, node: str) -> tuple[list[str], list[str], list[str]]:
        """For a dependency: (its service steps, its needs_running tasks, its wait targets)."""
        if dep not in by_service:
            raise ModelError(
                f"{who} depends on {dep}, which no node of the model runs",
                Location(node=node, key="applications"),
            )
        svc_steps, task_steps, targets = [], [], []
        for dn, ds in by_service[dep]:
            svc_steps.append(names[(dn.name, ds.name)])
            task_steps += [task_name(dn, ds, t) for t in ds.spec.bootstrap if t.needs_running]
            target = health_target(dn.address, ds.spec)
            if target:
                targets.append(target)
        return svc_steps, list(dict.fromkeys(task_steps)), targets

    def before(
        n: StackNode, inst: ServiceInstance, prev: BootstrapTask | None, service: bool
    ) -> list[str]:
        """The steps of the task listed just before (in the same phase) that a task (or,
        with ``service`` False, an instance) waits for: a service-scoped one's single step;
        an instance-scoped one's own step, or every instance's for a service-scoped task."""
        if prev is None:
            return []
        if prev.scope == "service" or not service:
            return [task_name(n, inst, prev)]
        return [task_name(dn, ds, prev) for dn, ds in by_service[inst.name]]

    for n in nodes:
        steps.append(Step(n.short, "node", n.name, None, ()))
        doc_services[n.short] = {
            "image": node_image,
            "command": ["sleep", "infinity"],
            "hostname": n.short,
            "networks": {NETWORK: {"ipv4_address": n.address}},
            # It holds the network namespace and nothing else: nothing to stop cleanly.
            "stop_signal": "SIGKILL",
            "labels": {"saline.kind": "node", "saline.node": n.name},
        }

    for n in nodes:
        digest = pillar_digest(pillars[n.name])
        for inst in n.services:
            spec = inst.spec
            cname = names[(n.name, inst.name)]
            is_first = first(inst.name) is n
            dep_services: list[str] = []
            dep_tasks: list[str] = []
            dep_targets: list[str] = []
            for dep in spec.depends:
                s_, t_, w_ = ready(dep, f"service {inst.name} on {n.name}", n.name)
                dep_services += s_
                dep_tasks += t_
                dep_targets += w_
            mounts = [f"{pillar_dirs[n.name]}:{PILLAR_DIR}:ro", f"{TASKS_VOLUME}:{TASK_MARKS}"]
            for vname, path in sorted(spec.volumes.items()):
                volume = volume_names(inst.name, vname)[n.name]
                volumes[volume] = {
                    "name": f"{project}_{volume}",
                    "labels": {"saline.service": inst.name},
                }
                mounts.append(f"{volume}:{path}")
            for sname, path in sorted(spec.host.shared.items()):
                # One per node, whichever of its services names it first.
                volume = f"{n.short}-{sname}"
                volumes[volume] = {
                    "name": f"{project}_{volume}",
                    "labels": {"saline.node": n.name, "saline.shared": sname},
                }
                mounts.append(f"{volume}:{path}")
            labels = {"saline.node": n.name, "saline.service": inst.name}

            def container(
                command: list[str] | None,
                wait: list[str],
                kind: str,
                inst: ServiceInstance = inst,
                n: StackNode = n,
                mounts: list[str] = mounts,
                labels: dict[str, str] = labels,
            ) -> dict[str, Any]:
                c: dict[str, Any] = {"image": image_of(inst.name, n.name, kind)}
                if command:
                    c["command"] = command
                c["network_mode"] = f"service:{n.short}"
                c["volumes"] = list(mounts)
                host = inst.spec.host
                if host.privileged:
                    c["privileged"] = True
                if host.devices:
                    c["devices"] = [f"{d}:{d}" for d in host.devices]
                if host.init:
                    c["init"] = True
                if host.host_network:
                    # Its node's name too, as on a host (a container joining another's
                    # network gets a random one): libvirt names its hypervisor by it.
                    c["hostname"] = n.short
                # Each instance its own link (apply moves one instance at a time), the
                # tasks theirs (always the newest release).
                link = inst.name if kind == "service" else "tasks"
                env = {"SALINE_NODE": n.name, "SALINE_PILLAR": f"{PILLAR_DIR}/{link}.json"}
                if wait:
                    env["SALINE_WAIT_FOR"] = ",".join(dict.fromkeys(wait))
                c["environment"] = env
                c["labels"] = {**labels, "saline.kind": kind}
                # Only its node (whose network namespace it joins): see the module's
                # docstring for why no service or task depends on another here.
                c["depends_on"] = {n.short: {"condition": "service_started"}}
                return c

            base_after = [n.short, *dep_services, *dep_tasks]

            def add_task(
                task: BootstrapTask,
                after: list[str],
                wait: list[str],
                inst: ServiceInstance = inst,
                n: StackNode = n,
                container: Any = container,
            ) -> None:
                name = task_name(n, inst, task)
                doc = container(["bootstrap", task.name], wait, "task")
                doc["restart"] = "no"
                # What it runs with: its own inputs, not the node's whole pillar.
                values = task_inputs(pillars[n.name], inst.spec, task)
                doc["labels"]["saline.task"] = task.name
                doc["labels"]["saline.scope"] = task.scope
                doc["labels"]["saline.task-inputs"] = _digest(values)
                if release is not None:
                    key = f"{inst.name}/{task.name}"
                    key = key if task.scope == "service" else f"{key}@{n.name}"
                    found = release.task(key)
                    if found is not None:
                        doc["labels"]["saline.task-key"] = key
                        doc["labels"]["saline.task-inputs"] = found.inputs
                doc_services[name] = doc
                data = data_volumes(inst.name)
                steps.append(
                    Step(name, "task", n.name, inst.name, tuple(after), task.name, data, task.scope)
                )

            # Tasks before the service: in their order, after the dependencies are ready;
            # a service-scoped one once (with the first instance), before every instance.
            pre = [t for t in spec.bootstrap if not t.needs_running]
            for i, task in enumerate(pre):
                if task.scope == "service" and not is_first:
                    continue
                after = list(base_after)
                targets = dep_targets
                if task.depends is not None:  # the task needs less than its service
                    after, targets = [n.short], []
                    for dep in task.depends:
                        who = f"task {task_name(n, inst, task)} on {n.name}"
                        s_, t_, w_ = ready(dep, who, n.name)
                        after += s_ + t_
                        targets += w_
                after += before(n, inst, pre[i - 1] if i else None, task.scope == "service")
                add_task(task, after, targets)

            after = base_after + before(n, inst, pre[-1] if pre else None, False)
            doc = container(None, dep_targets, "service")
            doc["labels"]["saline.pillar"] = digest
            instance = release.instance(f"{inst.name}@{n.name}") if release else None
            if instance is not None:
                doc["labels"]["saline.instance"] = instance.key
                doc["labels"]["saline.digest"] = instance.digest
            if spec.capabilities:
                doc["cap_add"] = list(spec.capabilities)
            doc["healthcheck"] = _healthcheck(n.address, spec.health)
            doc_services[cname] = doc
            steps.append(Step(cname, "service", n.name, inst.name, tuple(after)))

            # Tasks that talk to the running service: once it is healthy (a service-scoped
            # one once every instance is).
            post = [t for t in spec.bootstrap if t.needs_running]
            for i, task in enumerate(post):
                if task.scope == "service":
                    if not is_first:
                        continue
                    instances = by_service[inst.name]
                else:
                    instances = [(n, inst)]
                after, targets = [], []
                for dn, ds in instances:
                    after.append(names[(dn.name, ds.name)])
                    target = health_target(dn.address, ds.spec)
                    if target:
                        targets.append(target)
                # And what else it talks to (nova's host discovery: the compute services).
                for dep in task.depends or []:
                    who = f"task {task_name(n, inst, task)} on {n.name}"
                    s_, t_, w_ = ready(dep, who, n.name)
                    after += s_ + t_
                    targets += w_
                after += before(n, inst, post[i - 1] if i else None, task.scope == "service")
                add_task(task, after, targets)

    ordered = _ordered(steps)
    marks: dict[str, str] = {}
    for step in ordered:
        doc = doc_services[step.name]
        waits = [marks[a] for a in step.after if a in marks]
        if waits:
            doc["environment"]["SALINE_WAIT_TASKS"] = ",".join(waits)
        if step.kind == "task":
            # A marker by name, not by inputs: a task run again (new inputs) must not
            # restart everything that once waited for it.
            marks[step.name] = step.name
            doc["environment"]["SALINE_TASK_MARK"] = step.name
        # What it runs with: `saline up` leaves a running container with the same inputs
        # alone, and runs a task again only when they change.
        doc["labels"]["saline.inputs"] = container_inputs(doc)
        doc["labels"] = dict(sorted(doc["labels"].items()))
    volumes[TASKS_VOLUME] = {
        "name": f"{project}_{TASKS_VOLUME}",
        "labels": {"saline.stack": project},
    }

    document: dict[str, Any] = {
        "name": project,
        "services": doc_services,
        "networks": {
            NETWORK: {
                "ipam": {"config": [{"subnet": str(net), "gateway": str(net.network_address + 1)}]},
                "labels": {"saline.stack": project},
            }
        },
        "volumes": dict(sorted(volumes.items())),
    }
    return StackPlan(project, str(net), tuple(nodes), tuple(ordered), document)


def container_inputs(doc: dict[str, Any]) -> str:
    """A digest of a container's definition (image, command, mounts...) and of the pillar
    it uses: a service's node's whole pillar, a task's own inputs."""
    relevant = {k: v for k, v in doc.items() if k != "labels"}
    labels = doc.get("labels", {})
    relevant["pillar"] = labels.get(
        "saline.task-inputs", labels.get("saline.digest", labels.get("saline.pillar"))
    )
    blob = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _ordered(steps: list[Step]) -> list[Step]:
    """Topological order (stable: the order given breaks ties); a cycle is a model error."""
    done: set[str] = set()
    out: list[Step] = []
    pending = list(steps)
    while pending:
        progress = [s for s in pending if all(a in done for a in s.after)]
        if not progress:
            stuck = ", ".join(sorted(s.name for s in pending))
            raise ModelError(f"the services depend on each other in a loop: {stuck}")
        for s in progress:
            done.add(s.name)
            out.append(s)
        pending = [s for s in pending if s.name not in done]
    return out
