"""The Release: everything that should run, backend-neutral and serialisable. Pure.

From the compiled model, the formulas, the image plan and each instance's rendered config
files, a :class:`Release` says for every **service instance** (a node running a service)
its image, its config files and their digests, environment, volumes, ports, health, API
check and dependencies; for every **bootstrap task** its scope (``instance``: once per
instance; ``service``: once for all instances of a service) and its own input digest
(its image plus only the pillar values it declares it uses); and the **waves**: services
in dependency order, the order a rolling change walks.

Change keys are per instance (:attr:`Instance.digest`) and per task
(:attr:`Task.inputs`): a value that only one service reads changes only that service.
Compose documents and Kubernetes manifests are renderings of a Release; the planner
compares a Release with what runs (or with another Release).

The serialisation (:func:`release_text`) is deterministic: sorted keys, no set or dict
order leaking in; config contents are not part of it (they may hold secrets): only their
digests are, and :meth:`Release.contents` hands them to whoever stores them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .build.graph import ImageSpec
from .errors import ModelError
from .formulas import ServiceInstance
from .model import pillar_value

FORMAT_VERSION = 1


def _sha(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ConfigFile:
    """One rendered config file of an instance. ``content`` stays in memory (secrets)."""

    path: str
    digest: str
    mode: str | None
    #: The template it came from (``salt://...``), for the plan.
    source: str
    content: str = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "digest": self.digest, "mode": self.mode, "source": self.source}


@dataclass(frozen=True)
class Instance:
    """A service instance: one service of a formula on one node."""

    node: str
    service: str
    formula: str
    image: str  # repository, e.g. saline/keystone
    image_tag: str
    configs: tuple[ConfigFile, ...]
    command: tuple[str, ...]
    user: str | None
    env: Mapping[str, str]
    volumes: Mapping[str, str]
    ports: tuple[Mapping[str, Any], ...]
    health: Mapping[str, Any]
    api_check: Mapping[str, Any] | None
    depends: tuple[str, ...]
    #: Digest of the node's whole pillar: which pillar file a container is configured
    #: from. Not a change key (an instance whose own files did not change keeps running).
    pillar_digest: str

    @property
    def key(self) -> str:
        return f"{self.service}@{self.node}"

    @cached_property
    def config_digest(self) -> str:
        return _sha([(c.path, c.digest, c.mode) for c in self.configs])

    @cached_property
    def runtime_digest(self) -> str:
        """What the container is made of besides its files: a change needs a new one."""
        return _sha(
            self.image,
            self.image_tag,
            self.command,
            self.user,
            dict(self.env),
            dict(self.volumes),
            [dict(p) for p in self.ports],
            dict(self.health),
        )

    @cached_property
    def digest(self) -> str:
        """The instance's change key: its image, definition and config files."""
        return _sha(self.runtime_digest, self.config_digest)[:16]

    def config(self, path: str) -> ConfigFile | None:
        for c in self.configs:
            if c.path == path:
                return c
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "service": self.service,
            "formula": self.formula,
            "image": f"{self.image}:{self.image_tag}",
            "configs": [c.as_dict() for c in self.configs],
            "config_digest": self.config_digest,
            "command": list(self.command),
            "user": self.user,
            "env": dict(self.env),
            "volumes": dict(self.volumes),
            "ports": [dict(p) for p in self.ports],
            "health": dict(self.health),
            "api_check": dict(self.api_check) if self.api_check else None,
            "depends": list(self.depends),
            "pillar_digest": self.pillar_digest,
            "runtime_digest": self.runtime_digest,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class Task:
    """A bootstrap task: where it runs and what it depends on."""

    service: str
    task: str
    scope: str  # instance | service
    #: The node it runs on (for a service-scoped task: the service's first node).
    node: str
    image: str
    image_tag: str
    states: tuple[str, ...]
    #: Pillar paths it uses, each with a digest of its value (secret-safe), and the
    #: digest of its image, states and those values: the task's change key.
    values: Mapping[str, str]
    inputs: str
    needs_running: bool
    #: Seconds it may run (the formula's ``timeout``).
    timeout: float = 600.0
    #: Services that must be ready before it (its own ``depends``, else its service's).
    depends: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        base = f"{self.service}/{self.task}"
        return base if self.scope == "service" else f"{base}@{self.node}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "task": self.task,
            "scope": self.scope,
            "node": self.node,
            "image": f"{self.image}:{self.image_tag}",
            "states": list(self.states),
            "values": dict(self.values),
            "inputs": self.inputs,
            "needs_running": self.needs_running,
            "timeout": self.timeout,
            "depends": list(self.depends),
        }


@dataclass(frozen=True)
class Release:
    instances: tuple[Instance, ...]
    tasks: tuple[Task, ...]
    #: Services in dependency order, grouped: a wave needs only earlier waves.
    waves: tuple[tuple[str, ...], ...]
    #: Where the model came from (a folder, a git revision), for the record.
    source: Mapping[str, str]
    #: The image node containers run (the base image): repository:tag.
    node_image: str = ""
    #: The Debian packages of each service image the instances run (repository:tag ->
    #: package -> version): what a plan shows when an image changes. Not part of the id
    #: (the tags are: they include the packages).
    packages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """A digest of what runs: two releases with the same id run the same things."""
        return _sha(
            sorted(f"{i.key}={i.digest}" for i in self.instances),
            sorted(f"{t.key}={t.inputs}" for t in self.tasks),
        )[:12]

    def instance(self, key: str) -> Instance | None:
        for i in self.instances:
            if i.key == key:
                return i
        return None

    def task(self, key: str) -> Task | None:
        for t in self.tasks:
            if t.key == key:
                return t
        return None

    def contents(self) -> dict[str, dict[str, str]]:
        """Config contents by config digest (path -> text): what a config store keeps."""
        return {i.config_digest: {c.path: c.content for c in i.configs} for i in self.instances}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "id": self.id,
            "source": dict(self.source),
            "node_image": self.node_image,
            "waves": [list(w) for w in self.waves],
            "instances": {i.key: i.as_dict() for i in self.instances},
            "tasks": {t.key: t.as_dict() for t in self.tasks},
            "packages": {ref: dict(sorted(p.items())) for ref, p in sorted(self.packages.items())},
        }


def release_text(release: Release) -> str:
    """The canonical serialisation: byte-identical for the same release."""
    return json.dumps(release.as_dict(), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class Rendered:
    """A rendered config file, as the renderer gives it (see :mod:`saline.configs`)."""

    path: str
    content: str
    mode: str | None
    source: str


def pillar_digest(pillar: Mapping[str, Any]) -> str:
    return _sha(pillar)[:16]


def build_release(
    services: Mapping[str, list[ServiceInstance]],
    pillars: Mapping[str, Mapping[str, Any]],
    images: Mapping[str, ImageSpec],
    rendered: Mapping[tuple[str, str], list[Rendered]],
    source: Mapping[str, str] | None = None,
) -> Release:
    """The release of a model. Pure.

    ``services``: each node's service instances; ``pillars``: each node's compiled
    parameters; ``images``: the image plan by service name; ``rendered``: the config
    files of each (node, service).
    """
    instances: list[Instance] = []
    tasks: list[Task] = []
    service_tasks: set[tuple[str, str]] = set()
    for node in sorted(services):
        pillar = pillars[node]
        pdigest = pillar_digest(pillar)
        for inst in services[node]:
            spec = inst.spec
            image = images[inst.name]
            configs = tuple(
                sorted(
                    (
                        ConfigFile(r.path, text_digest(r.content), r.mode, r.source, r.content)
                        for r in rendered.get((node, inst.name), [])
                    ),
                    key=lambda c: c.path,
                )
            )
            instances.append(
                Instance(
                    node=node,
                    service=inst.name,
                    formula=inst.formula.name,
                    image=image.repository(),
                    image_tag=image.tag,
                    configs=configs,
                    command=tuple(spec.command),
                    user=spec.user,
                    env={"SALINE_NODE": node},
                    volumes=dict(sorted(spec.volumes.items())),
                    ports=tuple(p.model_dump() for p in spec.ports),
                    health=spec.health.model_dump(exclude_none=True),
                    api_check=spec.api_check.model_dump() if spec.api_check else None,
                    depends=tuple(spec.depends),
                    pillar_digest=pdigest,
                )
            )
            for t in spec.bootstrap:
                if t.scope == "service" and (inst.name, t.name) in service_tasks:
                    continue  # runs once, on the service's first node
                paths = t.inputs if t.inputs is not None else [spec.pillar]
                values = {p: _sha(pillar_value(pillar, p))[:16] for p in paths}
                task = Task(
                    service=inst.name,
                    task=t.name,
                    scope=t.scope,
                    node=node,
                    image=image.repository(),
                    image_tag=image.tag,
                    states=tuple(t.states),
                    values=values,
                    inputs=_sha(image.tag, t.states, values)[:16],
                    needs_running=t.needs_running,
                    timeout=t.timeout,
                    depends=tuple(t.depends if t.depends is not None else spec.depends),
                )
                tasks.append(task)
                if t.scope == "service":
                    service_tasks.add((inst.name, t.name))
    return Release(
        tuple(instances),
        tuple(tasks),
        waves(instances, tasks),
        dict(source or {}),
        f"{images['base'].repository()}:{images['base'].tag}" if "base" in images else "",
        {
            f"{spec.repository()}:{spec.tag}": spec.all_packages.versions()
            for name, spec in sorted(images.items())
            if spec.kind == "service" and any(i.service == name for i in instances)
        },
    )


def waves(
    instances: list[Instance], tasks: list[Task] | tuple[Task, ...] = ()
) -> tuple[tuple[str, ...], ...]:
    """Services grouped in dependency order (a wave depends only on earlier ones: what
    the service and its bootstrap tasks need); a loop is a model error naming the
    services in it."""
    deps: dict[str, set[str]] = {}
    for i in instances:
        deps.setdefault(i.service, set()).update(i.depends)
    for t in tasks:
        deps.setdefault(t.service, set()).update(d for d in t.depends if d != t.service)
    have = set(deps)
    for svc, needs in sorted(deps.items()):
        missing = sorted(needs - have)
        if missing:
            raise ModelError(
                f"service {svc} depends on {', '.join(missing)}, which no node of the model runs"
            )
    out: list[tuple[str, ...]] = []
    done: set[str] = set()
    while len(done) < len(deps):
        wave = tuple(sorted(s for s, n in deps.items() if s not in done and n <= done))
        if not wave:
            stuck = ", ".join(sorted(set(deps) - done))
            raise ModelError(f"the services depend on each other in a loop: {stuck}")
        out.append(wave)
        done |= set(wave)
    return tuple(out)


def release_from_dict(
    data: Mapping[str, Any], contents: Mapping[str, Mapping[str, str]]
) -> Release:
    """A release read back from :func:`release_text` (``contents``: config texts by config
    digest, where known; unknown texts are empty). Raises KeyError, TypeError or
    ValueError on a malformed document: the caller names the file."""
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version {data.get('format_version')!r} is not {FORMAT_VERSION}")
    instances = []
    for d in data["instances"].values():
        image, _, tag = str(d["image"]).rpartition(":")
        texts = contents.get(d["config_digest"], {})
        configs = tuple(
            ConfigFile(c["path"], c["digest"], c["mode"], c["source"], texts.get(c["path"], ""))
            for c in d["configs"]
        )
        inst = Instance(
            node=d["node"],
            service=d["service"],
            formula=d["formula"],
            image=image,
            image_tag=tag,
            configs=configs,
            command=tuple(d["command"]),
            user=d["user"],
            env=dict(d["env"]),
            volumes=dict(d["volumes"]),
            ports=tuple(dict(p) for p in d["ports"]),
            health=dict(d["health"]),
            api_check=dict(d["api_check"]) if d["api_check"] else None,
            depends=tuple(d["depends"]),
            pillar_digest=d["pillar_digest"],
        )
        if inst.digest != d["digest"]:
            raise ValueError(f"instance {inst.key}: its digest does not match its content")
        instances.append(inst)
    tasks = []
    for d in data["tasks"].values():
        image, _, tag = str(d["image"]).rpartition(":")
        tasks.append(
            Task(
                service=d["service"],
                task=d["task"],
                scope=d["scope"],
                node=d["node"],
                image=image,
                image_tag=tag,
                states=tuple(d["states"]),
                values=dict(d["values"]),
                inputs=d["inputs"],
                needs_running=bool(d["needs_running"]),
                timeout=float(d["timeout"]),
                depends=tuple(d["depends"]),
            )
        )
    release = Release(
        tuple(instances),
        tuple(tasks),
        tuple(tuple(w) for w in data["waves"]),
        dict(data["source"]),
        str(data["node_image"]),
        # Releases recorded before images had exact packages have none.
        {str(ref): dict(p) for ref, p in (data.get("packages") or {}).items()},
    )
    if release.id != data["id"]:
        raise ValueError("its id does not match its content")
    return release
