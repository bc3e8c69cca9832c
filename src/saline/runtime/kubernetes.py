"""The one module that talks to a Kubernetes cluster, through lightkube.

Everything saline does to a cluster goes through :class:`Cluster`: connect (an explicit
kubeconfig file and context, nothing read from the environment), server-side apply with
the field manager ``saline`` (never forced: a field another manager owns is a
:class:`FieldConflict` naming the object, the field and the manager), server-side dry
run (``dryRun=All``: the object as the server would store it), ApplySet membership and
pruning, rollout status with kubectl's rules, deletion, pods and their logs.

Why lightkube: a maintained client whose models are typed per Kubernetes version
(lightkube-models 1.37, the cluster's), with server-side apply as a first-class call
(``Client.apply``); the official client has no general server-side apply.

**ApplySet** (KEP-3659, as ``kubectl apply --applyset`` implements it): the *parent* is
a Secret (:data:`PARENT_NAME`) in the namespace, labelled ``applyset.kubernetes.io/id``
with :func:`applyset_id` (``applyset-`` + URL-safe base64 without padding of the SHA-256
of ``NAME.NAMESPACE.Secret.`` + ``-v1``) and annotated with
``applyset.kubernetes.io/tooling`` (``saline/vX.Y.Z``), ``contains-group-kinds`` (sorted
``Kind.group``: ``ConfigMap,Deployment.apps,...``) and ``additional-namespaces`` (empty:
every member is in the parent's namespace). Every member carries the label
``applyset.kubernetes.io/part-of: ID``. The parent's kinds are widened to the union of
the old and the new set before anything is applied, and narrowed after a prune, so an
interrupted apply never orphans a member. A parent made by another tool is refused.

**Rollout status** (:func:`rollout_state`), as ``kubectl rollout status`` decides it:
a Deployment is done when the controller observed its generation, every replica is
updated, no old replica is left and every updated one is available; a
``ProgressDeadlineExceeded`` condition is a failure. A StatefulSet (RollingUpdate) when
its generation is observed, every replica is ready and updated (current revision = update
revision). A Job when its ``Complete`` condition is true; ``Failed`` is a failure. Pods
that cannot start at all (an invalid image name, a container that cannot be created from
its config) fail a rollout at once; anything else is waited for, within a bound.

Pure helpers (no I/O): :func:`applyset_id`, :func:`group_kind`, :func:`kinds_annotation`,
:func:`as_member`, :func:`rollout_state`, :func:`pod_problems`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2
import yaml
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError, LoadResourceError
from lightkube.core.resource_registry import resource_registry
from lightkube.types import CascadeType

from .. import __version__
from ..errors import SalineError

FIELD_MANAGER = "saline"
TOOLING = f"saline/v{__version__}"
PARENT_KIND = "Secret"
PARENT_NAME = "saline-applyset"

PART_OF = "applyset.kubernetes.io/part-of"
APPLYSET_ID = "applyset.kubernetes.io/id"
TOOLING_ANNOTATION = "applyset.kubernetes.io/tooling"
KINDS_ANNOTATION = "applyset.kubernetes.io/contains-group-kinds"
NAMESPACES_ANNOTATION = "applyset.kubernetes.io/additional-namespaces"
MANAGED_BY = "app.kubernetes.io/managed-by"
INSTANCE = "app.kubernetes.io/instance"

#: How often a wait asks the server again (seconds).
POLL_SECONDS = 1.0
#: Seconds each request may take.
REQUEST_SECONDS = 30.0
#: Waiting reasons of a container that no amount of waiting fixes.
FATAL_WAITING = ("InvalidImageName", "CreateContainerConfigError", "ErrImageNeverPull")
#: Restarts after which a container in CrashLoopBackOff counts as failed, not as slow:
#: the kubelet's back-off (10, 20, 40, 80 s) makes that 2.5 minutes or more of crashing,
#: where waiting for the whole --timeout would only delay the rollback.
CRASH_LOOP_RESTARTS = 5
#: Fields the server keeps about an object, not part of what was applied.
SERVER_FIELDS = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")

Progress = Callable[[str], None]


class KubeError(SalineError):
    """The cluster could not be reached, refused something, or did not become healthy."""


class KubeconfigError(KubeError):
    """The kubeconfig file is missing or not a kubeconfig."""


class ContextNotFound(KubeconfigError):
    """The kubeconfig has no such context."""


class ClusterUnreachable(KubeError):
    """No answer from the API server."""


class NamespaceNotOurs(KubeError):
    """The namespace, or its ApplySet, belongs to something else."""


class FieldConflict(KubeError):
    """Server-side apply found fields another field manager owns (never forced)."""


class ObjectRejected(KubeError):
    """The API server refused an object (validation, admission, immutability)."""

    def __init__(self, message: str, kind: str, name: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


class RolloutFailed(KubeError):
    """A workload or Job failed (progress deadline, Job failed, pods that cannot start)."""


class WaitTimeout(KubeError):
    """A bounded wait ended before the objects were healthy (or gone)."""


# -- pure helpers ---------------------------------------------------------------------------


def applyset_id(name: str, namespace: str, kind: str = PARENT_KIND, group: str = "") -> str:
    """The ApplySet id of a parent object (KEP-3659, kubectl's format). Pure."""
    digest = hashlib.sha256(".".join((name, namespace, kind, group)).encode()).digest()
    encoded = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return f"applyset-{encoded}-v1"


def group_kind(api_version: str, kind: str) -> str:
    """``Kind.group`` (``Deployment.apps``; core kinds are just ``ConfigMap``). Pure."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return f"{kind}.{group}" if group else kind


def api_version_of(gk: str) -> tuple[str, str]:
    """(apiVersion, kind) of a ``Kind.group`` saline uses (every one is ``v1`` of its
    group). Pure."""
    kind, _, group = gk.partition(".")
    return (f"{group}/v1" if group else "v1"), kind


def kinds_annotation(gks: Iterable[str]) -> str:
    """The ``contains-group-kinds`` value: sorted, comma-separated. Pure."""
    return ",".join(sorted(set(gks)))


def as_member(obj: Mapping[str, Any], set_id: str) -> dict[str, Any]:
    """A copy of ``obj`` labelled as a member of the ApplySet ``set_id``. Pure.

    An object that already names an ApplySet is refused, as the specification says."""
    meta = dict(obj.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    if PART_OF in labels:
        raise ValueError(f"{obj.get('kind')} {meta.get('name')}: already labelled {PART_OF}")
    labels[PART_OF] = set_id
    meta["labels"] = labels
    return {**obj, "metadata": meta}


@dataclass(frozen=True)
class Ref:
    """One object: kind, name, namespace (None: cluster-scoped)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        meta = obj.get("metadata") or {}
        return cls(
            str(obj["apiVersion"]), str(obj["kind"]), str(meta["name"]), meta.get("namespace")
        )

    @property
    def gk(self) -> str:
        return group_kind(self.api_version, self.kind)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Health:
    """Where an object's rollout is: done, failed, or neither yet (and why)."""

    done: bool
    failed: bool
    message: str


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            found: Mapping[str, Any] = c
            return found
    return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0


def rollout_state(obj: Mapping[str, Any]) -> Health:
    """kubectl's rollout status rules for a Deployment, a StatefulSet or a Job; every
    other kind is done as soon as it exists. Pure."""
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    name = f"{kind} {meta.get('name')}"
    generation = _int(meta.get("generation"))
    observed = _int(status.get("observedGeneration"))
    if kind == "Deployment":
        if generation > observed:
            return Health(False, False, f"{name}: waiting for the spec update to be observed")
        progressing = _condition(obj, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            return Health(False, True, f"{name} exceeded its progress deadline")
        want = _int(spec.get("replicas", 1))
        updated = _int(status.get("updatedReplicas"))
        if updated < want:
            return Health(False, False, f"{name}: {updated} of {want} new replicas updated")
        if _int(status.get("replicas")) > updated:
            old = _int(status.get("replicas")) - updated
            return Health(False, False, f"{name}: {old} old replicas pending termination")
        available = _int(status.get("availableReplicas"))
        if available < updated:
            return Health(
                False, False, f"{name}: {available} of {updated} updated replicas available"
            )
        return Health(True, False, f"{name} successfully rolled out")
    if kind == "StatefulSet":
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            return Health(True, False, f"{name}: no rollout status for {strategy} updates")
        if observed == 0 or generation > observed:
            return Health(False, False, f"{name}: waiting for the spec update to be observed")
        want = _int(spec.get("replicas", 1))
        ready = _int(status.get("readyReplicas"))
        if ready < want:
            return Health(False, False, f"{name}: waiting for {want - ready} pod(s) to be ready")
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition")
        if isinstance(partition, int):
            updated = _int(status.get("updatedReplicas"))
            if updated < want - partition:
                return Health(
                    False, False, f"{name}: {updated} of {want - partition} new pods updated"
                )
            return Health(True, False, f"{name}: partitioned roll out complete")
        if status.get("updateRevision") != status.get("currentRevision"):
            return Health(
                False,
                False,
                f"{name}: waiting for the rolling update to complete "
                f"({_int(status.get('updatedReplicas'))} pods at the new revision)",
            )
        return Health(True, False, f"{name}: rolling update complete")
    if kind == "Job":
        for failed in ("Failed", "FailureTarget"):
            c = _condition(obj, failed)
            if c and c.get("status") == "True":
                why = c.get("message") or c.get("reason") or "failed"
                return Health(False, True, f"{name} failed: {why}")
        for complete in ("Complete", "SuccessCriteriaMet"):
            c = _condition(obj, complete)
            if c and c.get("status") == "True":
                return Health(True, False, f"{name} complete")
        active = _int(status.get("active"))
        failures = _int(status.get("failed"))
        tried = f", {failures} failed pod(s)" if failures else ""
        return Health(False, False, f"{name}: running ({active} active{tried})")
    return Health(True, False, f"{name} exists")


def pod_problems(pods: Iterable[Mapping[str, Any]]) -> tuple[list[str], bool]:
    """What keeps pods from running: each container waiting or crashing, with its reason
    and message; and whether one of them is fatal (:data:`FATAL_WAITING`, or a crash loop
    of :data:`CRASH_LOOP_RESTARTS`). Pure."""
    found: list[str] = []
    fatal = False
    for pod in pods:
        pname = (pod.get("metadata") or {}).get("name")
        status = pod.get("status") or {}
        for c in (status.get("initContainerStatuses") or []) + (
            status.get("containerStatuses") or []
        ):
            waiting = (c.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason and reason not in ("PodInitializing", "ContainerCreating"):
                message = str(waiting.get("message") or "").strip()
                found.append(
                    f"pod {pname} container {c.get('name')}: {reason}"
                    + (f": {message[:300]}" if message else "")
                    + (f" ({c.get('restartCount')} restarts)" if c.get("restartCount") else "")
                )
                fatal = fatal or reason in FATAL_WAITING
                crashing = reason == "CrashLoopBackOff"
                fatal = fatal or (crashing and _int(c.get("restartCount")) >= CRASH_LOOP_RESTARTS)
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                found.append(
                    f"pod {pname} not scheduled: {cond.get('message') or cond.get('reason')}"
                )
    return found, fatal


# -- the cluster ----------------------------------------------------------------------------


def _resource(api_version: str, kind: str) -> Any:
    try:
        return resource_registry.load(api_version, kind)
    except LoadResourceError as e:
        raise KubeError(f"saline has no model of {kind} ({api_version}): {e}") from None


def _dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = obj.to_dict()
    return out


@dataclass(frozen=True)
class Parent:
    """An ApplySet parent as found in the cluster."""

    id: str
    kinds: frozenset[str]
    tooling: str


def load_kubeconfig(path: str, context: str | None) -> SingleConfig:
    """One context of a kubeconfig file, checked: a missing or malformed file, or an
    unknown context, is one message naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise KubeconfigError(
            f"{path}: no such kubeconfig file (name one with --kubeconfig FILE, "
            "SALINE_KUBECONFIG or KUBECONFIG; `scripts/kube-up` prints the local cluster's)"
        ) from None
    except OSError as e:
        raise KubeconfigError(f"{path}: cannot read the kubeconfig: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise KubeconfigError(f"{path}: not a kubeconfig (not YAML: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("contexts"), list):
        raise KubeconfigError(f"{path}: not a kubeconfig (no contexts list)")
    try:
        config = KubeConfig.from_dict(data, fname=path)
    except (KeyError, TypeError, ValueError) as e:
        raise KubeconfigError(f"{path}: not a valid kubeconfig ({type(e).__name__}: {e})") from None
    known = sorted(config.contexts)
    if context is not None and context not in config.contexts:
        raise ContextNotFound(
            f"{path}: no context {context!r} (it has: {', '.join(known) or 'none'})"
        )
    if context is None and config.current_context is None:
        raise KubeconfigError(
            f"{path}: no current-context: name one with --context ({', '.join(known) or 'none'})"
        )
    try:
        single = config.get(context)
    except ConfigError as e:
        raise ContextNotFound(f"{path}: {e} (it has: {', '.join(known) or 'none'})") from None
    except KeyError as e:
        raise KubeconfigError(
            f"{path}: context {context or config.current_context!r} names "
            f"a cluster or user the file does not have: {e}"
        ) from None
    assert single is not None
    if single.user is None:
        raise KubeconfigError(f"{path}: context {single.context_name!r} has no user")
    return single


class Cluster:
    """A connection to one cluster (one kubeconfig context)."""

    def __init__(self, client: Client, server: str, context: str, version: str) -> None:
        self._client = client
        self.server = server
        self.context = context
        self.version = version

    @classmethod
    def connect(
        cls, kubeconfig: str, context: str | None = None, timeout: float = REQUEST_SECONDS
    ) -> Cluster:
        """Load ``kubeconfig`` (its ``context``, else its current one) and ask the API
        server its version: a wrong file or context, or a server that does not answer,
        is one message."""
        config = load_kubeconfig(kubeconfig, context)
        server = config.cluster.server
        try:
            client = Client(
                config,
                field_manager=FIELD_MANAGER,
                trust_env=False,
                timeout=httpx2.Timeout(timeout),
            )
        except (ConfigError, OSError, ValueError, AssertionError) as e:
            raise KubeconfigError(
                f"{kubeconfig}: context {config.context_name!r}: cannot use its credentials "
                f"or certificates: {e}"
            ) from None
        cluster = cls(client, server, config.context_name, "")
        # lightkube has no call for /version: its HTTP client (base URL, credentials) does.
        http = client._client._client
        answer = cluster._call("GET /version", lambda: http.get("version"))
        if answer.status_code in (401, 403):
            raise KubeError(
                f"the cluster at {server} (context {config.context_name}) refused the "
                f"kubeconfig's credentials: HTTP {answer.status_code}"
            )
        try:
            answer.raise_for_status()
            cluster.version = str(answer.json().get("gitVersion", "?"))
        except (httpx2.HTTPStatusError, ValueError) as e:
            raise KubeError(
                f"{server} (context {config.context_name}) does not answer as a Kubernetes "
                f"API server: {e}"
            ) from None
        return cluster

    def close(self) -> None:
        self._client.close()

    # -- requests -------------------------------------------------------------------------

    def _call(self, what: str, func: Callable[[], Any]) -> Any:
        """Run one request; connection failures and refusals become one message."""
        try:
            return func()
        except ApiError as e:
            code = e.status.code
            if code in (401, 403):
                raise KubeError(
                    f"the cluster at {self.server} (context {self.context}) refused {what}: "
                    f"{e.status.message}"
                ) from None
            raise
        except httpx2.TransportError as e:
            raise ClusterUnreachable(
                f"no Kubernetes API server answers at {self.server} (context {self.context}): "
                f"{e or type(e).__name__}. Is the cluster up (`scripts/kube-up` starts the "
                "local one) and is this the right kubeconfig?"
            ) from None
        except ConfigError as e:
            raise KubeconfigError(f"context {self.context}: {e}") from None

    def get(self, ref: Ref) -> dict[str, Any] | None:
        """The object as the server has it, or None."""
        res = _resource(ref.api_version, ref.kind)
        try:
            found = self._call(
                f"get {ref}", lambda: self._client.get(res, ref.name, namespace=ref.namespace)
            )
        except ApiError as e:
            if e.status.code == 404:
                return None
            raise KubeError(f"cannot read {ref}: {e.status.message}") from None
        return _dict(found)

    def apply(self, obj: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply of ``obj`` (field manager ``saline``, not forced); with
        ``dry_run`` the server checks and defaults it and stores nothing. Returns the
        object as the server has it (or would)."""
        ref = Ref.of(obj)
        try:
            typed: Any = from_dict(dict(obj))
        except (LoadResourceError, ValueError, TypeError) as e:
            raise ObjectRejected(f"{ref}: not a valid {ref.kind} ({e})", ref.kind, ref.name) from e
        try:
            done = self._call(
                f"apply {ref}",
                lambda: self._client.apply(
                    typed,
                    field_manager=FIELD_MANAGER,
                    force=False,
                    dry_run=dry_run,
                ),
            )
        except ApiError as e:
            raise _apply_error(ref, e) from None
        return _dict(done)

    def objects(
        self, api_version: str, kind: str, namespace: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        res = _resource(api_version, kind)
        try:
            found = self._call(
                f"list {kind}",
                lambda: list(self._client.list(res, namespace=namespace, labels=dict(labels))),
            )
        except ApiError as e:
            raise KubeError(f"cannot list {kind} in {namespace}: {e.status.message}") from None
        return [_dict(o) | {"apiVersion": api_version, "kind": kind} for o in found]

    def delete(self, ref: Ref) -> bool:
        """Delete ``ref`` (its dependents, e.g. a Deployment's pods, before it:
        foreground); False when it was not there."""
        res = _resource(ref.api_version, ref.kind)
        try:
            self._call(
                f"delete {ref}",
                lambda: self._client.delete(
                    res, ref.name, namespace=ref.namespace, cascade=CascadeType.FOREGROUND
                ),
            )
        except ApiError as e:
            if e.status.code == 404:
                return False
            raise KubeError(f"cannot delete {ref}: {e.status.message}") from None
        return True

    def pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return self.objects("v1", "Pod", namespace, labels)

    def logs(self, namespace: str, pod: str, container: str | None, tail: int | None) -> str:
        try:
            lines = self._call(
                f"logs of pod {pod}",
                lambda: list(
                    self._client.log(pod, namespace=namespace, container=container, tail_lines=tail)
                ),
            )
        except ApiError as e:
            raise KubeError(f"no logs of pod {pod}: {e.status.message}") from None
        return "".join(lines)

    # -- namespace and ApplySet ------------------------------------------------------------

    def check_namespace(self, namespace: str, instance: str) -> bool:
        """Whether the namespace exists; one that exists must be saline's for this
        deployment (labels ``managed-by: saline`` and ``instance``), else
        :class:`NamespaceNotOurs`."""
        found = self.get(Ref("v1", "Namespace", namespace))
        if found is None:
            return False
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY) != "saline" or labels.get(INSTANCE) != instance:
            shown = (
                ", ".join(
                    f"{k}={v}"
                    for k, v in sorted(labels.items())
                    if not k.startswith("kubernetes.io/")
                )
                or "none"
            )
            raise NamespaceNotOurs(
                f"namespace {namespace} exists and is not saline's for {instance} (its "
                f"labels: {shown}): saline applies only to a namespace it made for this "
                f"deployment ({MANAGED_BY}=saline, {INSTANCE}={instance}). Choose another "
                "with --namespace, or label this one so if it is really meant for it"
            )
        return True

    def parent(self, namespace: str) -> Parent | None:
        """The namespace's ApplySet parent, checked: made by saline, with the right id."""
        found = self.get(Ref("v1", PARENT_KIND, PARENT_NAME, namespace))
        if found is None:
            return None
        meta = found.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        tooling = str(annotations.get(TOOLING_ANNOTATION, ""))
        if tooling.rpartition("/")[0] != "saline":
            raise NamespaceNotOurs(
                f"namespace {namespace}: the ApplySet {PARENT_KIND} {PARENT_NAME} is managed by "
                f"{tooling or 'an unknown tool'}, not saline: saline never changes another "
                "tool's ApplySet"
            )
        want = applyset_id(PARENT_NAME, namespace)
        if labels.get(APPLYSET_ID) != want:
            raise NamespaceNotOurs(
                f"namespace {namespace}: {PARENT_KIND} {PARENT_NAME} has {APPLYSET_ID}="
                f"{labels.get(APPLYSET_ID)}, not {want}: not an ApplySet saline made"
            )
        kinds = str(annotations.get(KINDS_ANNOTATION, ""))
        return Parent(want, frozenset(k for k in kinds.split(",") if k), tooling)

    def update_parent(self, namespace: str, kinds: Iterable[str], labels: Mapping[str, str]) -> str:
        """Create or update the ApplySet parent with exactly ``kinds``; its id."""
        set_id = applyset_id(PARENT_NAME, namespace)
        obj = {
            "apiVersion": "v1",
            "kind": PARENT_KIND,
            "metadata": {
                "name": PARENT_NAME,
                "namespace": namespace,
                "labels": {**labels, APPLYSET_ID: set_id},
                "annotations": {
                    TOOLING_ANNOTATION: TOOLING,
                    KINDS_ANNOTATION: kinds_annotation(kinds),
                    NAMESPACES_ANNOTATION: "",
                },
            },
            "type": "Opaque",
        }
        self.apply(obj)
        return set_id

    def members(self, namespace: str, set_id: str, kinds: Iterable[str]) -> list[dict[str, Any]]:
        """Every object of ``kinds`` in the namespace labelled as a member of the set."""
        out: list[dict[str, Any]] = []
        for gk in sorted(set(kinds)):
            api_version, kind = api_version_of(gk)
            out += self.objects(api_version, kind, namespace, {PART_OF: set_id})
        return out

    # -- waits ------------------------------------------------------------------------------

    def health(self, ref: Ref) -> Health:
        """Where one object's rollout is, with the problems of its pods when it waits."""
        obj = self.get(ref)
        if obj is None:
            return Health(False, False, f"{ref}: not found")
        state = rollout_state(obj)
        if state.done or state.failed or ref.kind not in ("Deployment", "StatefulSet", "Job"):
            return state
        selector = _selector(obj)
        if not selector or ref.namespace is None:
            return state
        problems, fatal = pod_problems(self.pods(ref.namespace, selector))
        if not problems:
            return state
        message = f"{state.message}; " + "; ".join(problems[:4])
        return Health(False, fatal, message)

    def wait_healthy(
        self, refs: Sequence[Ref], timeout: float, progress: Progress, what: str
    ) -> None:
        """Until every one of ``refs`` is healthy (:func:`rollout_state`); at most
        ``timeout`` seconds. A failure raises :class:`RolloutFailed`, the bound
        :class:`WaitTimeout`; both say what each object waits for."""
        deadline = time.monotonic() + timeout
        pending = list(refs)
        shown: dict[Ref, str] = {}
        while pending:
            states = {ref: self.health(ref) for ref in pending}
            for ref, state in states.items():
                if state.failed:
                    raise RolloutFailed(f"{what}: {state.message}")
                if state.message != shown.get(ref):
                    progress(f"  {state.message}")
                    shown[ref] = state.message
            pending = [ref for ref, state in states.items() if not state.done]
            if not pending:
                return
            if time.monotonic() >= deadline:
                waiting = "; ".join(states[r].message for r in pending)
                raise WaitTimeout(f"{what}: not healthy after {timeout:.0f} s: {waiting}")
            time.sleep(POLL_SECONDS)

    def wait_gone(self, refs: Sequence[Ref], timeout: float, progress: Progress) -> None:
        deadline = time.monotonic() + timeout
        pending = list(refs)
        while pending:
            pending = [r for r in pending if self.get(r) is not None]
            if not pending:
                return
            if time.monotonic() >= deadline:
                left = ", ".join(str(r) for r in pending[:10])
                raise WaitTimeout(f"still there after {timeout:.0f} s: {left}")
            time.sleep(POLL_SECONDS)


def _selector(obj: Mapping[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if obj.get("kind") == "Job":
        # The Job controller labels its pods with the Job's name.
        return {"job-name": str((obj.get("metadata") or {}).get("name"))}
    return {str(k): str(v) for k, v in labels.items()}


_CONFLICT_MANAGER = re.compile(r'conflict with "([^"]+)"')


def _apply_error(ref: Ref, e: ApiError) -> KubeError:
    status = e.status
    causes = list((status.details.causes if status.details else None) or [])
    if status.code == 409 and status.reason == "Conflict":
        managers = sorted(
            {m.group(1) for c in causes if (m := _CONFLICT_MANAGER.search(c.message or ""))}
        )
        fields = sorted({c.field for c in causes if c.field})
        return FieldConflict(
            f"{ref}: {', '.join(fields) or 'its fields'} "
            f"{'is' if len(fields) == 1 else 'are'} owned by another field manager "
            f"({', '.join(managers) or 'unknown'}), which changed "
            f"{'it' if len(fields) == 1 else 'them'} since saline applied it. saline never "
            "takes fields over by force: undo that change (or remove the field from that "
            f"manager) and apply again. The server said: {status.message}"
        )
    if status.code == 404:
        return ObjectRejected(f"{ref}: {status.message}", ref.kind, ref.name)
    return ObjectRejected(f"the API server refused {ref}: {status.message}", ref.kind, ref.name)
