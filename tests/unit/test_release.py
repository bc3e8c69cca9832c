"""The Release: change keys per instance and per task, waves, serialisation. Pure.

Config files are given here (the renderer is Salt, exercised in tests/integration and
test_render_cache); the model and formulas are the real example's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from release_tools import copy_example, edit, release_of
from saline.errors import ModelError
from saline.formulas import FormulaSet
from saline.images import services_by_node
from saline.model import load_model
from saline.release import release_from_dict, release_text
from tools import EXAMPLE, FORMULAS, REPO, fixed_packages


def test_every_instance_and_task_of_the_example_is_in_the_release() -> None:
    release, _ = release_of()
    formulas = FormulaSet([str(FORMULAS)])
    keys = {i.key for i in release.instances}
    model = load_model(str(EXAMPLE))
    expected = {
        f"{s.name}@{node}"
        for node, found in services_by_node(model, formulas).items()
        for s in found
    }
    assert keys == expected
    for inst in release.instances:
        spec = formulas.services[inst.service][1]
        for t in spec.bootstrap:
            key = f"{inst.service}/{t.name}"
            assert release.task(key if t.scope == "service" else f"{key}@{inst.node}")


def test_waves_follow_the_formulas_dependencies() -> None:
    release, _ = release_of()
    position = {s: n for n, wave in enumerate(release.waves) for s in wave}
    formulas = FormulaSet([str(FORMULAS)])
    for inst in release.instances:
        for dep in formulas.services[inst.service][1].depends:
            assert position[dep] < position[inst.service], (dep, inst.service)


def test_a_value_one_service_reads_changes_only_that_service(tmp_path: Path) -> None:
    before, _ = release_of()
    model = copy_example(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    after, _ = release_of(model)
    changed = {i.key for i in after.instances if before.instance(i.key).digest != i.digest}  # type: ignore[union-attr]
    assert changed and all(k.startswith("keystone@") for k in changed)
    # The tasks declare what they use: db sync does not read the token settings.
    for t in after.tasks:
        old = before.task(t.key)
        assert old is not None
        if t.service != "keystone" or t.task == "db-sync":
            assert old.inputs == t.inputs, t.key
    assert before.id != after.id


def test_a_task_runs_again_when_a_value_it_uses_changes(tmp_path: Path) -> None:
    before, _ = release_of()
    model = copy_example(tmp_path)
    edit(
        model / "classes/cluster/openstack/secrets.yml",
        "keystone_db_password: example-keystone-db",
        "keystone_db_password: another-keystone-db",
    )
    after, _ = release_of(model)
    db_sync = [t for t in after.tasks if t.service == "keystone" and t.task == "db-sync"]
    assert db_sync and all(before.task(t.key).inputs != t.inputs for t in db_sync)  # type: ignore[union-attr]
    # Secrets are never in the release, only digests of them.
    assert "another-keystone-db" not in release_text(after)


def test_the_serialisation_round_trips_and_checks_its_digests() -> None:
    release, _ = release_of()
    text = release_text(release)
    again = release_from_dict(json.loads(text), release.contents())
    assert release_text(again) == text
    assert again.id == release.id
    broken = json.loads(text)
    first = next(iter(broken["instances"].values()))
    first["command"] = ["/bin/false"]
    with pytest.raises(ValueError, match="digest"):
        release_from_dict(broken, {})
    broken = json.loads(text)
    broken["format_version"] = 99
    with pytest.raises(ValueError, match="format_version"):
        release_from_dict(broken, {})


def test_the_release_text_is_byte_identical_under_other_hash_seeds() -> None:
    script = (
        "import sys; sys.path[:0] = ['tests', 'tests/unit'];"
        "from release_tools import release_of; from saline.release import release_text;"
        "sys.stdout.write(release_text(release_of()[0]))"
    )
    outputs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop())["format_version"] == 1


def test_a_dependency_loop_between_services_is_a_model_error() -> None:
    from saline.release import waves

    release, _ = release_of()
    looped = [
        i if i.service != "mariadb" else type(i)(**{**i.__dict__, "depends": ("keystone",)})
        for i in release.instances
    ]
    with pytest.raises(ModelError, match="loop"):
        waves(looped)


GOLDEN_RELEASE = REPO / "tests" / "data" / "golden" / "release" / "openstack.json"


def test_the_example_release_matches_the_golden_one(tmp_path: Path) -> None:
    """The release of the example, config files rendered by the formulas for real (Salt
    in process). Regenerate with SALINE_UPDATE_GOLDEN=1, then review the git diff."""
    import difflib

    from saline.lifecycle.desired import desired_release

    model = load_model(str(EXAMPLE))
    desired = desired_release(
        model,
        FormulaSet([str(FORMULAS)]),
        {"model": "examples/openstack"},
        str(tmp_path / "c"),
        resolve=fixed_packages,
    )
    got = release_text(desired.release)
    assert "example-admin" not in got  # a secret of the example: never in a release
    if os.environ.get("SALINE_UPDATE_GOLDEN"):
        GOLDEN_RELEASE.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN_RELEASE.write_text(got)
    want = GOLDEN_RELEASE.read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True)))
        pytest.fail(f"the example's release differs from the golden one:\n{diff}")
