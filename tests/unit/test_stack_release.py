"""The compose document rendered with the release: change keys as labels, so what runs
can be read back, and a one-value change recreates only the instances it changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from release_tools import copy_example, edit, release_of
from saline.formulas import FormulaSet
from saline.model import load_model
from saline.stack import load_stack
from tools import EXAMPLE, FORMULAS, STATE_PLACEHOLDER, fixed_packages


def document(model_dir: Path | str = EXAMPLE) -> dict[str, Any]:
    release, _ = release_of(model_dir)
    stack = load_stack(
        load_model(str(model_dir)),
        FormulaSet([str(FORMULAS)]),
        "openstack",
        STATE_PLACEHOLDER,
        release,
        resolve=fixed_packages,
    )
    services: dict[str, Any] = stack.plan.document["services"]
    return services


def test_every_container_carries_its_change_key() -> None:
    release, _ = release_of()
    services = document()
    keyed = {
        s["labels"]["saline.instance"]: s["labels"]["saline.digest"]
        for s in services.values()
        if s["labels"].get("saline.kind") == "service"
    }
    assert keyed == {i.key: i.digest for i in release.instances}
    tasks = {
        s["labels"]["saline.task-key"]: s["labels"]["saline.task-inputs"]
        for s in services.values()
        if s["labels"].get("saline.kind") == "task"
    }
    assert tasks == {t.key: t.inputs for t in release.tasks}


def test_a_keystone_value_changes_only_the_keystone_containers(tmp_path: Path) -> None:
    before = document()
    model = copy_example(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    after = document(model)
    changed = {
        name
        for name, svc in after.items()
        if svc["labels"]["saline.inputs"] != before[name]["labels"]["saline.inputs"]
    }
    assert changed == {"keystone-ctl01", "keystone-ctl02"}


def test_a_recorded_release_renders_as_it_ran_whatever_the_model_says_now(
    tmp_path: Path,
) -> None:
    """A rollback renders the recorded release with its recorded pillars: today's model
    (another value, another image) gives only the nodes. The document is the one the
    old release ran with, byte for byte."""
    old_release, old_pillars = release_of()
    old = document()
    model = copy_example(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    formulas = FormulaSet([str(FORMULAS)])
    # Today's formulas build another keystone image than the recorded release ran.
    moved = {
        i.key: replace(i, image_tag="0" * 20) if i.service == "keystone" else i
        for i in old_release.instances
    }
    recorded = replace(old_release, instances=tuple(moved.values()))
    stack = load_stack(
        load_model(str(model)),
        formulas,
        "openstack",
        STATE_PLACEHOLDER,
        recorded,
        old_pillars,
        resolve=fixed_packages,
    )
    rolled: dict[str, Any] = stack.plan.document["services"]
    keystone = "keystone-ctl01"
    assert rolled[keystone]["image"].endswith(":" + "0" * 20)
    assert rolled[keystone]["labels"]["saline.digest"] == moved[f"keystone@{_ctl01()}"].digest
    assert rolled["keystone-db-sync"]["image"] == rolled[keystone]["image"]
    for name, svc in rolled.items():
        if name.startswith("keystone"):
            continue
        assert svc == old[name], name  # the recorded pillars, not today's values


def _ctl01() -> str:
    return next(n for n in release_of()[1] if n.startswith("ctl01"))
