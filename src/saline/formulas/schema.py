"""The formula metadata file (``formula.yml``): a strict schema. Pure.

A formula is a folder of Salt states and templates plus this file, which says which
services (containers) the formula provides and their lifecycle:

* ``install``: states run while the service's image is built (packages, static files).
  They see no pillar: no secrets, no deployment values, no service started.
* ``configure``: states run when a container starts, or on a host: config files from
  the pillar.
* ``common`` (the formula's, beside ``services``): install states every service image
  of the formula shares, built once as a layer they start from; ``uses``: other
  formulas (libraries of shared files) its images hold too;
* ``bootstrap``: one-shot, idempotent tasks (databases, db sync, keys, endpoints), run as
  jobs before the service rolls out, never on every start.
* ``command``, ``ports``, ``health`` (a process check), ``api_check`` (a real API call
  through one instance: what gates a rolling change), ``depends``;
* ``capabilities`` the service's process needs beyond a container's defaults, and
  ``vrrp``: the service holds virtual addresses that move between nodes (keepalived);
* what a host-level service needs of its node (:class:`Host`: nova-compute, libvirt,
  the network agents, a Ceph OSD): ``privileged``, ``devices``, ``host_network``, an
  ``init`` process, and folders ``shared`` with the node's other services (libvirt's
  socket folder with nova-compute);
* the **impact table** (``config_files``): for each config file, optionally per section
  or key, whether a change needs a ``restart``, a ``reload`` (how: ``reload``) or nothing
  (``none``). A file the table does not name, or a key it does not know, means restart.

Unknown keys are refused, so a typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_SLS = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
#: A colon path into the pillar (``keystone:server:database``).
_PILLAR_PATH = r"^[^:\s]+(:[^:\s]+)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_sls(names: list[str]) -> list[str]:
    for n in names:
        if not _SLS.match(n):
            raise ValueError(f"{n!r} is not a Salt state name (like keystone.configure)")
    return names


class HttpCheck(_Strict):
    port: int = Field(ge=1, le=65535)
    path: str = "/"
    #: HTTP status codes that count as healthy.
    status: list[int] = [200, 300, 301, 302, 401]


class TcpCheck(_Strict):
    port: int = Field(ge=1, le=65535)


class ExecCheck(_Strict):
    command: list[str] = Field(min_length=1)


class Health(_Strict):
    """Exactly one of http, tcp or exec, and how patient to be."""

    http: HttpCheck | None = None
    tcp: TcpCheck | None = None
    exec: ExecCheck | None = None
    interval: float = Field(default=2.0, gt=0)
    timeout: float = Field(default=5.0, gt=0)
    #: How long a starting service may take to become healthy.
    start_period: float = Field(default=120.0, ge=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Health:
        kinds = [k for k in ("http", "tcp", "exec") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of http, tcp or exec")
        return self


class Port(_Strict):
    name: str
    port: int = Field(ge=1, le=65535)
    protocol: Literal["tcp", "udp"] = "tcp"


Change = Literal["restart", "reload", "none"]
#: How much each change costs, least first: a plan takes the worst of a file's changes.
CHANGE_ORDER: tuple[Change, ...] = ("none", "reload", "restart")


class FileImpact(_Strict):
    """What a change to one config file needs, by default and per INI section or key.

    ``keys`` names ``SECTION`` (every key of it) or ``SECTION/KEY``; the most specific
    entry wins, and a changed line outside any INI section, or in a file that is not INI,
    takes ``change``."""

    change: Change = "restart"
    keys: dict[str, Change] = {}


class Reload(_Strict):
    """How a running instance takes a new configuration without a restart: a signal to
    its main process (the container's PID 1, the service itself), or a command run in
    its container (after its configure states wrote the new files)."""

    signal: Annotated[str, Field(pattern=r"^SIG[A-Z0-9]+$")] | None = None
    command: list[str] | None = None
    #: Seconds the reload may take (a uwsgi chain reload replaces workers one by one).
    timeout: float = Field(default=120.0, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Reload:
        if (self.signal is None) == (self.command is None):
            raise ValueError("give exactly one of signal or command")
        return self


class ApiCheck(_Strict):
    """A real API call that proves an instance serves (a token, an image list): a
    command run in the instance's container, exit 0 when the call succeeded. It talks to
    the instance itself, not through the load balancer, and reads what it needs
    (credentials) from the pillar file the container has at run time."""

    command: list[str] = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0)


class StatusCommand(_Strict):
    """What ``saline status`` asks each running instance about its cluster (Galera's
    state and size, RabbitMQ's members and alarms, haproxy's servers): a command run in
    the instance's container that prints one JSON object with at least ``healthy``
    (true or false) and ``summary`` (one line), and any facts besides."""

    command: list[str] = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0)


#: Kubernetes quantities: CPU in cores or millicores (``0.5``, ``250m``), memory in bytes
#: with an optional suffix (``128Mi``, ``1Gi``, ``500M``).
_CPU = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
_MEMORY = r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$"


class Resources(_Strict):
    """What one instance needs to run: on Kubernetes its resource requests (the scheduler
    places pods by them; no limits, so a busy service is never throttled or killed for
    its size). Default: a small service."""

    cpu: Annotated[str, Field(pattern=_CPU)] = "50m"
    memory: Annotated[str, Field(pattern=_MEMORY)] = "64Mi"


#: Linux capabilities (capabilities(7)) by their name without ``CAP_``, as compose's
#: ``cap_add`` and Kubernetes' ``securityContext.capabilities`` take them.
CAPABILITIES = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    }
)
#: What holding a virtual address takes: adding it to an interface, VRRP's own IP
#: protocol and gratuitous ARP (raw sockets).
VRRP_CAPABILITIES = ("NET_ADMIN", "NET_RAW")


class Vrrp(_Strict):
    """The service holds virtual addresses with VRRP (keepalived): addresses that belong
    to whichever of its nodes is the master, and move to another when that one fails.

    ``instances`` is the pillar path of the VRRP instances, a mapping of instance name to
    the salt-formulas keepalived keys: ``address`` (or ``addresses``),
    ``virtual_router_id``, ``priority``, ``unicast_src_ip``, ``unicast_peer``,
    ``enabled``. saline checks them against the model before anything starts
    (:mod:`saline.formulas.vrrp`); Kubernetes has no such address (a Service is its
    equivalent), so a Kubernetes release refuses such a service."""

    instances: Annotated[str, Field(pattern=r"^[^:\s]+(:[^:\s]+)*$")]


#: Where a shared folder's name comes from: a folder per node that several services of the
#: node mount, like one host's folder (libvirt's sockets in /run/libvirt, which
#: nova-compute talks to).
_SHARED_NAME = r"^[a-z][a-z0-9-]*$"


class Host(_Strict):
    """What a service needs of its node beyond a container's defaults, for the services
    that act on the host itself: a hypervisor (libvirt), its compute agent, the network
    agents (bridges, namespaces, iptables), a storage daemon.

    On compose every service already runs in its node's network namespace (the node
    container's), so ``host_network`` is what it is there; on Kubernetes it is
    ``hostNetwork``, which saline does not render yet (Kubernetes refuses such a
    service, naming it)."""

    #: Every device and capability of the machine (libvirt creating guests and taps,
    #: the agents' namespaces, a Ceph OSD's block file): ``--privileged``.
    privileged: bool = False
    #: Device nodes the container gets when it is not privileged (``/dev/net/tun``).
    devices: list[Annotated[str, Field(pattern=r"^/dev/[A-Za-z0-9_./-]+$")]] = []
    #: It acts on its node's network (bridges, addresses, namespaces), not a
    #: container's own.
    host_network: bool = False
    #: A minimal init as PID 1 that reaps orphans (libvirtd leaves zombies that hang
    #: ``virsh define``: measured, ../shared/platform-notes.md).
    init: bool = False
    #: Folders of its node shared with the node's other services that name them too:
    #: name -> absolute path in the container (``libvirt-run: /run/libvirt``). They
    #: live as long as the node (kept across the container's restarts).
    shared: dict[Annotated[str, Field(pattern=_SHARED_NAME)], str] = {}

    @field_validator("shared")
    @classmethod
    def _absolute_shared(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not path.startswith("/"):
                raise ValueError(f"shared {name}: {path!r} is not an absolute path")
        return v

    @model_validator(mode="after")
    def _devices_need_no_privilege(self) -> Host:
        if self.privileged and self.devices:
            raise ValueError("privileged already gives every device: drop devices, or privileged")
        return self

    def needs_host(self) -> bool:
        """Whether it asks anything of its node (what a Kubernetes release refuses)."""
        return self != Host()


class BootstrapTask(_Strict):
    name: Annotated[str, Field(pattern=_NAME.pattern)]
    states: list[str] = Field(min_length=1)
    #: ``instance``: once per service instance (keys on its own volume); ``service``: once
    #: for all instances of the service (a database migration, endpoint registration),
    #: before the first instance starts.
    scope: Literal["instance", "service"] = "instance"
    #: The pillar values the task's states use (colon paths, ``keystone:server:database``):
    #: the task runs again when one of them, or its image, changes, and only then.
    #: Default: the service's whole pillar section.
    inputs: list[Annotated[str, Field(pattern=_PILLAR_PATH)]] | None = None
    #: False (default): the task runs before its service starts, once the services it
    #: depends on are healthy (db sync, keys). True: it talks to its own running service,
    #: so it runs once that service is healthy (MariaDB databases, RabbitMQ users), and
    #: the services depending on this one wait for it.
    needs_running: bool = False
    #: Services that must be ready before the task, when it needs fewer than its service's
    #: ``depends`` (glance's db sync needs MariaDB, not keystone). Default: those. For a
    #: ``needs_running`` task: what must be ready besides its own service (nova's host
    #: discovery waits for the compute services); nothing else by default.
    depends: list[str] | None = None
    #: Seconds the task may run; past that `saline up` removes it and fails naming it
    #: (every wait is bounded: a task that hangs must not hang the deployment).
    timeout: Annotated[float, Field(gt=0)] = 600.0

    _v = field_validator("states")(_check_sls)


class Cluster(_Strict):
    """The service's instances may form one cluster (a Galera cluster): which nodes are
    its members, and what saline checks of them before anything starts.

    A node running the service is a member when one of the ``pillar`` sections has
    ``enabled: true``; that section's ``members`` lists every member as ``{name, host,
    port}``, ``name`` being the member's node (its Salt minion id). saline checks that
    the list names the node itself, that every member lists the same members, that each
    member is a node running the service as one, and, with ``quorum``, that there is an
    odd number of at least 3 (a majority survives the loss of any one)."""

    pillar: list[Annotated[str, Field(pattern=_PILLAR_PATH)]] = Field(min_length=1)
    #: The section (one of ``pillar``) of the member that starts a new cluster: exactly
    #: one member enables it.
    seed: str | None = None
    quorum: bool = False

    @model_validator(mode="after")
    def _seed_is_a_section(self) -> Cluster:
        if self.seed is not None and self.seed not in self.pillar:
            raise ValueError(f"seed {self.seed!r} is not one of pillar {self.pillar}")
        return self


class Backup(_Strict):
    """How saline dumps the service's database before a release upgrade: a dump command
    run in a running instance of ``service`` (MariaDB's ``mariadb-dump``), told the
    database's address and credentials from the upgraded service's pillar."""

    #: The service whose running container has the dump client (``mariadb``).
    service: Annotated[str, Field(pattern=_NAME.pattern)]
    #: The command; ``{host}``, ``{port}``, ``{name}`` and ``{user}`` are the database
    #: section's values. The password reaches it as ``MYSQL_PWD`` (not in any argv).
    command: list[str] = Field(min_length=1)
    #: Seconds the dump may take.
    timeout: Annotated[float, Field(gt=0)] = 600.0


class Releases(_Strict):
    """The OpenStack releases the formula installs and configures, and how a change from
    one to the next is rolled out (docs/day2.md, "Release upgrades"): a backup of the
    database, the schema's expand phase before the first new instance, the instances
    replaced one at a time, then migrate and contract after the last."""

    #: The pillar value naming the release, under the service's pillar (``version``:
    #: ``keystone:server:version``).
    pillar: Annotated[str, Field(pattern=_PILLAR_PATH)] = "version"
    #: Release -> the Debian release its packages come from (the image's suites must be
    #: of it), oldest first: a change to an earlier one is a downgrade, refused.
    debian: dict[str, Annotated[str, Field(pattern=r"^[a-z]+$")]] = Field(min_length=1)
    #: The database section under the service's pillar (engine, host, port, name, user,
    #: password): what the backup dumps.
    database: Annotated[str, Field(pattern=_PILLAR_PATH)] = "database"
    backup: Backup
    #: The bootstrap task the phases stand for during an upgrade (a full schema sync,
    #: which would contract the schema under the instances still on the old release).
    replaces: Annotated[str, Field(pattern=_NAME.pattern)]
    expand: list[str] = Field(min_length=1)
    migrate: list[str] = []
    contract: list[str] = Field(min_length=1)
    #: Seconds each phase may run.
    timeout: Annotated[float, Field(gt=0)] = 600.0

    _v = field_validator("expand", "migrate", "contract")(_check_sls)

    def phases(self) -> dict[str, list[str]]:
        return {"expand": self.expand, "migrate": self.migrate, "contract": self.contract}

    def order(self, release: str) -> int:
        """Where ``release`` is in the supported list (-1: not supported)."""
        names = list(self.debian)
        return names.index(release) if release in names else -1


class Service(_Strict):
    #: The pillar key whose ``enabled: true`` puts this service on a node
    #: (e.g. ``keystone:server``).
    pillar: str
    install: list[str] = Field(min_length=1)
    configure: list[str] = []
    bootstrap: list[BootstrapTask] = []
    command: list[str] = Field(min_length=1)
    #: The user the command runs as (the entrypoint drops to it); None: root.
    user: str | None = None
    #: Linux capabilities the service's container adds to the runtime's defaults (names
    #: without ``CAP_``: ``NET_ADMIN``); its bootstrap tasks do without them.
    capabilities: list[str] = []
    ports: list[Port] = []
    health: Health
    #: Services (by name, from any formula) that must be healthy before this one starts.
    depends: list[str] = []
    #: The impact table: config file path -> what a change to it needs (a change, or a
    #: :class:`FileImpact` with per-section or per-key entries).
    config_files: dict[str, Change | FileImpact] = {}
    #: How to reload; required when the impact table says ``reload`` anywhere.
    reload: Reload | None = None
    #: The real API call that gates a rolling change of an instance.
    api_check: ApiCheck | None = None
    #: What ``saline status`` shows of the instance's cluster.
    status: StatusCommand | None = None
    #: ``saline openrc``: OS_* variables, as format strings over the service's pillar
    #: section (``"http://{bind[public_address]}:{bind[port]}/v3"``).
    openrc: dict[Annotated[str, Field(pattern=r"^OS_[A-Z_]+$")], str] = {}
    #: The public endpoints the service registers in keystone's catalog: service type ->
    #: URL, a format string over the pillar section as in ``openrc``. Where the URL's host
    #: is a name only the cluster resolves (a Kubernetes Service), ``saline openrc`` adds
    #: ``OS_<TYPE>_ENDPOINT_OVERRIDE`` with an address this machine reaches.
    endpoints: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")], str] = {}
    #: Data that outlives the container: volume name -> absolute path in the container.
    #: The service's bootstrap tasks mount the same volumes.
    volumes: dict[Annotated[str, Field(pattern=_NAME.pattern)], str] = {}
    #: True: each instance keeps its own data and identity (a database server, a queue
    #: node): on Kubernetes a StatefulSet with a volume per replica. False (default):
    #: instances are interchangeable and share the service's volumes (glance's file
    #: store): on Kubernetes a Deployment whose replicas mount one volume claim.
    stateful: bool = False
    #: The service holds virtual addresses (VRRP): which pillar lists them.
    vrrp: Vrrp | None = None
    #: What one instance needs (Kubernetes resource requests).
    resources: Resources = Resources()
    #: The instances form a cluster (Galera): its members, checked before anything starts.
    cluster: Cluster | None = None
    #: The OpenStack releases it runs, and how it is upgraded from one to the next.
    releases: Releases | None = None
    #: What it needs of its node (privileged, devices, host network, init, shared folders).
    host: Host = Host()
    #: The formula's named layer (formula.yml ``layers``) its image starts from.
    layer: Annotated[str, Field(pattern=_NAME.pattern)] | None = None
    #: What a restart or replacement of an instance does beyond the service itself, in
    #: words for the plan (libvirt's: the node's running servers stop; nova-compute's:
    #: they keep running).
    restart_effect: str | None = None

    _v_install = field_validator("install")(_check_sls)
    _v_configure = field_validator("configure")(_check_sls)

    @field_validator("config_files")
    @classmethod
    def _absolute(cls, v: dict[str, str]) -> dict[str, str]:
        for path in v:
            if not path.startswith("/"):
                raise ValueError(f"{path!r}: config file paths are absolute")
        return v

    @field_validator("capabilities")
    @classmethod
    def _capabilities(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in CAPABILITIES:
                hint = " (without CAP_)" if name.removeprefix("CAP_") in CAPABILITIES else ""
                raise ValueError(
                    f"{name!r} is not a Linux capability{hint}: one of capabilities(7), "
                    "like NET_ADMIN or NET_RAW"
                )
        if len(set(v)) != len(v):
            raise ValueError("a capability is listed twice")
        return v

    @model_validator(mode="after")
    def _vrrp_capabilities(self) -> Service:
        missing = [c for c in VRRP_CAPABILITIES if c not in self.capabilities]
        if self.vrrp is not None and missing:
            raise ValueError(
                f"vrrp needs capabilities {', '.join(VRRP_CAPABILITIES)} (missing: "
                f"{', '.join(missing)}): adding addresses, VRRP and gratuitous ARP"
            )
        return self

    @model_validator(mode="after")
    def _privileged_has_every_capability(self) -> Service:
        if self.host.privileged and self.capabilities:
            raise ValueError(
                "host: privileged already gives every capability: drop capabilities "
                f"({', '.join(self.capabilities)}), or privileged"
            )
        return self

    @model_validator(mode="after")
    def _shared_is_not_a_volume(self) -> Service:
        for name, path in self.host.shared.items():
            if path in self.volumes.values():
                raise ValueError(f"host: shared {name} mounts {path}, which is a volume too")
        return self

    @model_validator(mode="after")
    def _reload_declared(self) -> Service:
        if self.reload is None:
            for path in self.config_files:
                impact = self.impact(path)
                if "reload" in (impact.change, *impact.keys.values()):
                    raise ValueError(f"{path} needs a reload, but the service has no `reload`")
        return self

    @model_validator(mode="after")
    def _replaced_task_exists(self) -> Service:
        if self.releases is not None:
            names = [t.name for t in self.bootstrap]
            if self.releases.replaces not in names:
                raise ValueError(
                    f"releases: replaces {self.releases.replaces!r} is not one of its "
                    f"bootstrap tasks ({', '.join(names) or 'none'})"
                )
        return self

    def impact(self, path: str) -> FileImpact:
        """The impact of a change to ``path``: its entry, else the first pattern entry
        (``/etc/keystone/fernet-keys/*``) that matches it, else restart."""
        found = self.config_files.get(path)
        if found is None:
            for pattern, entry in self.config_files.items():
                if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(path, pattern):
                    found = entry
                    break
        if found is None:
            return FileImpact()
        return found if isinstance(found, FileImpact) else FileImpact(change=found)

    @field_validator("volumes")
    @classmethod
    def _absolute_mounts(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not path.startswith("/"):
                raise ValueError(f"volume {name}: {path!r} is not an absolute path")
        return v


class Common(_Strict):
    """What every service image of the formula installs, built once as a layer they all
    start from (``FORMULA-common``): nova's api, conductor, scheduler and compute share
    python3-nova and its hundreds of packages, which each image would otherwise install
    (and store) again."""

    install: list[str] = Field(min_length=1)

    _v = field_validator("install")(_check_sls)


class FormulaMeta(_Strict):
    name: Annotated[str, Field(pattern=_NAME.pattern)]
    description: str = ""
    #: The install states its service images share (a layer of their own).
    common: Common | None = None
    #: Further shared layers, by name, for some of its services (``layer:``), built on
    #: ``common``: nova-compute and nova-libvirt share QEMU and libvirt, which the API
    #: services must not carry.
    layers: dict[Annotated[str, Field(pattern=_NAME.pattern)], Common] = {}
    #: Other formulas whose files its images hold too (``salt://openstack/files/...``):
    #: a library of files several formulas share, such as the keystone registration
    #: script every OpenStack service runs.
    uses: list[Annotated[str, Field(pattern=_NAME.pattern)]] = []
    #: None for a library (files for the formulas that use it).
    services: dict[str, Service] = {}

    @model_validator(mode="after")
    def _layers_are_no_services(self) -> FormulaMeta:
        for layer in self.layer_images():
            if layer in self.services:
                raise ValueError(
                    f"service {layer!r} has the name of one of the formula's layers: rename it"
                )
        for name, svc in self.services.items():
            if svc.layer is not None and svc.layer not in self.layers:
                raise ValueError(
                    f"service {name}: layer {svc.layer!r} is not one of the formula's layers "
                    f"({', '.join(self.layers) or 'none'})"
                )
        return self

    def common_image(self) -> str:
        """The name of the layer its service images share."""
        return f"{self.name}-common"

    def layer_image(self, layer: str) -> str:
        """The name of one of its named layers' images."""
        return f"{self.name}-{layer}"

    def layer_images(self) -> list[str]:
        """The names of every layer image it has."""
        names = [self.common_image()] if self.common is not None else []
        return names + [self.layer_image(n) for n in self.layers]

    @field_validator("services")
    @classmethod
    def _service_names(cls, v: dict[str, Service]) -> dict[str, Service]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"service name {name!r}: lowercase letters, digits and '-'")
        return v
