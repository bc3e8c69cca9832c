"""Planning a release on Kubernetes. Pure: no I/O, no clock, no cluster.

* :func:`plan_waves`: the order objects are applied in, each wave healthy before the
  next. First the **namespace**, then every object that only holds or routes something
  (**config**: ConfigMaps, Secrets, volume claims, Services, NetworkPolicies,
  PodDisruptionBudgets), then, for each wave of the release's dependency order (services
  whose dependencies are all in earlier waves), its **stateful** workloads
  (StatefulSets), its **bootstrap** Jobs, its **deployments**, its **later** Jobs (tasks
  that ``needs_running``: they talk to their own running service), and last the
  **prune**. The stages follow the release's dependency waves because the example's
  tasks cross them: keystone's ``db-sync`` Job needs the database that mariadb's
  ``databases`` task (a later Job of mariadb, which needs mariadb running) creates, so
  "every Job, then every Deployment" would wait on itself.
* :func:`object_changes`: per object, what the server's dry run says applying it does
  (``create``, ``change`` with the fields that change, ``unchanged``), and what the
  prune removes (``prune``; a volume claim is ``keep``: it holds data, only
  ``down --volumes`` deletes it), with secret values masked.
* :func:`observed`: the :class:`~saline.lifecycle.plan.Current` of a namespace, from the
  objects saline put there (each workload's ``saline/instances`` annotation, each
  complete Job's task and inputs), for :func:`~saline.lifecycle.plan.make_plan`.
* :class:`KubePlan`: the release plan (config diffs, model values, tasks: as on compose)
  and the object changes, in text and JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..release import Release
from .plan import Current, Plan, mask, plan_text

FORMAT_VERSION = 1
STAGES = ("namespace", "config", "stateful", "bootstrap", "deployments", "later", "prune")
#: Stages whose objects must be healthy (rolled out, complete) before the next wave.
WAITED = ("stateful", "bootstrap", "deployments", "later")
#: Stages of Jobs: applied one at a time, each complete before the next.
JOB_STAGES = ("bootstrap", "later")
CONFIG_KINDS = (
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "Service",
    "NetworkPolicy",
    "PodDisruptionBudget",
)
#: Kinds a prune never deletes: they hold data.
KEPT_KINDS = ("PersistentVolumeClaim",)
NAME = "app.kubernetes.io/name"
TASK_LABEL = "saline/task"
INSTANCES = "saline/instances"
TASK = "saline/task"
TASK_INPUTS = "saline/task-inputs"
#: What the server keeps about an object besides what was applied.
SERVER_FIELDS = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")
SHOWN = 72

Obj = Mapping[str, Any]


def key(obj: Obj) -> tuple[str, str]:
    """(kind, name): how saline names an object in one namespace."""
    return str(obj["kind"]), str(obj["metadata"]["name"])


def shown_key(k: tuple[str, str]) -> str:
    return f"{k[0]} {k[1]}"


@dataclass(frozen=True)
class Wave:
    """Objects applied together, then waited for (``stage`` in :data:`WAITED`)."""

    number: int
    stage: str
    #: The services of the release's dependency wave (empty for namespace/config/prune).
    services: tuple[str, ...]
    objects: tuple[Obj, ...]

    @property
    def name(self) -> str:
        if self.services:
            return f"{self.stage} ({', '.join(self.services)})"
        return self.stage

    @property
    def waits(self) -> bool:
        return self.stage in WAITED

    @property
    def one_at_a_time(self) -> bool:
        return self.stage in JOB_STAGES

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "stage": self.stage,
            "name": self.name,
            "objects": [shown_key(key(o)) for o in self.objects],
        }


def _stage(obj: Obj, release: Release) -> str:
    kind = obj["kind"]
    if kind == "Namespace":
        return "namespace"
    if kind in CONFIG_KINDS:
        return "config"
    if kind == "StatefulSet":
        return "stateful"
    if kind == "Deployment":
        return "deployments"
    if kind == "Job":
        labels = obj["metadata"].get("labels") or {}
        task = release.task(f"{labels.get(NAME)}/{labels.get(TASK_LABEL)}")
        return "later" if task is not None and task.needs_running else "bootstrap"
    raise ValueError(f"saline does not know when to apply a {kind}")


def plan_waves(objects: Sequence[Obj], release: Release) -> tuple[Wave, ...]:
    """The waves of ``objects`` (the release's manifests), in order. Pure.

    A workload or Job belongs to the dependency wave of its service
    (``app.kubernetes.io/name``); one whose service the release does not order goes
    last. The Jobs of a wave are in the release's task order (they run one at a time).
    The namespace, config and prune waves are always there; a dependency wave's stages
    only when they have objects."""
    position = {s: i for i, wave in enumerate(release.waves) for s in wave}
    last = len(release.waves)
    groups: dict[tuple[int, int], list[Obj]] = {}
    for obj in objects:
        stage = _stage(obj, release)
        service = str((obj["metadata"].get("labels") or {}).get(NAME, ""))
        group = 0 if stage in ("namespace", "config") else position.get(service, last) + 1
        groups.setdefault((group, STAGES.index(stage)), []).append(obj)
    out: list[Wave] = []
    for stage in ("namespace", "config"):
        found = groups.get((0, STAGES.index(stage)), [])
        out.append(Wave(len(out) + 1, stage, (), tuple(found)))
    for group in sorted({g for g, _ in groups if g > 0}):
        services = release.waves[group - 1] if group <= last else ()
        for index in sorted(i for g, i in groups if g == group):
            found = groups[(group, index)]
            if STAGES[index] in JOB_STAGES:
                found = _task_order(found, release)
            named = tuple(
                sorted({(o["metadata"].get("labels") or {}).get(NAME, "") for o in found})
            )
            shown = tuple(s for s in services if s in named) or named
            out.append(Wave(len(out) + 1, STAGES[index], shown, tuple(found)))
    out.append(Wave(len(out) + 1, "prune", (), ()))
    return tuple(out)


def _task_order(objects: list[Obj], release: Release) -> list[Obj]:
    """Jobs in the release's task order (a service's tasks run one after the other, as
    the formula lists them: keystone's db-sync before its identity)."""
    index = {t.key: i for i, t in enumerate(release.tasks)}

    def position(obj: Obj) -> tuple[int, str]:
        labels = obj["metadata"].get("labels") or {}
        task = f"{labels.get(NAME)}/{labels.get(TASK_LABEL)}"
        return index.get(task, len(index)), str(obj["metadata"]["name"])

    return sorted(objects, key=position)


# -- object changes ------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any
    secret: bool

    def as_dict(self) -> dict[str, Any]:
        if self.secret:
            return {"path": self.path, "secret": True}
        return {"path": self.path, "before": self.before, "after": self.after, "secret": False}


@dataclass(frozen=True)
class ObjectChange:
    """What applying (or pruning) one object does."""

    kind: str
    name: str
    #: create | change | unchanged | prune | keep
    action: str
    wave: str
    fields: tuple[FieldChange, ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "wave": self.wave,
            "fields": [f.as_dict() for f in self.fields],
        }
        if self.note:
            out["note"] = self.note
        return out


def normalized(obj: Obj) -> dict[str, Any]:
    """``obj`` without what the server keeps about it (status, managed fields, versions,
    timestamps, uid): what was applied plus the server's defaults. Pure."""
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS}
    out["metadata"] = meta
    return out


def _path(prefix: str, k: str) -> str:
    if k.replace("-", "").replace("_", "").isalnum():
        return f"{prefix}.{k}" if prefix else k
    return f"{prefix}[{json.dumps(k)}]"


def _diff(a: Any, b: Any, prefix: str) -> Iterable[tuple[str, Any, Any]]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                yield from _diff(a.get(k), b.get(k), _path(prefix, str(k)))
        return
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                yield from _diff(x, y, f"{prefix}[{i}]")
        return
    yield prefix, a, b


def _short(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def field_changes(kind: str, live: Obj, after: Obj, secrets: set[str]) -> tuple[FieldChange, ...]:
    """The fields that differ between the live object and the server's dry run of the
    new one, each value shortened; a Secret's data, and any value holding a secret of
    the model, only as changed. Pure."""
    out = []
    for path, a, b in _diff(normalized(live), normalized(after), ""):
        secret = kind == "Secret" and path.startswith(("data", "stringData"))
        if not secret:
            for v in (a, b):
                text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
                if v is not None and mask(text, secrets) != text:
                    secret = True
        out.append(
            FieldChange(path, None if secret else _short(a), None if secret else _short(b), secret)
        )
    return tuple(out)


def object_changes(
    waves: Sequence[Wave],
    live: Mapping[tuple[str, str], Obj],
    dry: Mapping[tuple[str, str], Obj] | None,
    members: Iterable[tuple[str, str]],
    secrets: set[str],
) -> tuple[ObjectChange, ...]:
    """What applying the waves does, object by object. Pure.

    ``live``: the objects that exist now (by :func:`key`); ``dry``: the server's dry run
    of each object to apply (None: the namespace does not exist yet, so nothing was
    checked and everything is created); ``members``: the ApplySet's members now (what
    is not applied again is pruned, a volume claim kept)."""
    out: list[ObjectChange] = []
    wanted: set[tuple[str, str]] = set()
    prune = waves[-1].name if waves else "prune"
    for wave in waves:
        for obj in wave.objects:
            k = key(obj)
            wanted.add(k)
            have = live.get(k)
            if have is None:
                out.append(ObjectChange(k[0], k[1], "create", wave.name))
                continue
            if dry is None or k not in dry:
                out.append(ObjectChange(k[0], k[1], "change", wave.name, note="not checked"))
                continue
            fields = field_changes(k[0], have, dry[k], secrets)
            action = "change" if fields else "unchanged"
            out.append(ObjectChange(k[0], k[1], action, wave.name, fields))
    for k in sorted(set(members) - wanted):
        if k[0] in KEPT_KINDS:
            note = "holds data: kept (`saline down --volumes` deletes it)"
            out.append(ObjectChange(k[0], k[1], "keep", prune, note=note))
        else:
            out.append(ObjectChange(k[0], k[1], "prune", prune))
    return tuple(out)


# -- what runs ------------------------------------------------------------------------------


def _complete(job: Obj) -> bool:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "SuccessCriteriaMet") and c.get("status") == "True":
            return True
    return False


def observed(
    objects: Iterable[Obj],
    release: Release | None,
    pillars: Mapping[str, Mapping[str, Any]],
    label: str,
) -> Current:
    """What runs in a namespace, from saline's objects there: each workload's instance
    digests (``saline/instances``), each complete Job's task and inputs; ``release``:
    the recorded release that was applied last (for the files and values behind a
    change). Pure."""
    digests: dict[str, str] = {}
    tasks: dict[str, str] = {}
    for obj in objects:
        annotations = obj.get("metadata", {}).get("annotations") or {}
        if obj.get("kind") in ("Deployment", "StatefulSet") and INSTANCES in annotations:
            try:
                found = json.loads(annotations[INSTANCES])
            except ValueError:
                continue
            if isinstance(found, dict):
                digests.update({str(k): str(v) for k, v in found.items()})
        elif obj.get("kind") == "Job" and TASK in annotations and _complete(obj):
            tasks[str(annotations[TASK])] = str(annotations.get(TASK_INPUTS, ""))
    if not digests and not tasks:
        return Current({}, {}, release, release.contents() if release else {}, pillars, label)
    contents = release.contents() if release else {}
    return Current(digests, tasks, release, contents, pillars, label)


# -- the plan -------------------------------------------------------------------------------

CHANGING = ("create", "change", "prune")
SYMBOLS = {"create": "+", "change": "~", "prune": "-", "keep": ".", "unchanged": " "}
_COLORS = {"+": "32", "-": "31", "~": "33", ".": "2"}


@dataclass(frozen=True)
class KubePlan:
    """The release plan and what it does to the namespace's objects."""

    release: Plan
    namespace: str
    server: str
    objects: tuple[ObjectChange, ...]
    waves: tuple[Wave, ...]
    #: Whether the server's dry run checked the objects (the namespace existed).
    checked: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not any(o.action in CHANGING for o in self.objects)

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in ("create", "change", "prune", "keep", "unchanged")}
        for o in self.objects:
            out[o.action] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        tasks = len(self.release.tasks)
        if self.empty:
            return (
                f"No changes: namespace {self.namespace} runs release {self.release.desired.id} "
                f"({c['unchanged']} objects unchanged)."
            )
        kept = f", {c['keep']} kept" if c["keep"] else ""
        return (
            f"Plan: {c['create']} to create, {c['change']} to change, {c['prune']} to prune"
            f"{kept}, {c['unchanged']} unchanged; {tasks} task(s) to run "
            f"(namespace {self.namespace})."
        )

    def as_dict(self) -> dict[str, Any]:
        data = self.release.as_dict()
        data.pop("steps", None)
        return {
            **data,
            "format_version": FORMAT_VERSION,
            "target": "kubernetes",
            "namespace": self.namespace,
            "server": self.server,
            "checked_by_server": self.checked,
            "summary": self.summary(),
            "counts": {**self.release.counts(), "objects": self.counts()},
            "objects": [o.as_dict() for o in self.objects if o.action != "unchanged"],
            "waves": [w.as_dict() for w in self.waves],
            "notes": list(self.notes),
        }


def _paint(text: str, code: str | None, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code else text


def kube_plan_text(plan: KubePlan, color: bool = False) -> str:
    """The plan for a person: the release's changes as on compose (config diffs with
    secrets masked, the model values behind them, the tasks), then each object that
    changes and how (a field per line), the waves, and a summary line. Pure."""
    out: list[str] = []
    if plan.release.changes or plan.release.tasks:
        # The release part without its compose order (instances one at a time, which is
        # not how Kubernetes rolls) and without its summary: the waves and the summary
        # below say both for Kubernetes.
        text = plan_text(replace(plan.release, steps=()), color=color)
        out += text.rstrip("\n").split("\n")[:-1]
    changing = [o for o in plan.objects if o.action != "unchanged"]
    where = "checked by the server's dry run" if plan.checked else "not checked by the server"
    out.append(f"Kubernetes objects (namespace {plan.namespace} at {plan.server}, {where}):")
    for note in plan.notes:
        out.append(f"  note: {note}")
    for o in changing:
        sym = SYMBOLS[o.action]
        head = f"  {sym} {o.kind} {o.name}: {o.action}" + (f" ({o.note})" if o.note else "")
        out.append(_paint(head, _COLORS.get(sym), color))
        for f in o.fields:
            if f.secret:
                out.append(f"      {f.path}: changed (secret)")
            else:
                out.append(f"      {f.path}: {_value(f.before)} -> {_value(f.after)}")
    if not changing:
        out.append("  (none changes)")
    touched = {(o.kind, o.name) for o in changing}
    out.append("Waves (each healthy before the next):")
    for w in plan.waves:
        if w.stage == "prune":
            gone = [f"{o.kind} {o.name}" for o in plan.objects if o.action == "prune"]
            out.append(f"  {w.number}. prune: {', '.join(gone) or 'nothing'}")
            continue
        changed = sum(1 for o in w.objects if key(o) in touched)
        what = ", ".join(shown_key(key(o)) for o in w.objects)
        if len(w.objects) > 6:
            what = f"{len(w.objects)} objects"
        state = f"{changed} changing" if changed else "unchanged"
        out.append(f"  {w.number}. {w.name}: {what or 'nothing'} [{state}]")
    out.append(plan.summary())
    return "\n".join(out) + "\n"


def _value(v: Any) -> str:
    return "(unset)" if v is None else json.dumps(v) if isinstance(v, str) else str(v)


# -- the admin's credentials ----------------------------------------------------------------


def openrc_of(
    services: Mapping[str, Sequence[Any]], pillars: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The OS_* variables the formulas declare (``openrc:``), each formula's from the
    first node (by name) that runs its service. Pure. ``services``: each node's service
    instances (``.name``, ``.spec.openrc``, ``.spec.pillar``)."""
    return _declared(services, pillars, "openrc")


def endpoints_of(
    services: Mapping[str, Sequence[Any]], pillars: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The catalog's public endpoints the formulas declare (``endpoints:``): service type
    -> URL, as :func:`openrc_of` finds them. Pure."""
    return _declared(services, pillars, "endpoints")


def _declared(
    services: Mapping[str, Sequence[Any]], pillars: Mapping[str, Mapping[str, Any]], field: str
) -> dict[str, str]:
    out: dict[str, str] = {}
    seen: set[str] = set()
    for node in sorted(services):
        for s in services[node]:
            templates: Mapping[str, str] = getattr(s.spec, field)
            if not templates or s.name in seen:
                continue
            seen.add(s.name)
            section: Any = pillars[node]
            for k in s.spec.pillar.split(":"):
                section = section.get(k) if isinstance(section, Mapping) else None
            if not isinstance(section, Mapping):
                raise ValueError(f"node {node} has no {s.spec.pillar} for `saline openrc`")
            for name, template in templates.items():
                try:
                    out.setdefault(name, template.format(**section))
                except (KeyError, IndexError) as e:
                    raise ValueError(
                        f"{field}: {name} of formula service {s.name} needs {s.spec.pillar}:{e}"
                    ) from None
    return out


def reachable_openrc(
    env: Mapping[str, str], endpoints: Mapping[str, str], addresses: Mapping[str, str]
) -> dict[str, str]:
    """``env`` made :func:`reachable`, plus ``OS_<TYPE>_ENDPOINT_OVERRIDE`` for each
    catalog endpoint whose host is a Service name: clients (openstacksdk, the openstack
    CLI) then reach the services at the Services' addresses while the catalog keeps the
    names the pods resolve. Pure."""
    out = reachable(env, addresses)
    for kind, url in sorted(endpoints.items()):
        there = reachable({kind: url}, addresses)[kind]
        if there != url:
            out[f"OS_{kind.upper().replace('-', '_')}_ENDPOINT_OVERRIDE"] = there
            # The openstack CLI takes only the OS_* variables it has options for unless
            # the cloud is the one openstacksdk makes of every OS_* variable, named
            # "envvars" (measured with Debian 12's python-openstackclient: without it
            # `openstack image list` went to the catalog's http://glance-api:9292).
            out["OS_CLOUD"] = "envvars"
    return out


def reachable(env: Mapping[str, str], addresses: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the host of every URL that is a Service name (``keystone``, or
    ``keystone.NAMESPACE...``) replaced by its address (the Service's cluster IP). Pure."""
    from urllib.parse import urlsplit, urlunsplit

    out = {}
    for var, value in env.items():
        parts = urlsplit(value) if "://" in value else None
        host = parts.hostname if parts else None
        if parts is not None and host:
            short = host.split(".", 1)[0]
            if host in addresses or short in addresses:
                ip = addresses.get(host) or addresses[short]
                netloc = f"{ip}:{parts.port}" if parts.port else ip
                value = urlunsplit(parts._replace(netloc=netloc))
        out[var] = value
    return out
