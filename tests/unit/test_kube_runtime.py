"""The cluster module's pure parts (saline.runtime.kubernetes): the ApplySet id and labels,
kubectl's rollout-status rules, what keeps pods from starting, how the server's refusals
read; and the connection's mistakes (a kubeconfig that is missing or wrong, an unknown
context, a server that does not answer) as one message each. The cluster itself is
tested in tests/integration/test_kube_apply.py (kubectl's own ApplySet id included)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError
from lightkube.models.meta_v1 import Status, StatusCause, StatusDetails

from integration.conftest import free_port
from saline.errors import SalineError
from saline.runtime.kubernetes import (
    PART_OF,
    Cluster,
    ClusterUnreachable,
    ContextNotFound,
    FieldConflict,
    KubeconfigError,
    ObjectRejected,
    Ref,
    _apply_error,
    api_version_of,
    applyset_id,
    as_member,
    group_kind,
    kinds_annotation,
    load_kubeconfig,
    pod_problems,
    rollout_state,
)

# -- the ApplySet ---------------------------------------------------------------------------


def test_the_applyset_id_is_kubectls_format() -> None:
    """base64url(sha256(NAME.NAMESPACE.Kind.group)) without padding, in applyset-...-v1
    (the integration test checks kubectl gives the same for its own parent)."""
    got = applyset_id("saline-applyset", "saline-apply")
    assert got == "applyset-9yi-lhBKPpXI8j7T1ySrKwde8jWX7ajRvjl2Q6jfIzY-v1"
    body = got.removeprefix("applyset-").removesuffix("-v1")
    assert len(base64.urlsafe_b64decode(body + "=")) == 32
    assert "=" not in got and len(got) <= 63  # a label value
    assert applyset_id("saline-applyset", "other") != got
    assert applyset_id("x", "ns", "ConfigMap") != applyset_id("x", "ns", "Secret")


def test_group_kinds_as_kubectl_writes_them() -> None:
    assert group_kind("v1", "ConfigMap") == "ConfigMap"
    assert group_kind("apps/v1", "Deployment") == "Deployment.apps"
    assert group_kind("networking.k8s.io/v1", "NetworkPolicy") == "NetworkPolicy.networking.k8s.io"
    assert api_version_of("PodDisruptionBudget.policy") == ("policy/v1", "PodDisruptionBudget")
    assert api_version_of("Secret") == ("v1", "Secret")
    assert kinds_annotation(["Job.batch", "ConfigMap", "Deployment.apps", "ConfigMap"]) == (
        "ConfigMap,Deployment.apps,Job.batch"
    )
    assert kinds_annotation([]) == ""


def test_a_member_is_labelled_and_never_twice() -> None:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "labels": {"x": "1"}},
    }
    member = as_member(obj, "applyset-abc-v1")
    assert member["metadata"]["labels"] == {"x": "1", PART_OF: "applyset-abc-v1"}
    assert obj["metadata"]["labels"] == {"x": "1"}  # the input is left alone
    with pytest.raises(ValueError, match="already labelled"):
        as_member(member, "applyset-other-v1")


# -- rollout status -------------------------------------------------------------------------


def deployment(generation: int = 2, want: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": generation},
        "spec": {"replicas": want},
        "status": {"observedGeneration": 2, **status},
    }


@pytest.mark.parametrize(
    ("obj", "done", "failed", "says"),
    [
        (deployment(generation=3), False, False, "spec update to be observed"),
        (
            deployment(conditions=[{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]),
            False,
            True,
            "exceeded its progress deadline",
        ),
        (deployment(updatedReplicas=1, replicas=2), False, False, "1 of 2 new replicas updated"),
        (
            deployment(updatedReplicas=2, replicas=3, availableReplicas=2),
            False,
            False,
            "1 old replicas pending termination",
        ),
        (
            deployment(updatedReplicas=2, replicas=2, availableReplicas=1),
            False,
            False,
            "1 of 2 updated replicas available",
        ),
        (
            deployment(updatedReplicas=2, replicas=2, availableReplicas=2),
            True,
            False,
            "successfully rolled out",
        ),
    ],
)
def test_deployment_rollout_as_kubectl_decides(
    obj: dict[str, Any], done: bool, failed: bool, says: str
) -> None:
    state = rollout_state(obj)
    assert (state.done, state.failed) == (done, failed)
    assert says in state.message and "Deployment web" in state.message


def statefulset(**status: Any) -> dict[str, Any]:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": 1},
        "spec": {"replicas": 1, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 1, **status},
    }


def test_statefulset_rollout_as_kubectl_decides() -> None:
    assert not rollout_state(statefulset(observedGeneration=0)).done
    waiting = rollout_state(statefulset(readyReplicas=0))
    assert not waiting.done and "1 pod(s) to be ready" in waiting.message
    moving = statefulset(readyReplicas=1, updateRevision="b", currentRevision="a")
    assert "rolling update to complete" in rollout_state(moving).message
    assert rollout_state(statefulset(readyReplicas=1, updateRevision="a", currentRevision="a")).done
    partitioned = statefulset(readyReplicas=1, updatedReplicas=0)
    partitioned["spec"]["updateStrategy"]["rollingUpdate"] = {"partition": 0}
    assert not rollout_state(partitioned).done
    on_delete = statefulset()
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert rollout_state(on_delete).done


def job(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "kind": "Job",
        "metadata": {"name": "db-sync"},
        "status": {"conditions": list(conditions), **status},
    }


def test_job_rollout_complete_or_failed() -> None:
    assert rollout_state(job({"type": "Complete", "status": "True"})).done
    failed = rollout_state(
        job({"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"})
    )
    assert failed.failed and not failed.done
    assert failed.message == "Job db-sync failed: BackoffLimitExceeded"
    running = rollout_state(job(active=1, failed=2))
    assert (running.done, running.failed) == (False, False)
    assert "1 active, 2 failed pod(s)" in running.message
    # Other kinds are there or not: nothing to roll out.
    assert rollout_state({"kind": "ConfigMap", "metadata": {"name": "c"}}).done


def test_what_keeps_pods_from_starting() -> None:
    def pod(reason: str, restarts: int = 0, message: str = "") -> dict[str, Any]:
        return {
            "metadata": {"name": "web-1"},
            "status": {
                "containerStatuses": [
                    {
                        "name": "web",
                        "restartCount": restarts,
                        "state": {"waiting": {"reason": reason, "message": message}},
                    }
                ]
            },
        }

    found, fatal = pod_problems([pod("ContainerCreating")])
    assert (found, fatal) == ([], False)
    found, fatal = pod_problems([pod("CrashLoopBackOff", restarts=4)])
    assert found == ["pod web-1 container web: CrashLoopBackOff (4 restarts)"] and not fatal
    found, fatal = pod_problems([pod("CrashLoopBackOff", restarts=5)])
    assert found == ["pod web-1 container web: CrashLoopBackOff (5 restarts)"] and fatal
    found, fatal = pod_problems([pod("InvalidImageName", message="couldn't parse")])
    assert fatal and "InvalidImageName: couldn't parse" in found[0]
    unscheduled = {
        "metadata": {"name": "db-0"},
        "status": {
            "conditions": [{"type": "PodScheduled", "status": "False", "message": "unbound PVC"}]
        },
    }
    assert pod_problems([unscheduled]) == (["pod db-0 not scheduled: unbound PVC"], False)


# -- what the server says -------------------------------------------------------------------


def api_error(code: int, reason: str, message: str, *causes: tuple[str, str]) -> ApiError:
    details = StatusDetails(causes=[StatusCause(field=f, message=m) for f, m in causes])
    return ApiError(status=Status(code=code, reason=reason, message=message, details=details))


def test_a_conflict_names_the_object_the_field_and_the_other_manager() -> None:
    e = api_error(
        409,
        "Conflict",
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas',
        (".spec.replicas", 'conflict with "kubectl-edit" using apps/v1'),
    )
    err = _apply_error(Ref("apps/v1", "Deployment", "keystone", "ns"), e)
    assert isinstance(err, FieldConflict)
    text = str(err)
    assert text.startswith("Deployment keystone: .spec.replicas is owned by another field")
    assert "(kubectl-edit)" in text and "never takes fields over by force" in text


def test_a_refusal_carries_the_servers_message() -> None:
    e = api_error(422, "Invalid", 'Deployment.apps "web" is invalid: spec.selector: Required')
    err = _apply_error(Ref("apps/v1", "Deployment", "web", "ns"), e)
    assert isinstance(err, ObjectRejected) and (err.kind, err.name) == ("Deployment", "web")
    assert str(err) == (
        'the API server refused Deployment web: Deployment.apps "web" is invalid: '
        "spec.selector: Required"
    )


# -- connecting -----------------------------------------------------------------------------


def kubeconfig(tmp_path: Path, server: str, current: str | None = "local") -> Path:
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server}}],
        "users": [{"name": "admin", "user": {"token": "t"}}],
        "contexts": [
            {"name": "local", "context": {"cluster": "local", "user": "admin"}},
            {"name": "broken", "context": {"cluster": "nowhere", "user": "admin"}},
        ],
    }
    if current:
        data["current-context"] = current
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("setup", "context", "error", "says"),
    [
        (lambda p: None, None, KubeconfigError, "no such kubeconfig file"),
        (lambda p: p.write_text("a: [b\n"), None, KubeconfigError, "not a kubeconfig (not YAML"),
        (lambda p: p.write_text("a: 1\n"), None, KubeconfigError, "no contexts list"),
        (
            lambda p: kubeconfig(p.parent, "https://127.0.0.1:1"),
            "prod",
            ContextNotFound,
            "no context 'prod' (it has: broken, local)",
        ),
        (
            lambda p: kubeconfig(p.parent, "https://127.0.0.1:1", current=None),
            None,
            KubeconfigError,
            "no current-context: name one with --context",
        ),
        (
            lambda p: kubeconfig(p.parent, "https://127.0.0.1:1"),
            "broken",
            KubeconfigError,
            "names a cluster or user the file does not have",
        ),
    ],
)
def test_a_wrong_kubeconfig_or_context_is_one_message(
    tmp_path: Path, setup: Any, context: str | None, error: type[SalineError], says: str
) -> None:
    path = tmp_path / "kubeconfig"
    setup(path)
    with pytest.raises(error) as e:
        load_kubeconfig(str(path), context)
    assert str(e.value).startswith(str(path)), str(e.value)
    assert says in str(e.value)


def test_a_server_that_does_not_answer_is_one_message(tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    path = kubeconfig(tmp_path, server)
    with pytest.raises(ClusterUnreachable) as e:
        Cluster.connect(str(path), timeout=5)
    text = str(e.value)
    assert text.startswith(f"no Kubernetes API server answers at {server} (context local)")
    assert "scripts/kube-up" in text
