"""Kubernetes manifests of a release (saline.manifests.kubernetes): golden, deterministic,
valid for the pinned Kubernetes version's models, secrets only in Secrets, change keys,
network policies, and the model's mistakes as one message.

Most tests take the release with given config files (tests/release_tools.py: no Salt);
the golden test and the CLI's render the example's config files for real.
"""

from __future__ import annotations

import base64
import copy
import difflib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightkube.codecs
import pytest

from release_tools import edit, release_of
from saline.build.entrypoint import overlay_secrets
from saline.cli import main
from saline.cli.kube import _write
from saline.errors import ModelError
from saline.formulas import FormulaSet
from saline.lifecycle.desired import Desired, desired_release
from saline.manifests.kubernetes import (
    FILES,
    PLACEHOLDER,
    SECRETS_FILE,
    KubeOptions,
    _probe_handler,
    kubernetes_manifests,
    manifest_files,
    split_secrets,
)
from saline.model import load_model
from saline.model.secrets import secret_values
from tools import FORMULAS, REPO, core_example, fixed_packages

KUBE = REPO / "examples" / "openstack-kubernetes"
GOLDEN = REPO / "tests" / "data" / "golden" / "kubernetes"
SPECS = {name: spec for name, (_, spec) in FormulaSet([str(FORMULAS)]).services.items()}
OPTIONS = KubeOptions()

Obj = dict[str, Any]


def manifests(model_dir: Path | str = KUBE, options: KubeOptions = OPTIONS) -> list[Obj]:
    """The manifests of a model, config files given (release_tools), with provenance."""
    release, pillars = release_of(model_dir)
    locate = Desired(release, pillars, load_model(str(model_dir))).locate
    return kubernetes_manifests(release, pillars, SPECS, options, locate)


def by_key(objects: list[Obj]) -> dict[tuple[str, str], Obj]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    return by_key(objects)[(kind, name)]


def copy_kube(tmp_path: Path) -> Path:
    """A copy of the Kubernetes example (its shared system classes copied in)."""
    target = tmp_path / "model"
    shutil.copytree(KUBE, target)
    return target


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Obj], Desired]:
    """The example's manifests from its release with config files rendered by Salt."""
    desired = desired_release(
        load_model(str(KUBE)),
        FormulaSet([str(FORMULAS)]),
        {"model": "examples/openstack-kubernetes"},
        str(tmp_path_factory.mktemp("cache")),
        resolve=fixed_packages,
    )
    objects = kubernetes_manifests(desired.release, desired.pillars, SPECS, OPTIONS, desired.locate)
    return objects, desired


# -- golden, deterministic, valid ---------------------------------------------------------


def test_the_example_manifests_match_the_golden_ones(rendered: tuple[list[Obj], Desired]) -> None:
    """Regenerate with SALINE_UPDATE_GOLDEN=1, then review the git diff."""
    files = manifest_files(rendered[0])
    if os.environ.get("SALINE_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        GOLDEN.mkdir(parents=True)
        for name, text in files.items():
            (GOLDEN / name).write_text(text)
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(files)
    for name, got in files.items():
        want = (GOLDEN / name).read_text()
        if got != want:
            diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True)))
            pytest.fail(f"{name} differs from the golden one:\n{diff}")


SCRIPT = """
import sys
sys.path[:0] = ["tests", "tests/unit"]
from release_tools import release_of
from saline.formulas import FormulaSet
from saline.manifests.kubernetes import KubeOptions, kubernetes_manifests, manifest_files
release, pillars = release_of(sys.argv[1])
specs = {n: s for n, (_, s) in FormulaSet(["formulas"]).services.items()}
files = manifest_files(kubernetes_manifests(release, pillars, specs, KubeOptions()))
for name, text in sorted(files.items()):
    sys.stdout.write(f"== {name}\\n{text}")
"""


def test_the_manifests_are_byte_identical_under_other_hash_seeds() -> None:
    outputs = set()
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "SALINE_NO_CACHE": "1"}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(KUBE)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.add(done.stdout)
    assert len(outputs) == 1
    text = outputs.pop()
    assert text.count("\n== ") == len(FILES) - 1  # every kind (the first has no newline)


def _model_errors(obj: Obj) -> list[str]:
    """Load ``obj`` into the lightkube model of its kind (Kubernetes v1.37: types and
    required fields checked) and back: a key the model does not know is dropped on the
    way, so the round trip finds typos too."""
    try:
        resource = lightkube.codecs.from_dict(copy.deepcopy(obj))
    except Exception as e:  # msgspec.ValidationError, LoadResourceError
        return [f"does not load: {e}"]
    back: Obj = resource.to_dict()  # type: ignore[no-untyped-call]
    # The claim templates of a StatefulSet are PersistentVolumeClaim resources to
    # lightkube, which gives them their apiVersion and kind: not a dropped field.
    for claim in back.get("spec", {}).get("volumeClaimTemplates", []):
        claim.pop("apiVersion")
        claim.pop("kind")
    if back == obj:
        return []
    a = json.dumps(obj, indent=1, sort_keys=True).splitlines(True)
    b = json.dumps(back, indent=1, sort_keys=True).splitlines(True)
    return ["keys the model dropped or changed:\n" + "".join(difflib.unified_diff(a, b))]


def test_every_object_is_valid_for_the_pinned_kubernetes_models(
    rendered: tuple[list[Obj], Desired],
) -> None:
    objects = rendered[0]
    problems = {
        f"{o['kind']} {o['metadata']['name']}": e for o in objects if (e := _model_errors(o))
    }
    assert not problems, problems
    assert {o["kind"] for o in objects} == set(FILES)


def test_the_schema_check_finds_a_misspelt_field(rendered: tuple[list[Obj], Desired]) -> None:
    deployment = copy.deepcopy(one(rendered[0], "Deployment", "keystone"))
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    assert _model_errors(deployment)
    deployment["spec"]["replicas"] = "2"
    assert "does not load" in _model_errors(deployment)[0]


def test_names_and_labels_are_what_kubernetes_accepts(rendered: tuple[list[Obj], Desired]) -> None:
    import re

    label = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
    for o in rendered[0]:
        name = o["metadata"]["name"]
        assert len(name) <= 63 and re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name), name
        for where in _all(o, "labels"):
            for k, v in where.items():
                assert len(v) <= 63 and label.match(v), (name, k, v)


def _all(value: Any, key: str) -> list[Any]:
    """Every value under ``key`` anywhere in ``value``."""
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found += _all(v, key)
    elif isinstance(value, list):
        for v in value:
            found += _all(v, key)
    return found


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_are_only_in_secrets(rendered: tuple[list[Obj], Desired]) -> None:
    objects, desired = rendered
    secrets = set().union(*(secret_values(p) for p in desired.pillars.values()))
    assert "example-k8s-admin" in secrets
    in_secrets = ""
    for o in objects:
        if o["kind"] == "Secret":
            in_secrets += "".join(base64.b64decode(v).decode() for v in o["data"].values())
            text = json.dumps({k: v for k, v in o.items() if k != "data"})
        else:
            text = json.dumps(o, ensure_ascii=False)
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, (o["kind"], o["metadata"]["name"], leaked)
    # ... and every secret a service's section uses is in some Secret.
    sections = json.dumps(
        [p.get(s.pillar.split(":")[0]) for p in desired.pillars.values() for s in SPECS.values()],
        ensure_ascii=False,
    )
    used = {s for s in secrets if s in sections}
    assert "example-k8s-mysql-admin" in used
    assert used and all(s in in_secrets for s in used)


def test_a_pod_gets_its_pillar_section_back_from_its_configmap_and_secret(
    rendered: tuple[list[Obj], Desired],
) -> None:
    """What the entrypoint does (SALINE_PILLAR + SALINE_PILLAR_SECRETS) gives the
    service's pillar section exactly, for every workload and Job."""
    objects, desired = rendered
    objs = by_key(objects)
    checked = 0
    for o in objects:
        if o["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        pod = o["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        config = objs[("ConfigMap", volumes["saline-pillar"]["configMap"]["name"])]
        secret = objs[("Secret", volumes["saline-secrets"]["secret"]["secretName"])]
        pillar = json.loads(config["data"]["pillar.json"])
        hidden = json.loads(base64.b64decode(secret["data"]["secrets.json"]))
        assert (PLACEHOLDER in config["data"]["pillar.json"]) == bool(hidden)
        merged = overlay_secrets(pillar, hidden)
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        node = env["SALINE_NODE"]
        service = o["metadata"]["labels"]["app.kubernetes.io/name"]
        path = SPECS[service].pillar.split(":")
        want: Any = desired.pillars[node]
        for k in path:
            want = want[k]
        for k in reversed(path):
            want = {k: want}
        assert merged == want, o["metadata"]["name"]
        checked += 1
    assert checked == 11  # 5 workloads, 6 Jobs


def test_split_secrets_moves_whole_values_and_refuses_secret_keys() -> None:
    tree = {"db": {"url": "mysql://u:s3cret-pw@db/x", "port": 3306, "users": ["a", "s3cret-pw"]}}
    public, hidden = split_secrets(tree, {"s3cret-pw"})
    assert public == {"db": {"url": PLACEHOLDER, "port": 3306, "users": ["a", PLACEHOLDER]}}
    assert hidden == {"/db/url": "mysql://u:s3cret-pw@db/x", "/db/users/1": "s3cret-pw"}
    assert overlay_secrets(public, hidden) == tree
    # JSON Pointer escapes '/' and '~' in keys.
    public, hidden = split_secrets({"/openstack": {"pass~": "s3cret-pw"}}, {"s3cret-pw"})
    assert hidden == {"/~1openstack/pass~0": "s3cret-pw"}
    assert overlay_secrets(public, hidden) == {"/openstack": {"pass~": "s3cret-pw"}}
    with pytest.raises(ValueError, match="key"):
        split_secrets({"s3cret-pw": 1}, {"s3cret-pw"})


def test_the_entrypoint_overlay_refuses_paths_the_pillar_lacks() -> None:
    with pytest.raises(ValueError, match="/a/b is not in the pillar"):
        overlay_secrets({"a": {"c": 1}}, {"/a/b": "x"})
    with pytest.raises(ValueError, match="/a/5 is not in the pillar"):
        overlay_secrets({"a": [1]}, {"/a/5": "x"})
    with pytest.raises(ValueError, match="JSON Pointer"):
        overlay_secrets({"a": 1}, {"a": "x"})
    with pytest.raises(ValueError, match="JSON object"):
        overlay_secrets({"a": 1}, ["/a"])


def test_the_entrypoint_merges_the_secrets_file_before_configure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saline.build import entrypoint

    pillar = tmp_path / "pillar.json"
    secrets = tmp_path / "secrets.json"
    pillar.write_text(json.dumps({"k": {"server": {"password": PLACEHOLDER, "port": 1}}}))
    secrets.write_text(json.dumps({"/k/server/password": "s3cret-pw"}))
    monkeypatch.setattr(entrypoint, "PILLAR", str(pillar))
    monkeypatch.setattr(entrypoint, "PILLAR_SECRETS", str(secrets))
    work = tmp_path / "work"
    work.mkdir()
    pdir = entrypoint.write_pillar(str(work))
    text = (Path(pdir) / "saline.sls").read_text()
    assert json.loads(text.split("\n", 1)[1]) == {
        "k": {"server": {"password": "s3cret-pw", "port": 1}}
    }
    secrets.write_text(json.dumps({"/k/server/missing": "x"}))
    with pytest.raises(SystemExit) as stop:
        entrypoint.write_pillar(str(tmp_path / "again"))
    assert stop.value.code == 2


# -- change keys ------------------------------------------------------------------------------


def _changed(before: list[Obj], after: list[Obj]) -> set[tuple[str, str]]:
    a, b = by_key(before), by_key(after)
    return {k for k in set(a) | set(b) if a.get(k) != b.get(k)}


def test_a_keystone_value_changes_only_keystone_objects(tmp_path: Path) -> None:
    before = manifests()
    model = copy_kube(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    after = manifests(model)
    changed = _changed(before, after)
    names = {
        k: (by_key(after).get(k) or by_key(before)[k])["metadata"]["labels"].get(
            "app.kubernetes.io/name"
        )
        for k in changed
    }
    assert {n for k, n in names.items() if k != ("ConfigMap", "saline-release")} == {"keystone"}
    kinds = sorted(k for k in changed if k[0] != "ConfigMap")
    assert kinds == [("Deployment", "keystone")]  # the same Secret: no secret changed
    old = {k for k in changed if k in by_key(before) and k not in by_key(after)}
    new = {k for k in changed if k in by_key(after) and k not in by_key(before)}
    assert [k[1].startswith("keystone-pillar-") for k in old | new] == [True, True]
    pod = one(after, "Deployment", "keystone")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == next(iter(new))[1]
    # The tasks do not use the token settings: their Jobs keep their names and are the
    # same objects (never patched); only their own pillar ConfigMaps follow the value.
    assert not any(k[0] == "Job" for k in changed)
    assert {k for k in changed if k[0] == "ConfigMap" and "-pillar-" not in k[1]} == {
        ("ConfigMap", "saline-release"),
        *{("ConfigMap", k[1]) for k in by_key(after) if k[0] == "Job" and "keystone" in k[1]},
    }


def test_a_changed_task_gets_a_new_job_and_an_unchanged_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    before = manifests()
    model = copy_kube(tmp_path)
    edit(
        model / "classes/cluster/openstack/secrets.yml",
        "keystone_db_password: example-k8s-keystone-db",
        "keystone_db_password: another-keystone-db",
    )
    after = manifests(model)

    def jobs(objects: list[Obj]) -> set[str]:
        return {o["metadata"]["name"] for o in objects if o["kind"] == "Job"}

    gone, came = jobs(before) - jobs(after), jobs(after) - jobs(before)
    # keystone's db-sync and identity use keystone:server:database; mariadb's databases
    # task uses mysql:server:database, which holds the user's password.
    assert sorted(n.rsplit("-", 1)[0] for n in gone) == sorted(
        ["keystone-db-sync", "keystone-identity", "mariadb-databases"]
    )
    assert sorted(n.rsplit("-", 1)[0] for n in came) == sorted(n.rsplit("-", 1)[0] for n in gone)
    unchanged = jobs(before) & jobs(after)
    assert {n.rsplit("-", 1)[0] for n in unchanged} == {
        "glance-api-db-sync",
        "glance-api-register",
        "rabbitmq-vhosts",
    }
    for name in unchanged:
        assert one(before, "Job", name) == one(after, "Job", name)
    # A secret changed: new Secrets for keystone and mariadb, the ConfigMaps the same.
    secrets = {k[1].split("-secrets-")[0] for k in _changed(before, after) if "-secrets-" in k[1]}
    assert secrets == {"keystone", "mariadb"}
    assert "another-keystone-db" not in json.dumps(
        [o for o in after if o["kind"] != "Secret"], ensure_ascii=False
    )


def test_jobs_are_named_by_their_inputs_and_annotated_with_their_keys() -> None:
    release, _ = release_of(KUBE)
    objects = manifests()
    for t in release.tasks:
        job = one(objects, "Job", f"{t.service}-{t.task}-{t.inputs}")
        assert job["metadata"]["annotations"] == {
            "saline/task": t.key,
            "saline/task-inputs": t.inputs,
        }
        assert "ttlSecondsAfterFinished" not in job["spec"]  # the record that it ran
        pod = job["spec"]["template"]["spec"]
        assert pod["containers"][0]["args"] == ["bootstrap", t.task]
    record = json.loads(one(objects, "ConfigMap", "saline-release")["data"]["release.json"])
    assert record["id"] == release.id
    assert record["tasks"] == {t.key: t.inputs for t in release.tasks}


# -- workloads --------------------------------------------------------------------------------


def test_workloads_probes_rollout_and_volumes() -> None:
    objects = manifests()
    keystone = one(objects, "Deployment", "keystone")
    assert keystone["spec"]["replicas"] == 2
    assert keystone["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = keystone["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] < pod["terminationGracePeriodSeconds"]
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(c)
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "320Mi"}
    assert c["image"].startswith("127.0.0.1:5000/saline/keystone:")
    assert one(objects, "PodDisruptionBudget", "keystone")["spec"]["maxUnavailable"] == 1
    assert ("PodDisruptionBudget", "memcached") not in by_key(objects)  # one replica
    # Stateful: a StatefulSet with a claim per replica and a headless Service; /run is
    # runtime state (an emptyDir).
    mariadb = one(objects, "StatefulSet", "mariadb")
    assert mariadb["spec"]["serviceName"] == "mariadb-headless"
    assert one(objects, "Service", "mariadb-headless")["spec"]["clusterIP"] == "None"
    [claim] = mariadb["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert {"name": "run", "emptyDir": {}} in mariadb["spec"]["template"]["spec"]["volumes"]
    # glance's store: one claim every replica mounts.
    glance = one(objects, "Deployment", "glance-api")["spec"]["template"]["spec"]
    assert {"name": "images", "persistentVolumeClaim": {"claimName": "glance-api-images"}} in (
        glance["volumes"]
    )
    pvc = one(objects, "PersistentVolumeClaim", "glance-api-images")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    # Services by the services' names: the model's addresses.
    assert one(objects, "Service", "keystone")["spec"]["ports"] == [
        {"name": "api", "port": 5000, "targetPort": "api", "protocol": "TCP"}
    ]


def test_options_reach_the_objects() -> None:
    options = KubeOptions(
        namespace="cloud",
        name="prod",
        registry="registry.local:5000",
        storage_class="fast",
        shared_access_mode="ReadWriteOnce",
        namespace_object=False,
    )
    objects = manifests(options=options)
    assert all(o["metadata"].get("namespace") == "cloud" for o in objects)
    assert not any(o["kind"] == "Namespace" for o in objects)
    assert all(o["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod" for o in objects)
    pvc = one(objects, "PersistentVolumeClaim", "glance-api-images")["spec"]
    assert pvc["storageClassName"] == "fast" and pvc["accessModes"] == ["ReadWriteOnce"]
    claim = one(objects, "StatefulSet", "mariadb")["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["storageClassName"] == "fast"
    image = one(objects, "Deployment", "keystone")["spec"]["template"]["spec"]["containers"][0]
    assert image["image"].startswith("registry.local:5000/saline/keystone:")


def test_probes_follow_the_formula_health() -> None:
    ok = {"http": {"port": 80, "path": "/v3", "status": [200, 300]}}
    assert _probe_handler(ok) == {"httpGet": {"path": "/v3", "port": 80}}
    # The kubelet counts 200-399 only: a 401 that counts as healthy needs the image's probe.
    odd = {"http": {"port": 80, "path": "/", "status": [200, 401]}}
    assert _probe_handler(odd)["exec"]["command"][:3] == ["saline-entrypoint", "health", "http"]
    assert _probe_handler({"tcp": {"port": 11211}}) == {"tcpSocket": {"port": 11211}}
    assert _probe_handler({"exec": {"command": ["x", "y"]}}) == {"exec": {"command": ["x", "y"]}}


def test_an_instance_task_is_an_init_container_of_the_pods() -> None:
    release, pillars = release_of(KUBE)
    task = next(t for t in release.tasks if t.service == "keystone" and t.task == "db-sync")
    tasks = tuple(
        replace(t, scope="instance", node="control") if t is task else t for t in release.tasks
    )
    objects = kubernetes_manifests(replace(release, tasks=tasks), pillars, SPECS, OPTIONS)
    pod = one(objects, "Deployment", "keystone")["spec"]["template"]
    [init] = pod["spec"]["initContainers"]
    assert init["args"] == ["bootstrap", "db-sync"] and init["name"] == "task-db-sync"
    assert pod["metadata"]["annotations"]["saline/task-db-sync"] == task.inputs
    assert not any(o["metadata"]["name"].startswith("keystone-db-sync") for o in objects)
    running = tuple(replace(t, needs_running=True) if t.scope == "instance" else t for t in tasks)
    with pytest.raises(ModelError, match="db-sync of keystone runs once per instance"):
        kubernetes_manifests(replace(release, tasks=running), pillars, SPECS, OPTIONS)


# -- network policies -------------------------------------------------------------------------


def _admits(objects: list[Obj], service: str) -> set[str] | None:
    """Who the service's policy admits: service names, or None for anyone."""
    [rule] = one(objects, "NetworkPolicy", service)["spec"]["ingress"]
    if "from" not in rule:
        return None
    return {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]}


def test_network_policies_follow_the_service_graph() -> None:
    objects = manifests()
    deny = one(objects, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    # Published by the model (saline:kubernetes:services:S:public): from anywhere.
    assert _admits(objects, "keystone") is None
    assert _admits(objects, "glance-api") is None
    # Depended on (formulas' depends), or named as an address in a client's pillar
    # (glance-api's message_queue:host is rabbitmq); always its own pods and Jobs.
    assert _admits(objects, "mariadb") == {"mariadb", "keystone", "glance-api"}
    assert _admits(objects, "memcached") == {"memcached", "keystone", "glance-api"}
    assert _admits(objects, "rabbitmq") == {"rabbitmq", "glance-api"}
    policy = one(objects, "NetworkPolicy", "mariadb")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "mariadb"
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3306}]
    # A peer selects the service's pods and its Jobs (no component in the selector).
    job = one(objects, "Job", next(o["metadata"]["name"] for o in objects if o["kind"] == "Job"))
    peer = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert set(peer) < set(labels)


def test_clients_in_the_model_are_admitted(tmp_path: Path) -> None:
    model = copy_kube(tmp_path)
    edit(
        model / "classes/cluster/openstack/init.yml",
        "        rabbitmq:\n",
        "        rabbitmq:\n          clients: [keystone]\n",
    )
    assert _admits(manifests(model), "rabbitmq") == {"rabbitmq", "glance-api", "keystone"}


# -- the model's mistakes -----------------------------------------------------------------


def test_replicas_default_to_the_nodes_that_run_the_service(tmp_path: Path) -> None:
    """The compose example (identity and images: Kubernetes runs no compute yet) runs
    keystone and glance-api on two controllers whose config is the same: one Deployment
    with two replicas each."""
    objects = manifests(core_example(tmp_path))
    assert one(objects, "Deployment", "keystone")["spec"]["replicas"] == 2
    annotations = one(objects, "Deployment", "keystone")["metadata"]["annotations"]
    assert sorted(json.loads(annotations["saline/instances"])) == [
        "keystone@ctl01.openstack.local",
        "keystone@ctl02.openstack.local",
    ]


def test_instances_of_one_service_must_have_the_same_config(tmp_path: Path) -> None:
    model = core_example(tmp_path)
    node = model / "nodes/ctl02.openstack.local.yml"
    node.write_text(
        node.read_text() + "  keystone:\n    server:\n      tokens:\n        expiration: 7200\n"
    )
    with pytest.raises(ModelError) as e:
        manifests(model)
    text = str(e.value)
    assert text.startswith("nodes/ctl02.openstack.local.yml:10, node ctl02.openstack.local, key ")
    assert "service keystone runs on ctl01.openstack.local and ctl02.openstack.local" in text
    assert "one Deployment" in text and "config file /etc/keystone/keystone.conf differs" in text
    assert (
        "keystone:server:tokens:expiration is 3600 on ctl01.openstack.local "
        "(classes/system/keystone/server.yml:" in text
    )
    assert "and 7200 on ctl02.openstack.local (nodes/ctl02.openstack.local.yml:10)" in text
    assert text.endswith("with saline:kubernetes:services:keystone:replicas: 2")


def test_a_secret_that_differs_between_instances_is_not_shown(tmp_path: Path) -> None:
    model = core_example(tmp_path)
    node = model / "nodes/ctl02.openstack.local.yml"
    node.write_text(
        node.read_text() + "  keystone:\n    server:\n      admin_password: other-secret-pw\n"
        "  _secrets:\n    extra: other-secret-pw\n"
    )
    with pytest.raises(ModelError) as e:
        manifests(model)
    assert "other-secret-pw" not in str(e.value) and "example-admin" not in str(e.value)
    assert "(a secret value)" in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("        keystne: {replicas: 2}\n", "no node of the model runs a service 'keystne'"),
        ("        memcached: {replicas: 0}\n", "must be a whole number of at least 1"),
        ("        memcached: {replica: 2}\n", "unknown setting"),
        ("        memcached: {public: yes please}\n", "must be true or false"),
        ("        memcached: {storage: {data: 1Gi}}\n", "service memcached has no volume 'data'"),
        ("        memcached: {clients: [nova]}\n", "must be a list of the model's services"),
    ],
)
def test_kubernetes_settings_mistakes_name_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    model = copy_kube(tmp_path)
    edit(
        model / "classes/cluster/openstack/init.yml",
        "      services:\n",
        "      services:\n" + text,
    )
    with pytest.raises(ModelError, match=message) as e:
        manifests(model)
    assert str(e.value).startswith("classes/cluster/openstack/init.yml:")


# -- the command ------------------------------------------------------------------------------


def test_the_command_writes_one_file_per_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "README").write_text("mine\n")
    argv = ["manifests", "--target", "kubernetes", "--model", str(KUBE), "--out", str(out)]
    code = main([*argv, "--namespace", "cloud", "--format", "json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed["namespace"] == "cloud"
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([*printed["files"], "README"])
    assert (out / "20-secrets.yaml").stat().st_mode & 0o777 == 0o600
    assert "namespace: cloud" in (out / "90-deployments.yaml").read_text()
    assert printed["files"]["60-disruption-budgets.yaml"]["objects"] == 2
    # A kind the model no longer has is removed; other files are left alone.
    _write(str(out), {"00-namespace.yaml": "x\n"}, set(FILES.values()), SECRETS_FILE)
    assert sorted(p.name for p in out.iterdir()) == ["00-namespace.yaml", "README"]
    code = main([*argv, "--namespace", "Not_A_Name"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "namespace 'Not_A_Name'" in err


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"cpu": "lots"}, "cpu"),
        ({"memory": "1 GB"}, "memory"),
        ({"memory": "64Mi", "gpu": 1}, "gpu"),
    ],
)
def test_formula_resources_are_strict(resources: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from saline.formulas.schema import Resources

    with pytest.raises(ValidationError, match=message):
        Resources.model_validate(resources)
    assert Resources.model_validate({"cpu": "0.5", "memory": "1Gi"}).cpu == "0.5"


def test_the_cli_offers_the_access_modes_the_manifests_accept() -> None:
    from saline.cli import kube
    from saline.manifests import kubernetes

    assert kube.ACCESS_MODES == kubernetes.ACCESS_MODES
