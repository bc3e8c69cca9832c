"""The planner: actions and why, impact per file and key, masked diffs, causes, order.
Pure: releases are built from the real example model with given config files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from release_tools import copy_example, edit, release_of
from saline.build.graph import Recipe
from saline.build.packages import Package, PackageSet
from saline.errors import ModelError
from saline.formulas import FormulaSet
from saline.formulas.schema import FileImpact
from saline.lifecycle.kube_deploy import refuse_release_upgrades
from saline.lifecycle.plan import (
    Current,
    file_impact,
    make_plan,
    masked_diff,
    plan_markdown,
    plan_text,
)
from saline.lifecycle.upgrade import UpgradeRecord, UpgradeRefused
from saline.release import Release
from saline.runtime.kubernetes import KubeError
from tools import FORMULAS, fixed_packages

KEYSTONE_CONF = "/etc/keystone/keystone.conf"


def formulas() -> FormulaSet:
    return FormulaSet([str(FORMULAS)])


def test_no_change_is_an_empty_plan() -> None:
    release, pillars = release_of()
    plan = make_plan(release, Current.of_release(release, pillars), formulas(), pillars)
    assert plan.empty and not plan.changes and not plan.tasks
    assert plan.unchanged == len(release.instances)
    assert plan.summary().startswith("No changes")


def test_nothing_running_creates_every_instance_and_runs_every_task() -> None:
    release, pillars = release_of()
    plan = make_plan(release, Current.nothing(), formulas(), pillars)
    assert {c.action for c in plan.changes} == {"create"}
    assert len(plan.changes) == len(release.instances)
    assert {t.key for t in plan.tasks} == {t.key for t in release.tasks}
    # Order: every service after the services it depends on.
    order = [s.key for s in plan.steps if s.kind == "instance"]
    for inst in release.instances:
        for dep in inst.depends:
            first_dep = min(i for i, k in enumerate(order) if k.startswith(dep + "@"))
            assert first_dep < order.index(inst.key), (dep, inst.key)


def test_a_keystone_value_restarts_only_keystone_and_says_where_it_is_set(tmp_path: Path) -> None:
    before, old_pillars = release_of()
    model = copy_example(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    after, pillars = release_of(model)

    def locate(node: str, key: str) -> tuple[str | None, str | None]:
        return ("classes/system/keystone/server.yml:32", None)

    plan = make_plan(after, Current.of_release(before, old_pillars), formulas(), pillars, locate)
    assert {c.service for c in plan.changes} == {"keystone"}
    spec = formulas().services["keystone"][1]
    for c in plan.changes:
        assert c.action == spec.impact("/etc/keystone/keystone.conf").change or c.action in (
            "restart",
            "reload",
        )
        (cause,) = c.causes
        assert cause.key == "keystone:server:tokens:expiration"
        assert (cause.before, cause.after) == (3600, 7200)
        assert cause.location == "classes/system/keystone/server.yml:32"
        (f,) = c.files
        assert '-  "expiration": 3600,' in f.diff and '+  "expiration": 7200,' in f.diff
    text = plan_text(plan)
    assert "keystone:server:tokens:expiration: 3600 -> 7200" in text
    assert text.rstrip().endswith("unchanged.")
    assert json.loads(json.dumps(plan.as_dict()))["format_version"] == 1


def test_nova_changes_say_what_they_do_to_running_servers(tmp_path: Path) -> None:
    """With the files Salt renders: a nova value reaches nova's control services only (the
    uwsgi APIs reload), a compute node's value restarts nova-compute and the plan says the
    servers keep running, libvirt untouched; a new libvirt image replaces it, and the plan
    says the node's servers stop."""
    from saline.lifecycle.desired import desired_release
    from saline.model import load_model

    def desired(model: Path, formulas_dir: Path | str = FORMULAS) -> tuple[Release, dict[str, Any]]:
        d = desired_release(
            load_model(str(model)),
            FormulaSet([str(formulas_dir)]),
            None,
            str(tmp_path / "cache"),
            resolve=fixed_packages,
        )
        return d.release, d.pillars

    model = copy_example(tmp_path)
    before, old_pillars = desired(model)
    edit(model / "classes/system/nova/controller.yml", "m1.small: {vcpus: 1", "m1.small: {vcpus: 2")
    edit(
        model / "classes/system/nova/compute.yml",
        "virt_type: qemu",
        "virt_type: qemu\n      debug: true",
    )
    after, pillars = desired(model)
    plan = make_plan(after, Current.of_release(before, old_pillars), formulas(), pillars)
    actions = {c.key.split("@")[0]: c.action for c in plan.changes}
    # The flavors are a task's input only: no service's files change; debug is nova.conf's.
    assert actions == {"nova-compute": "restart"}
    assert [t.task for t in plan.tasks] == ["flavors"]
    (compute,) = plan.changes
    assert "effect of the restart: running servers keep running" in " ".join(compute.reasons)
    text = plan_text(plan)
    assert "running servers keep running" in text and "servers stop" not in text
    # libvirt's own change (a new image): the servers stop, and the plan says so.
    formulas_dir = tmp_path / "formulas"
    shutil.copytree(FORMULAS, formulas_dir)
    qemu = formulas_dir / "nova" / "files" / "qemu.conf"
    qemu.write_text(qemu.read_text() + "max_files = 4096\n")
    after2, pillars2 = desired(model, formulas_dir)
    changed = FormulaSet([str(formulas_dir)])
    plan2 = make_plan(after2, Current.of_release(after, pillars), changed, pillars2)
    libvirt = next(c for c in plan2.changes if c.service == "nova-libvirt")
    assert libvirt.action == "replace"
    assert "the node's running servers stop" in plan_text(plan2)


def test_a_secret_change_is_shown_masked(tmp_path: Path) -> None:
    before, old_pillars = release_of()
    model = copy_example(tmp_path)
    edit(
        model / "classes/cluster/openstack/secrets.yml",
        "keystone_db_password: example-keystone-db",
        "keystone_db_password: another-keystone-db",
    )
    after, pillars = release_of(model)
    plan = make_plan(after, Current.of_release(before, old_pillars), formulas(), pillars)
    text = plan_text(plan) + json.dumps(plan.as_dict())
    assert "example-keystone-db" not in text and "another-keystone-db" not in text
    keystone = [c for c in plan.changes if c.service == "keystone"]
    assert keystone
    for c in keystone:
        assert any(f.secret_changed for f in c.files)
        assert any(cause.secret and "password" in cause.key for cause in c.causes)
    assert "changed (secret)" in text
    # The database's user task uses the password: it runs again, and says why.
    assert any(t.service == "mariadb" and "values it uses changed" in t.why for t in plan.tasks)


def test_masked_diff_hides_values_but_keeps_the_line() -> None:
    diff, secret = masked_diff(
        "/etc/x.conf",
        "user = a\npassword = old-pass\n",
        "user = a\npassword = new-pass\n",
        {"old-pass", "new-pass"},
    )
    assert secret
    assert "-password = ********" in diff and "+password = ********" in diff
    assert not any("pass\n" in line or "old-pass" in line for line in diff)
    diff, secret = masked_diff("/etc/x.conf", "a = 1\n", "a = 2\n", {"old-pass"})
    assert not secret and "+a = 2" in diff
    # A line holding a secret that changed elsewhere (the URL's path): no secret changed,
    # the secret masked on both sides.
    diff, secret = masked_diff(
        "/etc/x.conf",
        "url = rabbit://u:the-pass@h:5672/openstack\n",
        "url = rabbit://u:the-pass@h:5672/%2Fopenstack\n",
        {"the-pass"},
    )
    assert not secret
    assert "+url = rabbit://u:********@h:5672/%2Fopenstack" in diff


def test_impact_per_section_and_key_takes_the_most_specific_entry() -> None:
    impact = FileImpact(
        change="restart",
        keys={"DEFAULT/debug": "none", "token": "reload", "token/provider": "restart"},
    )
    old = "[DEFAULT]\ndebug = false\n[token]\nexpiration = 1\nprovider = fernet\n"
    assert file_impact(impact, old, old.replace("debug = false", "debug = true"))[0] == "none"
    assert file_impact(impact, old, old.replace("expiration = 1", "expiration = 2"))[0] == "reload"
    need, why = file_impact(impact, old, old.replace("fernet", "jws"))
    assert need == "restart" and "[token] provider" in why
    both = old.replace("debug = false", "debug = true").replace("expiration = 1", "expiration = 2")
    assert file_impact(impact, old, both)[0] == "reload"
    # A key the table does not name: the file's default. Unknown previous content: the worst.
    assert file_impact(impact, old, old + "[cache]\nenabled = true\n")[0] == "restart"
    assert file_impact(impact, None, old)[0] == "restart"
    assert file_impact(FileImpact(change="reload"), old, old + "x")[0] == "reload"
    # Not INI: the file's default.
    assert file_impact(impact, "[broken", "[broken\nx")[0] == "restart"


def _with_image(release: Release, service: str, tag: str) -> Release:
    from dataclasses import replace

    return replace(
        release,
        instances=tuple(
            replace(i, image_tag=tag) if i.service == service else i for i in release.instances
        ),
    )


def test_a_new_image_replaces_its_instances_and_names_both_images() -> None:
    before, pillars = release_of()
    after = _with_image(before, "memcached", "f" * 20)
    plan = make_plan(after, Current.of_release(before, pillars), formulas(), pillars)
    assert {(c.service, c.action) for c in plan.changes} == {("memcached", "replace")}
    (change,) = plan.changes
    old = before.instance(change.key)
    assert old is not None
    assert change.image == (f"saline/memcached:{old.image_tag}", f"saline/memcached:{'f' * 20}")


def test_an_instance_gone_from_the_model_is_removed_last() -> None:
    release, pillars = release_of()
    current = Current.of_release(release, pillars)
    extra = Current(
        {**current.digests, "memcached@old01": "0" * 16}, current.tasks, release, {}, pillars
    )
    plan = make_plan(release, extra, formulas(), pillars)
    assert [(c.key, c.action) for c in plan.changes] == [("memcached@old01", "remove")]
    assert plan.steps[-1].action == "remove"


def test_what_runs_but_is_not_recorded_is_replaced_with_a_reason() -> None:
    release, pillars = release_of()
    first = release.instances[0]
    current = Current({first.key: "not-the-recorded-one"}, {}, release, {}, pillars)
    plan = make_plan(release, current, formulas(), pillars)
    change = next(c for c in plan.changes if c.key == first.key)
    assert change.action == "replace" and "not recorded" in change.reasons[0]


def test_the_fingerprint_moves_with_what_runs() -> None:
    release, pillars = release_of()
    a = Current.of_release(release, pillars)
    b = Current({**a.digests, release.instances[0].key: "x"}, a.tasks, release)
    assert a.fingerprint() != b.fingerprint()


def test_a_new_package_version_replaces_the_images_that_carry_it_and_names_it() -> None:
    before, pillars = release_of()

    def patched(recipe: Recipe) -> PackageSet:
        """A security update of keystone's own package, nothing else."""
        found = fixed_packages(recipe)
        if recipe.image != "keystone":
            return found
        return PackageSet(
            [
                Package(p.name, "1.1" if p.name == "keystone" else p.version, p.arch)
                for p in found.values()
            ]
        )

    after, _ = release_of(resolve=patched)
    plan = make_plan(after, Current.of_release(before, pillars), formulas(), pillars)
    assert {c.service for c in plan.changes} == {"keystone"}
    for change in plan.changes:
        assert change.action == "replace"
        assert [(p.name, p.before, p.after) for p in change.packages] == [
            ("keystone", "1.0", "1.1")
        ]
        assert change.reasons[0].endswith(": 1 package(s) (keystone 1.0 -> 1.1)")
        assert change.as_dict()["packages"] == [
            {"name": "keystone", "before": "1.0", "after": "1.1"}
        ]
    text = plan_text(plan)
    assert "    packages:\n      keystone 1.0 -> 1.1\n" in text
    # A release recorded before images had exact packages: the image change, no list.
    older = Release(before.instances, before.tasks, before.waves, before.source, before.node_image)
    plan = make_plan(after, Current.of_release(older, pillars), formulas(), pillars)
    assert all(c.packages == () for c in plan.changes)
    assert all(c.reasons[0].startswith("image ") for c in plan.changes)


def test_the_markdown_review_has_a_row_per_instance_and_the_order(tmp_path: Path) -> None:
    before, pillars = release_of()
    model = copy_example(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    after, new_pillars = release_of(model)
    plan = make_plan(after, Current.of_release(before, pillars), formulas(), new_pillars)
    text = plan_markdown(plan, "saline plan: HEAD against HEAD~1")
    lines = text.splitlines()
    assert lines[0] == "### saline plan: HEAD against HEAD~1"
    assert lines[2] == plan.summary()
    rows = [line for line in lines if line.startswith("| `keystone@")]
    assert len(rows) == len([c for c in plan.changes if c.service == "keystone"]) == 2
    assert all("`keystone:server:tokens:expiration`" in r for r in rows)
    assert lines[-1].startswith("Order: ") and "keystone@" in lines[-1]
    assert "example-" not in text  # no secret, no config content


# -- release upgrades ---------------------------------------------------------------------


def upgraded_example(tmp_path: Path) -> Path:
    """The example with OpenStack 2025.1: the one value the operator changes."""
    model = copy_example(tmp_path)
    edit(
        model / "classes/cluster/openstack/init.yml",
        "openstack_version: zed",
        'openstack_version: "2025.1"',
    )
    return model


def test_a_release_change_plans_backup_and_expand_before_and_contract_after_the_instances(
    tmp_path: Path,
) -> None:
    before, old_pillars = release_of()
    after, pillars = release_of(upgraded_example(tmp_path))
    plan = make_plan(after, Current.of_release(before, old_pillars), formulas(), pillars)
    assert [(u.service, u.before, u.after, u.database) for u in plan.upgrades] == [
        ("keystone", "zed", "2025.1", "keystone"),
        ("glance-api", "zed", "2025.1", "glance"),
    ]
    # Only keystone and glance-api change (their images: trixie); no full schema sync.
    assert {c.service for c in plan.changes} == {"keystone", "glance-api"}
    assert {c.action for c in plan.changes} == {"replace"}
    assert not [t for t in plan.tasks if t.task == "db-sync"]
    for service in ("keystone", "glance-api"):
        mine = [s for s in plan.steps if s.key.partition("@")[0].partition("/")[0] == service]
        kinds = [(s.kind, s.action) for s in mine]
        first = kinds.index(("instance", "replace"))
        last = len(kinds) - 1 - kinds[::-1].index(("instance", "replace"))
        assert kinds[:2] == [("upgrade", "backup"), ("upgrade", "expand")]
        assert kinds[last + 1 :] == [("upgrade", "migrate"), ("upgrade", "contract")]
        assert first >= 2
    text = plan_text(plan)
    assert "Release upgrade of keystone: zed -> 2025.1" in text
    assert "keystone/db-sync does not run" in text
    assert "keystone zed -> 2025.1 (database phases: backup, expand, migrate, contract)" in (
        plan.summary()
    )
    data = json.loads(json.dumps(plan.as_dict()))
    assert data["upgrades"][0]["phases"] == ["backup", "expand", "migrate", "contract"]
    assert data["steps"][0]["upgrade"]["to"] == "2025.1"
    assert "**Release upgrade of keystone: zed -> 2025.1**" in plan_markdown(plan)


def test_going_back_is_a_rollback_until_the_contract_then_refused_naming_the_backup(
    tmp_path: Path,
) -> None:
    zed, zed_pillars = release_of()
    new, new_pillars = release_of(upgraded_example(tmp_path))
    running = Current.of_release(new, new_pillars)

    def record(phase: str) -> dict[str, UpgradeRecord]:
        return {
            s: UpgradeRecord(s, "zed", "2025.1", new.id, phase, f"/state/backups/{new.id}-{s}.sql")
            for s in ("keystone", "glance-api")
        }

    def locate(node: str, key: str) -> tuple[str | None, str | None]:
        return ("classes/cluster/openstack/init.yml:9", None)

    # Expanded, not contracted (an upgrade stopped midway): zed's code uses the schema.
    expanded = replace(running, upgrades=record("expanded"))
    plan = make_plan(zed, expanded, formulas(), zed_pillars, locate)
    assert not plan.upgrades and {c.service for c in plan.changes} == {"keystone", "glance-api"}
    # Contracted: refused, naming the file, line, key and backup.
    contracted = replace(running, upgrades=record("contracted"))
    with pytest.raises(UpgradeRefused) as refused:
        make_plan(zed, contracted, formulas(), zed_pillars, locate)
    message = str(refused.value)
    assert message.startswith("classes/cluster/openstack/init.yml:9, node ")
    assert "key parameters:keystone:server:version" in message
    assert "2025.1 -> zed is a downgrade" in message
    assert f"/state/backups/{new.id}-keystone.sql" in message
    # No record at all (a stack started at 2025.1): refused too.
    with pytest.raises(UpgradeRefused, match=r"its database was made by 2025\.1"):
        make_plan(zed, running, formulas(), zed_pillars)


def test_a_release_the_formula_does_not_install_is_one_message_naming_the_key(
    tmp_path: Path,
) -> None:
    model = copy_example(tmp_path)
    images = model / "classes/system/saline/images.yml"
    edit(images, '      "2025.1": trixie\n', '      "2025.1": trixie\n      victoria: trixie\n')
    init = model / "classes/cluster/openstack/init.yml"
    edit(init, "openstack_version: zed", "openstack_version: victoria")
    with pytest.raises(ModelError) as unknown:
        release_of(model)
    message = str(unknown.value)
    assert "key parameters:keystone:server:version" in message
    assert "'victoria' is not an OpenStack release the formula keystone supports" in message
    assert "(it installs: zed, 2025.1)" in message


def test_an_image_from_another_debian_release_than_the_openstack_one_is_refused(
    tmp_path: Path,
) -> None:
    model = upgraded_example(tmp_path)
    images = model / "classes/system/saline/images.yml"
    text = images.read_text()
    keystone = text.index("        keystone:")
    images.write_text(
        text[:keystone]
        + text[keystone:].replace("${_param:openstack_debian_release}", "bookworm", 3)
    )
    with pytest.raises(ModelError) as wrong:
        release_of(model)
    message = str(wrong.value)
    assert "classes/system/saline/images.yml:" in message
    assert "key parameters:saline:images:services:keystone:suites" in message
    assert "keystone 2025.1 comes from Debian trixie, but its image is built from bookworm" in (
        message
    )


def test_kubernetes_refuses_a_release_upgrade_it_cannot_phase(tmp_path: Path) -> None:
    before, old_pillars = release_of()
    after, pillars = release_of(upgraded_example(tmp_path))
    plan = make_plan(after, Current.of_release(before, old_pillars), formulas(), pillars)
    with pytest.raises(KubeError) as refused:
        refuse_release_upgrades(plan)
    assert "keystone zed -> 2025.1 (keystone:server:version)" in str(refused.value)
    assert "local stack only" in str(refused.value)
    refuse_release_upgrades(make_plan(before, Current.of_release(before), formulas(), {}))
