"""Plan and apply a release on a Kubernetes cluster: the glue between the manifests, the
planner, the records, the journal and the cluster (:mod:`saline.runtime.kubernetes`).

* :func:`prepare`: the model's release as Kubernetes objects, what the namespace runs,
  the server's dry run of every object, and the plan (:class:`KubePlan`); a field
  conflict or an object the server refuses is an error here, before anything changes;
* :func:`execute`: push the images, record the release and its objects, create the
  namespace and the ApplySet parent, then each wave (:func:`plan_waves`) applied with
  server-side apply and waited for until healthy, then the prune. A wave that fails
  (a rollout that fails or never becomes ready within the bound, a Job that fails)
  re-applies the previous release's recorded objects, waits for them, prunes what
  only the failed release added, and says so. A journal records each wave; an apply
  stopped midway is named by the next one, which applies every wave again (server-side
  apply of an unchanged object changes nothing), so a re-run converges;
* :func:`prepare_recorded`: a recorded release (rollback) as it was applied;
* :func:`down`, :func:`status`, :func:`logs`: the rest of the commands.

Records live under ``STATE/kubernetes/CLUSTER/NAMESPACE/`` (CLUSTER: the API server's
host and port): the release records of :class:`~saline.lifecycle.records.Records`, plus
``objects/ID.json`` (mode 0600: the Secrets are in it), the objects applied for each
release, which a rollback re-applies as they were.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import SalineError
from ..formulas import FormulaSet
from ..manifests.kubernetes import KubeOptions, kubernetes_manifests
from ..model.secrets import secret_values
from ..release import Release
from ..runtime.kubernetes import (
    INSTANCE,
    MANAGED_BY,
    PARENT_KIND,
    PARENT_NAME,
    Cluster,
    FieldConflict,
    KubeError,
    ObjectRejected,
    Ref,
    api_version_of,
    applyset_id,
    as_member,
    rollout_state,
)
from .desired import Desired
from .journal import Journal
from .kube_plan import (
    KEPT_KINDS,
    KubePlan,
    Wave,
    endpoints_of,
    key,
    object_changes,
    observed,
    openrc_of,
    plan_waves,
    reachable_openrc,
)
from .plan import Current, Plan, make_plan
from .records import RecordError, Records, _write
from .upgrade import described

JOURNAL = "journal.jsonl"
#: How long a wave may take to become healthy, by default (seconds): a cold image pull
#: and a database's first start fit; a Job's own deadline is longer and still bounded.
WAVE_TIMEOUT = 900.0
#: How long deleted objects may take to go.
DELETE_TIMEOUT = 300.0
#: What runs: (kind, apiVersion), in the order status shows them.
WORKLOADS = (("StatefulSet", "apps/v1"), ("Deployment", "apps/v1"), ("Job", "batch/v1"))

Progress = Callable[[str], None]


class KubeApplyFailed(KubeError):
    """A wave failed; says whether the previous release was put back."""


@dataclass(frozen=True)
class Target:
    """Which cluster, namespace and deployment a command works on."""

    kubeconfig: str
    context: str | None
    options: KubeOptions

    @property
    def namespace(self) -> str:
        return self.options.namespace

    @property
    def name(self) -> str:
        return self.options.name

    def labels(self) -> dict[str, str]:
        return {MANAGED_BY: "saline", INSTANCE: self.name}


def cluster_folder(server: str) -> str:
    """A folder name for an API server: its host and port (``127.0.0.1-6443``). Pure."""
    parts = urlsplit(server)
    text = f"{parts.hostname or server}-{parts.port or 443}"
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text)


class KubeRecords(Records):
    """The release records of one namespace of one cluster, and the objects applied."""

    def __init__(self, state_dir: str, server: str, namespace: str) -> None:
        super().__init__(os.path.join(state_dir, "kubernetes", cluster_folder(server), namespace))
        self.objects = os.path.join(self.directory, "objects")

    @property
    def journal_path(self) -> str:
        return os.path.join(self.directory, JOURNAL)

    def save_objects(self, release_id: str, objects: Sequence[Mapping[str, Any]]) -> None:
        text = json.dumps(list(objects), sort_keys=True, indent=1) + "\n"
        _write(os.path.join(self.objects, f"{release_id}.json"), text, 0o600)

    def load_objects(self, release_id: str) -> list[dict[str, Any]]:
        path = os.path.join(self.objects, f"{release_id}.json")
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise RecordError(
                f"release {release_id} has no recorded Kubernetes objects ({path})"
            ) from None
        except (OSError, ValueError) as e:
            raise RecordError(f"{path}: the recorded objects are unreadable ({e})") from None
        if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
            raise RecordError(f"{path}: not a list of objects")
        return data


def records_for(state_dir: str, target: Target, cluster: Cluster) -> KubeRecords:
    return KubeRecords(state_dir, cluster.server, target.namespace)


@dataclass
class KubePrepared:
    target: Target
    cluster: Cluster
    records: KubeRecords
    release: Release
    pillars: dict[str, Any]
    objects: list[dict[str, Any]]
    waves: tuple[Wave, ...]
    current: Current
    plan: KubePlan
    exists: bool
    desired: Desired | None


def connect(target: Target) -> Cluster:
    return Cluster.connect(target.kubeconfig, target.context)


def manifests(desired: Desired, formulas: FormulaSet, options: KubeOptions) -> list[dict[str, Any]]:
    specs = {service: spec for service, (_, spec) in formulas.services.items()}
    return kubernetes_manifests(desired.release, desired.pillars, specs, options, desired.locate)


def prepare(state_dir: str, target: Target, desired: Desired, formulas: FormulaSet) -> KubePrepared:
    """The model's release against what the namespace runs, checked by the server."""
    objects = manifests(desired, formulas, target.options)
    cluster = connect(target)
    return _prepare(
        state_dir, target, cluster, desired.release, desired.pillars, objects, formulas, desired
    )


def prepare_recorded(
    state_dir: str, target: Target, formulas: FormulaSet, release_id: str
) -> KubePrepared:
    """A recorded release, its objects exactly as they were applied."""
    cluster = connect(target)
    records = records_for(state_dir, target, cluster)
    release, pillars = records.load(release_id)
    objects = records.load_objects(release_id)
    return _prepare(state_dir, target, cluster, release, pillars, objects, formulas, None)


def _prepare(
    state_dir: str,
    target: Target,
    cluster: Cluster,
    release: Release,
    pillars: dict[str, Any],
    objects: list[dict[str, Any]],
    formulas: FormulaSet,
    desired: Desired | None,
) -> KubePrepared:
    ns = target.namespace
    records = records_for(state_dir, target, cluster)
    waves = _waves(objects, release)
    exists = cluster.check_namespace(ns, target.name)
    parent = cluster.parent(ns) if exists else None
    live: dict[tuple[str, str], dict[str, Any]] = {}
    members: list[dict[str, Any]] = []
    dry: dict[tuple[str, str], dict[str, Any]] | None = None
    if exists:
        for obj in objects:
            found = cluster.get(Ref.of(obj))
            if found is not None:
                live[key(obj)] = found
        if parent is not None:
            kinds = set(parent.kinds) | {Ref.of(o).gk for o in objects}
            members = cluster.members(ns, parent.id, kinds)
        dry = check(cluster, objects, ns, release, desired)
    current_id = records.current_id()
    old_release: Release | None = None
    old_pillars: dict[str, Any] = {}
    if current_id:
        old_release, old_pillars = records.load(current_id)
    seen = [*members, *live.values()]
    current = observed(seen, old_release, old_pillars, f"namespace {ns}")
    secrets: set[str] = set()
    for p in (*pillars.values(), *old_pillars.values()):
        secrets |= secret_values(dict(p))
    locate = desired.locate if desired is not None else _nowhere
    plan = make_plan(release, current, formulas, pillars, locate)
    refuse_release_upgrades(plan)
    notes: list[str] = []
    if not exists:
        notes.append(
            f"namespace {ns} does not exist: apply creates it, then has the server check "
            "every object before it applies any"
        )
    changes = object_changes(waves, live, dry, [key(m) for m in members], secrets)
    kplan = KubePlan(plan, ns, cluster.server, changes, waves, exists, tuple(notes))
    return KubePrepared(
        target, cluster, records, release, pillars, objects, waves, current, kplan, exists, desired
    )


def refuse_release_upgrades(plan: Plan) -> None:
    """Release upgrades' phases (backup, expand around the rollout, contract) run on the
    local stack only: a plain rollout here would run the full schema sync (contract
    included) under the old pods."""
    if plan.upgrades:
        raise KubeError(
            "the model moves services to another OpenStack release: "
            f"{described(plan.upgrades)}. Release "
            "upgrades are rolled out on the local stack only (`saline apply` without "
            "--target kubernetes); on Kubernetes they are not built yet"
        )


def _nowhere(node: str, key: str) -> tuple[str | None, str | None]:
    return None, None


def _waves(objects: Sequence[Mapping[str, Any]], release: Release) -> tuple[Wave, ...]:
    try:
        return plan_waves(objects, release)
    except ValueError as e:
        raise KubeError(str(e)) from None


def check(
    cluster: Cluster,
    objects: Sequence[Mapping[str, Any]],
    namespace: str,
    release: Release,
    desired: Desired | None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """The server's dry run of every object (as the ApplySet member it becomes): what it
    would store. A conflict or a refusal is an error naming the object and the model
    behind it; nothing is changed."""
    set_id = applyset_id(PARENT_NAME, namespace)
    out = {}
    for obj in objects:
        applied = obj if obj["kind"] == "Namespace" else as_member(obj, set_id)
        try:
            out[key(obj)] = cluster.apply(applied, dry_run=True)
        except ObjectRejected as e:
            raise ObjectRejected(
                f"{e} ({_behind(obj, release, desired)}); nothing was changed",
                e.kind,
                e.name,
            ) from None
        except FieldConflict as e:
            raise FieldConflict(f"{e}; nothing was changed") from None
    return out


def _behind(obj: Mapping[str, Any], release: Release, desired: Desired | None) -> str:
    """The model behind an object: its service and the nodes (files) that run it."""
    service = ((obj.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name")
    nodes = sorted({i.node for i in release.instances if i.service == service})
    if not nodes:
        return "made by saline for the whole deployment"
    where = []
    for n in nodes:
        file = None
        if desired is not None:
            try:
                file = desired.model.node(n).file
            except SalineError:
                file = None
        where.append(f"{file} (node {n})" if file else f"node {n}")
    return f"service {service} of the model: {', '.join(where)}"


# -- apply ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaveOutcome:
    number: int
    name: str
    objects: int
    seconds: float
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.number,
            "name": self.name,
            "objects": self.objects,
            "seconds": round(self.seconds, 2),
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class ApplyResult:
    release: str
    waves: tuple[WaveOutcome, ...]
    pruned: tuple[str, ...]
    kept: tuple[str, ...]
    resumed: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "waves": [w.as_dict() for w in self.waves],
            "pruned": list(self.pruned),
            "kept": list(self.kept),
            "resumed": self.resumed,
        }


def execute(
    prepared: KubePrepared,
    progress: Progress,
    timeout: float = WAVE_TIMEOUT,
    push: Callable[[], None] | None = None,
) -> ApplyResult:
    """Roll the prepared release out (see the module's docstring); ``push`` makes the
    release's images available to the cluster first."""
    p = prepared
    release, records, ns = p.release, p.records, p.target.namespace
    if push is not None:
        push()
    previous = records.current_id()
    records.save(release, p.pillars)
    records.save_objects(release.id, p.objects)
    resumed = None
    stopped = Journal.load(records.journal_path)
    if stopped is not None:
        done = [i for i, ph in stopped.phases.items() if ph == "done"]
        resumed = stopped.release
        progress(
            f"an apply of release {stopped.release} to namespace {ns} stopped midway "
            f"({len(done)} of {len(stopped.steps)} waves done): every wave is applied "
            "again, which converges"
        )
        stopped.close("stopped")
    journal = Journal.start(records.journal_path, release.id, [w.as_dict() for w in p.waves])
    run = _Run()
    try:
        pruned, kept = _rollout(p, journal, progress, timeout, run)
    except KubeError as e:
        records.applied(release, "failed")
        message = f"release {release.id}: {e}"
        failed = len(run.outcomes)
        journal.record(min(failed, len(p.waves) - 1), "failed")
        if not run.changed:
            journal.close("failed")
            raise KubeApplyFailed(f"{message}; nothing was changed") from None
        if previous is None or previous == release.id:
            journal.close("failed")
            why = (
                f"No earlier release of namespace {ns} is recorded"
                if previous is None
                else f"Release {release.id} is the one applied last"
            )
            raise KubeApplyFailed(
                f"{message}. {why}, so there is nothing else to go back to: what waves "
                f"1-{failed + 1} applied stays (`saline down --target kubernetes` removes it)"
            ) from None
        progress(f"release {release.id} failed: putting release {previous} back")
        try:
            _restore(p, previous, progress, timeout)
        except KubeError as again:
            journal.close("failed")
            raise KubeApplyFailed(
                f"{message}. Putting release {previous} back failed too: {again}. Namespace "
                f"{ns} now holds objects of both releases: fix the cause and apply again"
            ) from None
        journal.record(min(failed, len(p.waves) - 1), "restored")
        journal.close("failed")
        raise KubeApplyFailed(
            f"{message}. Rolled back: the objects of release {previous} were applied "
            f"again and are healthy, and what only release {release.id} added was pruned"
        ) from None
    records.applied(release, "applied")
    journal.close("applied")
    return ApplyResult(release.id, tuple(run.outcomes), pruned, kept, resumed)


@dataclass
class _Run:
    """What a rollout did so far."""

    outcomes: list[WaveOutcome] = field(default_factory=list)
    #: Whether anything in the cluster was changed (created or applied).
    changed: bool = False


def _rollout(
    p: KubePrepared, journal: Journal | None, progress: Progress, timeout: float, run: _Run
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Apply every wave of ``p`` in order, each healthy before the next; prune."""
    cluster, ns, target = p.cluster, p.target.namespace, p.target
    set_id = applyset_id(PARENT_NAME, ns)
    kinds = {Ref.of(o).gk for o in p.objects if o["kind"] != "Namespace"}
    pruned: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    total = len(p.waves)
    for index, wave in enumerate(p.waves):
        start = time.monotonic()
        if journal is not None:
            journal.record(index, "begin")
        progress(f"wave {wave.number}/{total} {wave.name}: {len(wave.objects)} object(s)")
        if wave.stage == "namespace":
            exists = cluster.check_namespace(ns, target.name)
            for obj in wave.objects:
                cluster.apply(obj)
                run.changed = True
            if not exists:
                # Now that the namespace is there, the server checks every object.
                check(cluster, p.objects, ns, p.release, p.desired)
            parent = cluster.parent(ns)
            # Wider first (the old kinds and the new): an interrupted apply orphans nothing.
            cluster.update_parent(ns, kinds | set(parent.kinds if parent else ()), target.labels())
        elif wave.stage == "prune":
            run.changed = True
            pruned, kept = _prune(cluster, ns, set_id, p.objects, kinds, target, progress)
        else:
            what = f"wave {wave.number} ({wave.name})"
            # Jobs one at a time (each complete before the next); the rest together.
            batches = [[o] for o in wave.objects] if wave.one_at_a_time else [wave.objects]
            for batch in batches:
                for obj in batch:
                    cluster.apply(as_member(obj, set_id))
                    run.changed = True
                if wave.waits:
                    cluster.wait_healthy([Ref.of(o) for o in batch], timeout, progress, what)
        took = time.monotonic() - start
        run.outcomes.append(WaveOutcome(wave.number, wave.name, len(wave.objects), took, "done"))
        if journal is not None:
            journal.record(index, "done")
    return pruned, kept


def _prune(
    cluster: Cluster,
    ns: str,
    set_id: str,
    objects: Sequence[Mapping[str, Any]],
    kinds: set[str],
    target: Target,
    progress: Progress,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Delete the ApplySet's members that ``objects`` no longer has (volume claims are
    kept), then narrow the parent's kinds to what is left."""
    parent = cluster.parent(ns)
    wanted = {key(o) for o in objects}
    members = cluster.members(ns, set_id, kinds | set(parent.kinds if parent else ()))
    gone: list[Ref] = []
    kept: list[Ref] = []
    for m in members:
        ref = Ref.of(m)
        if key(m) in wanted:
            continue
        if ref.kind in KEPT_KINDS:
            kept.append(ref)
            continue
        progress(f"  prune {ref}")
        cluster.delete(ref)
        gone.append(ref)
    cluster.wait_gone(gone, DELETE_TIMEOUT, progress)
    # Kept claims are still members: their kind stays listed.
    cluster.update_parent(ns, kinds | {r.gk for r in kept}, target.labels())
    return tuple(str(r) for r in gone), tuple(str(r) for r in kept)


def _restore(p: KubePrepared, previous: str, progress: Progress, timeout: float) -> None:
    """Apply the recorded objects of release ``previous`` again, wave by wave, and prune
    what only the failed release added."""
    release, pillars = p.records.load(previous)
    objects = p.records.load_objects(previous)
    back = KubePrepared(
        p.target,
        p.cluster,
        p.records,
        release,
        pillars,
        objects,
        _waves(objects, release),
        p.current,
        p.plan,
        True,
        None,
    )
    _rollout(back, None, progress, timeout, _Run())


# -- the other commands ---------------------------------------------------------------------


def down(target: Target, volumes: bool, progress: Progress) -> list[str]:
    """Delete every object saline made for the deployment in the namespace (volume
    claims, and the namespace itself, only with ``volumes``); what was deleted."""
    cluster = connect(target)
    ns = target.namespace
    if not cluster.check_namespace(ns, target.name):
        return []
    parent = cluster.parent(ns)
    set_id = applyset_id(PARENT_NAME, ns)
    kinds = set(parent.kinds if parent else ())
    found = {Ref.of(m): m for m in cluster.members(ns, set_id, kinds)}
    # Also what carries saline's labels without being a member (a claim of a
    # StatefulSet's template, an apply stopped before its first member).
    for gk in ("StatefulSet.apps", "Deployment.apps", "Job.batch", "PersistentVolumeClaim"):
        api_version, kind = api_version_of(gk)
        for m in cluster.objects(api_version, kind, ns, target.labels()):
            found.setdefault(Ref.of(m), m)
    removed: list[str] = []
    order = ("Deployment", "StatefulSet", "Job")
    refs = sorted(
        found, key=lambda r: (order.index(r.kind) if r.kind in order else 9, r.kind, r.name)
    )
    deleted: list[Ref] = []
    for ref in refs:
        if ref.kind in KEPT_KINDS and not volumes:
            continue
        progress(f"delete {ref}")
        if cluster.delete(ref):
            deleted.append(ref)
            removed.append(str(ref))
    cluster.wait_gone(deleted, DELETE_TIMEOUT, progress)
    parent_ref = Ref("v1", PARENT_KIND, PARENT_NAME, ns)
    if volumes:
        namespace = Ref("v1", "Namespace", ns)
        progress(f"delete {namespace}")
        cluster.delete(namespace)
        cluster.wait_gone([namespace], DELETE_TIMEOUT, progress)
        removed.append(str(namespace))
    elif cluster.delete(parent_ref):
        removed.append(str(parent_ref))
    return removed


def status(target: Target) -> dict[str, Any]:
    """Each workload and Job saline runs in the namespace: kind, readiness, state (the
    rollout rules), image tag."""
    cluster = connect(target)
    ns = target.namespace
    exists = cluster.check_namespace(ns, target.name)
    rows: list[dict[str, Any]] = []
    release = None
    if exists:
        record = cluster.get(Ref("v1", "ConfigMap", "saline-release", ns))
        if record is not None:
            release = ((record.get("metadata") or {}).get("annotations") or {}).get(
                "saline/release"
            )
        for kind, api_version in WORKLOADS:
            for obj in cluster.objects(api_version, kind, ns, target.labels()):
                rows.append(_row(obj))
    return {
        "namespace": ns,
        "server": cluster.server,
        "exists": exists,
        "release": release,
        "objects": rows,
    }


def _row(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    state = rollout_state(obj)
    if obj["kind"] == "Job":
        ready = f"{st.get('succeeded') or 0}/{spec.get('completions') or 1}"
    else:
        ready = f"{st.get('readyReplicas') or 0}/{spec.get('replicas', 1)}"
    return {
        "kind": obj["kind"],
        "name": meta.get("name"),
        "ready": ready,
        "healthy": state.done,
        "failed": state.failed,
        "state": state.message,
        "version": (meta.get("labels") or {}).get("app.kubernetes.io/version"),
    }


def logs(target: Target, name: str, tail: int | None, secrets: set[str], state_dir: str) -> str:
    """The logs of every pod of a workload (a service) or a Job, the model's secrets
    (of the release last applied) masked."""
    from .plan import mask

    cluster = connect(target)
    ns = target.namespace
    obj = None
    for kind, api_version in WORKLOADS:
        obj = cluster.get(Ref(api_version, kind, name, ns))
        if obj is not None:
            break
    if obj is None:
        have = sorted(
            str((o.get("metadata") or {}).get("name"))
            for kind, api_version in WORKLOADS
            for o in cluster.objects(api_version, kind, ns, target.labels())
        )
        raise KubeError(
            f"namespace {ns} has no workload or Job {name!r} (it has: {', '.join(have) or 'none'})"
        )
    records = records_for(state_dir, target, cluster)
    current = records.current_id()
    if current:
        _, pillars = records.load(current)
        for p in pillars.values():
            secrets |= secret_values(dict(p))
    if obj["kind"] == "Job":
        selector = {"job-name": name}
    else:
        selector = dict(((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    out = []
    for pod in sorted(cluster.pods(ns, selector), key=lambda p: p["metadata"]["name"]):
        pname = pod["metadata"]["name"]
        containers = [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        containers += [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        for c in containers:
            try:
                text = cluster.logs(ns, pname, c, tail)
            except KubeError as e:
                text = f"({e})\n"
            out.append(f"==> pod {pname} container {c} <==\n{mask(text, secrets)}")
    if not out:
        return f"{obj['kind']} {name} has no pods\n"
    return "".join(out)


def openrc(
    target: Target, services: Mapping[str, Sequence[Any]], pillars: Mapping[str, Any]
) -> dict[str, str]:
    """The admin's OS_* variables from the model, every Service name in them replaced by
    that Service's cluster IP (this machine reaches it when it is a node of the
    cluster: kube-proxy's rules), and endpoint overrides for the catalog's endpoints
    that are Service names (:func:`reachable_openrc`)."""
    try:
        env = openrc_of(services, pillars)
        endpoints = endpoints_of(services, pillars)
    except ValueError as e:
        raise KubeError(str(e)) from None
    if not env:
        raise KubeError("no service of the model declares openrc credentials (keystone does)")
    cluster = connect(target)
    addresses = {}
    for svc in cluster.objects("v1", "Service", target.namespace, target.labels()):
        ip = (svc.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            addresses[str(svc["metadata"]["name"])] = str(ip)
    return reachable_openrc(env, endpoints, addresses)
