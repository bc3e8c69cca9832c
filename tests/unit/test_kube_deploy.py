"""The Kubernetes rollout (saline.lifecycle.kube_deploy.execute) against a fake cluster
that keeps objects in a dict: the order waves are applied in, the ApplySet parent, the
records and the journal, a failed wave putting the previous release back (and pruning
what only the failed one added), a first release that fails, a stopped apply named by
the next. The same paths run on the real cluster in tests/integration/test_kube_apply.py.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from saline.formulas import FormulaSet
from saline.lifecycle.journal import Journal
from saline.lifecycle.kube_deploy import (
    KubeApplyFailed,
    KubePrepared,
    KubeRecords,
    Target,
    _prepare,
    cluster_folder,
    execute,
)
from saline.manifests.kubernetes import KubeOptions
from saline.release import Instance, Release
from saline.runtime.kubernetes import (
    APPLYSET_ID,
    KINDS_ANNOTATION,
    PART_OF,
    Cluster,
    Parent,
    Ref,
    WaitTimeout,
    applyset_id,
    kinds_annotation,
)
from tools import FORMULAS

NS = "demo"
FORMULA_SET = FormulaSet([str(FORMULAS)])
LABELS = {"app.kubernetes.io/managed-by": "saline", "app.kubernetes.io/instance": NS}


class FakeCluster(Cluster):
    """A namespace in a dict. ``broken``: names of Deployments whose rollout never
    becomes healthy while their template says ``broken``."""

    def __init__(self, broken: Iterable[str] = ()) -> None:
        super().__init__(cast(Any, None), "https://fake:6443", "fake", "v1.37.2")
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.log: list[str] = []
        self.broken = set(broken)

    def get(self, ref: Ref) -> dict[str, Any] | None:
        return self.store.get((ref.kind, ref.name))

    def apply(self, obj: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(json.dumps(obj))
        if not dry_run:
            self.store[(obj["kind"], obj["metadata"]["name"])] = out
            self.log.append(f"apply {obj['kind']} {obj['metadata']['name']}")
        return out

    def check_namespace(self, namespace: str, instance: str) -> bool:
        return ("Namespace", namespace) in self.store

    def parent(self, namespace: str) -> Parent | None:
        found = self.store.get(("Secret", "saline-applyset"))
        if found is None:
            return None
        kinds = found["metadata"]["annotations"][KINDS_ANNOTATION]
        return Parent(applyset_id("saline-applyset", namespace), frozenset(kinds.split(",")), "")

    def members(self, namespace: str, set_id: str, kinds: Iterable[str]) -> list[dict[str, Any]]:
        wanted = set(kinds)
        return [
            o
            for o in self.store.values()
            if o["metadata"].get("labels", {}).get(PART_OF) == set_id and Ref.of(o).gk in wanted
        ]

    def delete(self, ref: Ref) -> bool:
        self.log.append(f"delete {ref}")
        return self.store.pop((ref.kind, ref.name), None) is not None

    def wait_healthy(self, refs: Sequence[Ref], timeout: float, progress: Any, what: str) -> None:
        for ref in refs:
            obj = self.store[(ref.kind, ref.name)]
            self.log.append(f"wait {ref}")
            if ref.name in self.broken and "broken" in json.dumps(obj.get("spec")):
                raise WaitTimeout(f"{what}: not healthy after {timeout:.0f} s: {ref}: 0 of 1")

    def wait_gone(self, refs: Sequence[Ref], timeout: float, progress: Any) -> None:
        pass


def objects(version: int, broken: bool = False, extra: bool = False) -> list[dict[str, Any]]:
    def meta(name: str, service: str = "web") -> dict[str, Any]:
        labels = {**LABELS, "app.kubernetes.io/name": service}
        return {"name": name, "namespace": NS, "labels": labels}

    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": LABELS}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(f"web-{version}")},
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                **meta(f"web-setup-{version}"),
                "labels": {
                    **meta("x")["labels"],
                    "app.kubernetes.io/name": "web",
                    "saline/task": "setup",
                },
            },
            "spec": {},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta("web"),
            "spec": {"config": f"web-{version}", "state": "broken" if broken else "fine"},
        },
    ]
    if extra:
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": meta("extra")})
    return out


def release(version: int) -> Release:
    inst = Instance(
        node="web",
        service="web",
        formula="web",
        image="saline/web",
        image_tag="t",
        configs=(),
        command=(),
        user=None,
        env={"V": str(version)},
        volumes={},
        ports=(),
        health={},
        api_check=None,
        depends=(),
        pillar_digest="",
    )
    return Release((inst,), (), (("web",),), {"model": "test"})


def quiet(line: str) -> None:
    pass


TARGET = Target("/dev/null", None, KubeOptions(NS, NS, "registry:5000"))


def prepared(cluster: FakeCluster, state: Path, version: int, **kw: Any) -> KubePrepared:
    objs = objects(version, **kw)
    return _prepare(str(state), TARGET, cluster, release(version), {}, objs, FORMULA_SET, None)


def records(state: Path) -> KubeRecords:
    return KubeRecords(str(state), "https://fake:6443", NS)


def test_the_first_apply_goes_wave_by_wave(tmp_path: Path) -> None:
    cluster = FakeCluster()
    p = prepared(cluster, tmp_path, 1)
    assert [w.stage for w in p.waves] == [
        "namespace",
        "config",
        "bootstrap",
        "deployments",
        "prune",
    ]
    assert {c.action for c in p.plan.objects} == {"create"}
    said: list[str] = []
    result = execute(p, said.append)
    assert cluster.log == [
        "apply Namespace demo",
        "apply Secret saline-applyset",
        "apply ConfigMap web-1",
        "apply Job web-setup-1",
        "wait Job web-setup-1",
        "apply Deployment web",
        "wait Deployment web",
        "apply Secret saline-applyset",
    ]
    parent = cluster.store[("Secret", "saline-applyset")]["metadata"]
    assert parent["labels"][APPLYSET_ID] == applyset_id("saline-applyset", NS)
    assert parent["annotations"][KINDS_ANNOTATION] == kinds_annotation(
        ["ConfigMap", "Job.batch", "Deployment.apps"]
    )
    assert cluster.store[("ConfigMap", "web-1")]["metadata"]["labels"][PART_OF]
    assert (
        "labels" not in cluster.store[("Namespace", NS)]
        or PART_OF not in (cluster.store[("Namespace", NS)]["metadata"]["labels"])
    )
    assert [w.outcome for w in result.waves] == ["done"] * 5
    r = records(tmp_path)
    assert r.current_id() == release(1).id
    assert r.load_objects(release(1).id) == p.objects
    assert oct(os.stat(os.path.join(r.objects, f"{release(1).id}.json")).st_mode & 0o777) == "0o600"
    assert not os.path.exists(r.journal_path)
    [done] = os.listdir(os.path.join(r.directory, "journal"))
    assert done.startswith(release(1).id) and done.endswith("-applied.jsonl")
    assert said[0] == "wave 1/5 namespace: 1 object(s)"


def test_a_failed_wave_puts_the_previous_release_back(tmp_path: Path) -> None:
    cluster = FakeCluster(broken=["web"])
    execute(prepared(cluster, tmp_path, 1), quiet)
    p = prepared(cluster, tmp_path, 2, broken=True, extra=True)
    changes = {(c.kind, c.name): c.action for c in p.plan.objects if c.action != "unchanged"}
    assert changes == {
        ("ConfigMap", "web-2"): "create",
        ("Job", "web-setup-2"): "create",
        ("Service", "extra"): "create",
        ("Deployment", "web"): "change",
        ("ConfigMap", "web-1"): "prune",
        ("Job", "web-setup-1"): "prune",
    }
    cluster.log.clear()
    said: list[str] = []
    with pytest.raises(KubeApplyFailed) as e:
        execute(p, said.append)
    text = str(e.value)
    assert text.startswith(f"release {release(2).id}: wave 4 (deployments (web)): not healthy")
    assert f"Rolled back: the objects of release {release(1).id} were applied again" in text
    # Version 1 is back, and what only version 2 made is gone.
    assert cluster.store[("Deployment", "web")]["spec"] == {"config": "web-1", "state": "fine"}
    assert ("ConfigMap", "web-1") in cluster.store and ("Job", "web-setup-1") in cluster.store
    for gone in (("ConfigMap", "web-2"), ("Job", "web-setup-2"), ("Service", "extra")):
        assert gone not in cluster.store
    assert "delete Service extra" in cluster.log
    assert f"release {release(2).id} failed: putting release {release(1).id} back" in said
    r = records(tmp_path)
    assert r.current_id() == release(1).id
    assert [h["outcome"] for h in r.history()] == ["applied", "failed"]
    [failed] = [f for f in os.listdir(os.path.join(r.directory, "journal")) if "failed" in f]
    text = Path(r.directory, "journal", failed).read_text()
    phases = [json.loads(line).get("phase") for line in text.splitlines()[1:]]
    assert phases[-2:] == ["failed", "restored"]


def test_a_first_release_that_fails_says_nothing_can_be_put_back(tmp_path: Path) -> None:
    cluster = FakeCluster(broken=["web"])
    with pytest.raises(KubeApplyFailed) as e:
        execute(prepared(cluster, tmp_path, 1, broken=True), quiet)
    assert "No earlier release of namespace demo is recorded, so there is nothing" in str(e.value)
    assert "saline down --target kubernetes" in str(e.value)
    assert ("Deployment", "web") in cluster.store  # left applied, and said so


def test_a_stopped_apply_is_named_and_applying_again_converges(tmp_path: Path) -> None:
    cluster = FakeCluster()
    p = prepared(cluster, tmp_path, 1)
    r = records(tmp_path)
    stopped = Journal.start(r.journal_path, release(1).id, [w.as_dict() for w in p.waves])
    stopped.record(0, "begin")
    stopped.record(0, "done")
    stopped.record(1, "begin")
    said: list[str] = []
    result = execute(p, said.append)
    assert result.resumed == release(1).id
    assert any("stopped midway (1 of 5 waves done)" in line for line in said)
    assert r.current_id() == release(1).id
    assert sorted(
        f.rsplit("-", 1)[1] for f in os.listdir(os.path.join(r.directory, "journal"))
    ) == [
        "applied.jsonl",
        "stopped.jsonl",
    ]


def test_records_are_kept_per_cluster_and_namespace() -> None:
    assert cluster_folder("https://127.0.0.1:6443") == "127.0.0.1-6443"
    assert cluster_folder("https://k8s.example.net") == "k8s.example.net-443"
    assert KubeRecords("/s", "https://10.0.0.1:6443", "prod").directory == (
        "/s/kubernetes/10.0.0.1-6443/prod"
    )
