"""Release records, plan files and stale-plan refusal, rollback targets: bad input gets
one clear message and changes nothing."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from release_tools import copy_example, edit, release_of
from saline.formulas import FormulaSet
from saline.lifecycle.deploy import StalePlanError, check_plan_file, rollback_target
from saline.lifecycle.plan import Current, make_plan
from saline.lifecycle.records import RecordError, Records, read_plan, write_plan
from saline.lifecycle.upgrade import UpgradeRecord
from saline.release import release_text
from tools import FORMULAS


def test_a_saved_release_loads_back_with_its_files_and_pillars(tmp_path: Path) -> None:
    release, pillars = release_of()
    records = Records(str(tmp_path))
    records.save(release, pillars)
    records.applied(release, "applied")
    loaded, loaded_pillars = records.load(release.id)
    assert loaded.id == release.id and loaded.contents() == release.contents()
    assert loaded_pillars == json.loads(json.dumps(pillars))
    assert records.current_id() == release.id
    # Config contents and pillars hold secrets: owner only.
    for folder in (records.configs, records.pillars):
        for name in os.listdir(folder):
            assert stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o600
    (entry,) = records.history()
    assert entry["id"] == release.id and entry["outcome"] == "applied"


def test_corrupt_or_unknown_records_are_named(tmp_path: Path) -> None:
    release, pillars = release_of()
    records = Records(str(tmp_path))
    records.save(release, pillars)
    with pytest.raises(RecordError, match="no release 0123456789ab"):
        records.load("0123456789ab")
    path = Path(records.releases) / f"{release.id}.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(RecordError, match=f"{release.id}.json: .*corrupt"):
        records.load(release.id)
    data = json.loads(release_text(release))
    data["instances"][next(iter(data["instances"]))]["image"] = "saline/x:other"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="not a valid release record"):
        records.load(release.id)
    log = Path(records.releases) / "log.jsonl"
    log.write_text('{"id": "a"}\nnot json\n')
    with pytest.raises(RecordError, match=r"log.jsonl:2"):
        records.history()


def test_plan_files_stale_truncated_or_foreign_are_refused(tmp_path: Path) -> None:
    from saline.lifecycle.deploy import Prepared
    from saline.lifecycle.desired import Desired
    from saline.model import load_model
    from tools import EXAMPLE

    release, pillars = release_of()
    current = Current.of_release(release, pillars)
    plan = make_plan(release, current, FormulaSet([str(FORMULAS)]), pillars)
    path = tmp_path / "plan.json"
    write_plan(str(path), plan)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = read_plan(str(path))
    model = load_model(str(EXAMPLE))
    prepared = Prepared(Desired(release, pillars, model), None, None, current, plan)  # type: ignore[arg-type]
    check_plan_file(data, prepared, str(path))  # fresh: accepted

    moved_model, _ = release_of(_changed(tmp_path))
    stale = Prepared(Desired(moved_model, pillars, model), None, None, current, plan)  # type: ignore[arg-type]
    with pytest.raises(StalePlanError, match="the model changed since the plan was made"):
        check_plan_file(data, stale, str(path))
    moved_runtime = Current({**current.digests, release.instances[0].key: "x"}, current.tasks)
    stale = Prepared(Desired(release, pillars, model), None, None, moved_runtime, plan)  # type: ignore[arg-type]
    with pytest.raises(StalePlanError, match="what runs changed"):
        check_plan_file(data, stale, str(path))

    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    with pytest.raises(RecordError, match=r"plan\.json: the plan file is unreadable or corrupt"):
        read_plan(str(path))
    path.write_text(json.dumps({"kind": "saline-plan", "format_version": 1}))
    with pytest.raises(RecordError, match="truncated or corrupt"):
        read_plan(str(path))
    path.write_text(json.dumps({"apiVersion": "v1"}))
    with pytest.raises(RecordError, match="not a saline plan file"):
        read_plan(str(path))
    with pytest.raises(RecordError, match="no such plan file"):
        read_plan(str(tmp_path / "missing.json"))


def _changed(tmp_path: Path) -> Path:
    model = copy_example(tmp_path)
    edit(model / "classes/system/keystone/server.yml", "expiration: 3600", "expiration: 7200")
    return model


def test_rollback_goes_to_the_release_before_the_current_one(tmp_path: Path) -> None:
    first, pillars = release_of()
    second, _ = release_of(_changed(tmp_path))
    records = Records(str(tmp_path / "stack"))
    with pytest.raises(RecordError, match="no earlier release"):
        rollback_target(records, None)
    for r in (first, second):
        records.save(r, pillars)
        records.applied(r, "applied")
    records.applied(second, "failed")
    assert rollback_target(records, None) == first.id
    assert rollback_target(records, second.id) == second.id
    with pytest.raises(RecordError, match="no release ffffffffffff was recorded"):
        rollback_target(records, "ffffffffffff")


def test_upgrade_records_keep_the_last_phase_per_service_and_name_a_corrupt_line(
    tmp_path: Path,
) -> None:
    records = Records(str(tmp_path / "stack"))
    assert records.upgrades() == {}
    expanded = UpgradeRecord("keystone", "zed", "2025.1", "r1", "expanded", "/b/r1-keystone.sql")
    records.record_upgrade(expanded)
    records.record_upgrade(replace(expanded, phase="contracted"))
    records.record_upgrade(replace(expanded, service="glance-api"))
    found = records.upgrades()
    assert found["keystone"].phase == "contracted" and found["glance-api"].phase == "expanded"
    with open(records.upgrades_file, "a") as fh:
        fh.write('{"service": "keyst')  # a kill mid-write: ignored
    assert records.upgrades() == found
    with open(records.upgrades_file, "a") as fh:
        fh.write("\n")
    with pytest.raises(RecordError, match=r"upgrades\.jsonl:4: corrupt record"):
        records.upgrades()
