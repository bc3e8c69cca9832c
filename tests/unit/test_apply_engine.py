"""The apply engine with a fake runner: order of phases, rollback on a failed gate,
the journal, and resuming after a kill at every phase. The same engine drives podman in
tests/integration/test_day2.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from release_tools import release_of
from saline.lifecycle.apply import ApplyFailed, Engine, StepFailed
from saline.lifecycle.journal import Journal, JournalError
from saline.lifecycle.upgrade import UpgradeRecord
from saline.release import Instance, Release, Task


class Killed(BaseException):
    """What SIGKILL looks like to the engine: it stops, whatever the phase."""


class FakeRunner:
    def __init__(
        self,
        fail_gate: set[str] | None = None,
        kill_at: str | None = None,
        fail_at: str | None = None,
    ) -> None:
        self.calls: list[str] = []
        self.fail_gate = fail_gate or set()
        self.kill_at = kill_at
        self.fail_at = fail_at
        self.upgrade_records = []

    def _do(self, what: str) -> None:
        self.calls.append(what)
        if what == self.fail_at:
            raise StepFailed(f"{what}: timed out after 120 s")
        if what == self.kill_at:
            self.kill_at = None
            raise Killed(what)

    def run_task(self, task: Task) -> None:
        self._do(f"task {task.key}")

    def start(self, new: Instance) -> None:
        self._do(f"start {new.key}")

    def drain(self, key: str) -> None:
        self._do(f"drain {key}")

    def swap(self, key: str, new: Instance) -> None:
        self._do(f"swap {key}")

    def restart(self, new: Instance) -> None:
        self._do(f"restart {new.key}")

    def reload(self, new: Instance) -> None:
        self._do(f"reload {new.key}")

    def write_files(self, new: Instance) -> None:
        self._do(f"files {new.key}")

    def gate(self, inst: Instance) -> str | None:
        self._do(f"gate {inst.key}")
        return "api check failed: HTTP 500\n  log line" if inst.key in self.fail_gate else None

    def restore(self, key: str, old: Instance | None) -> None:
        self._do(f"restore {key}")

    def ready(self, key: str) -> None:
        self._do(f"ready {key}")

    def commit(self, key: str) -> None:
        self._do(f"commit {key}")

    def remove(self, key: str) -> None:
        self._do(f"remove {key}")

    # Release upgrades: the backup is a file (the engine checks it is still there).
    backups: Path | None = None
    upgrade_records: list[tuple[str, str | None]]

    def backup_path(self, service: str, release: str) -> str:
        assert self.backups is not None
        return str(self.backups / f"{release}-{service}.sql")

    def backup(self, service: str, release: str) -> str:
        self._do(f"backup {service}")
        path = self.backup_path(service, release)
        Path(path).write_text("-- dump\n")
        return path

    def upgrade_phase(self, service: str, phase: str) -> None:
        self._do(f"{phase} {service}")

    def upgraded(self, record: UpgradeRecord, replaced_task: str | None) -> None:
        self.calls.append(f"record {record.service} {record.phase}")
        self.upgrade_records.append((record.phase, replaced_task))


def release() -> Release:
    return release_of()[0]


def keystones(r: Release) -> list[str]:
    return sorted(i.key for i in r.instances if i.service == "keystone")


def steps(r: Release, action: str = "replace") -> list[dict[str, str]]:
    keys = keystones(r)
    db_sync = next(t.key for t in r.tasks if t.service == "keystone" and t.task == "db-sync")
    return [
        {"kind": "task", "key": db_sync, "action": "run"},
        *({"kind": "instance", "key": k, "action": action} for k in keys),
    ]


def engine(
    tmp_path: Path, runner: FakeRunner, journal: Journal | None = None, action: str = "replace"
) -> Engine:
    r = release()
    journal = journal or Journal.start(str(tmp_path / "journal.jsonl"), r.id, steps(r, action))
    previous = {i.key: replace(i, image_tag="old") for i in r.instances}
    return Engine(r, previous, runner, journal, lambda _: None, lambda: 0.0)


def test_a_replace_drains_swaps_gates_readies_and_commits_one_instance_at_a_time(
    tmp_path: Path,
) -> None:
    runner = FakeRunner()
    outcomes = engine(tmp_path, runner).run()
    a, b = keystones(release())
    assert runner.calls[1:] == [
        f"drain {a}", f"swap {a}", f"gate {a}", f"ready {a}", f"commit {a}",
        f"drain {b}", f"swap {b}", f"gate {b}", f"ready {b}", f"commit {b}",
    ]  # fmt: skip
    assert runner.calls[0].startswith("task keystone/db-sync")
    assert [o.outcome for o in outcomes] == ["done"] * 3


def test_a_restart_restarts_in_place_between_drain_and_gate(tmp_path: Path) -> None:
    runner = FakeRunner()
    engine(tmp_path, runner, action="restart").run()
    a, b = keystones(release())
    assert runner.calls[1:] == [
        f"drain {a}", f"restart {a}", f"gate {a}", f"ready {a}", f"commit {a}",
        f"drain {b}", f"restart {b}", f"gate {b}", f"ready {b}", f"commit {b}",
    ]  # fmt: skip


def test_a_restart_that_fails_is_undone_like_a_failed_gate(tmp_path: Path) -> None:
    a, b = keystones(release())
    runner = FakeRunner(fail_at=f"restart {a}")
    with pytest.raises(ApplyFailed, match=f"{a}: its restart failed, restored"):
        engine(tmp_path, runner, action="restart").run()
    assert runner.calls[-3:] == [f"restart {a}", f"restore {a}", f"ready {a}"]
    assert not any(b in c for c in runner.calls)


def test_a_failed_gate_restores_that_instance_and_stops_the_rollout(tmp_path: Path) -> None:
    a, b = keystones(release())
    runner = FakeRunner(fail_gate={a})
    with pytest.raises(ApplyFailed, match=f"{a}: the new instance failed its gate") as e:
        engine(tmp_path, runner).run()
    assert "HTTP 500" in str(e.value)
    assert runner.calls[-3:] == [f"gate {a}", f"restore {a}", f"ready {a}"]
    assert not any(b in c for c in runner.calls)  # the next instance was never touched
    journal = Journal.load(str(tmp_path / "journal.jsonl"))
    assert journal is not None and journal.phase(1) == "restored"


def test_a_swap_that_fails_half_way_is_undone_like_a_failed_gate(tmp_path: Path) -> None:
    a, b = keystones(release())
    runner = FakeRunner(fail_at=f"swap {a}")
    with pytest.raises(ApplyFailed, match=f"{a}: its replace failed, restored") as e:
        engine(tmp_path, runner).run()
    assert "timed out after 120 s" in str(e.value)
    assert runner.calls[-3:] == [f"swap {a}", f"restore {a}", f"ready {a}"]
    assert not any(b in c for c in runner.calls)
    journal = Journal.load(str(tmp_path / "journal.jsonl"))
    assert journal is not None and journal.phase(1) == "restored"


KILL_POINTS = ["drain", "swap", "gate", "ready", "commit"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_at_any_phase_then_resumed_finishes_without_repeating_done_steps(
    tmp_path: Path, point: str
) -> None:
    a, b = keystones(release())
    first = FakeRunner(kill_at=f"{point} {b}")
    with pytest.raises(Killed):
        engine(tmp_path, first).run()
    journal = Journal.load(str(tmp_path / "journal.jsonl"))
    assert journal is not None
    second = FakeRunner()
    outcomes = engine(tmp_path, second, journal).run()
    assert [o.outcome for o in outcomes] == ["skipped", "skipped", "done"]
    # Nothing of the finished steps runs again; the interrupted one is completed.
    assert not any(a in c or c.startswith("task") for c in second.calls)
    assert second.calls[-2:] == [f"ready {b}", f"commit {b}"]
    if point in ("drain",):
        assert second.calls[0] == f"drain {b}"  # not swapped yet: from the start
    if point in ("gate", "ready", "commit"):
        assert f"swap {b}" not in second.calls  # swapped already: gate the new one again
        if point == "gate":
            assert second.calls[0] == f"gate {b}"


def test_a_journal_cut_short_ignores_the_partial_line_and_a_corrupt_one_is_named(
    tmp_path: Path,
) -> None:
    r = release()
    path = tmp_path / "journal.jsonl"
    journal = Journal.start(str(path), r.id, steps(r))
    journal.record(0, "begin")
    journal.record(0, "done")
    with open(path, "a") as fh:
        fh.write('{"step": 1, "pha')  # killed while writing
    loaded = Journal.load(str(path))
    assert loaded is not None and loaded.phase(0) == "done" and loaded.phase(1) is None
    with open(path, "a") as fh:
        fh.write('se": "begin"}\n{"step": 99, "phase": "done"}\n')
    with pytest.raises(JournalError, match=r"journal.jsonl:\d+"):
        Journal.load(str(path))
    path.write_text("")
    with pytest.raises(JournalError, match="empty or truncated"):
        Journal.load(str(path))
    assert Journal.load(str(tmp_path / "none.jsonl")) is None


def test_a_second_apply_cannot_start_over_an_unfinished_one(tmp_path: Path) -> None:
    r = release()
    Journal.start(str(tmp_path / "journal.jsonl"), r.id, steps(r))
    with pytest.raises(JournalError, match="already under way"):
        Journal.start(str(tmp_path / "journal.jsonl"), r.id, steps(r))


def test_closing_moves_the_journal_aside(tmp_path: Path) -> None:
    r = release()
    journal = Journal.start(str(tmp_path / "journal.jsonl"), r.id, steps(r))
    target = journal.close("applied")
    assert not (tmp_path / "journal.jsonl").exists()
    assert Path(target).read_text().startswith("{")


# -- release upgrades -------------------------------------------------------------------


def upgrade_steps(r: Release) -> list[dict[str, object]]:
    upgrade = {
        "service": "keystone",
        "from": "zed",
        "to": "2025.1",
        "replaces": "keystone/db-sync",
        "phases": ["backup", "expand", "migrate", "contract"],
    }

    def phase(name: str) -> dict[str, object]:
        return {"kind": "upgrade", "key": "keystone", "action": name, "upgrade": upgrade}

    return [
        phase("backup"),
        phase("expand"),
        *(dict[str, object](kind="instance", key=k, action="replace") for k in keystones(r)),
        phase("migrate"),
        phase("contract"),
    ]


def upgrade_engine(tmp_path: Path, runner: FakeRunner) -> Engine:
    r = release()
    runner.backups = tmp_path
    journal = Journal.start(str(tmp_path / "journal.jsonl"), r.id, upgrade_steps(r))
    previous = {i.key: replace(i, image_tag="old") for i in r.instances}
    return Engine(r, previous, runner, journal, lambda _: None, lambda: 0.0)


def test_an_upgrade_backs_up_expands_replaces_one_by_one_then_contracts(tmp_path: Path) -> None:
    runner = FakeRunner()
    upgrade_engine(tmp_path, runner).run()
    a, b = keystones(release())
    assert runner.calls == [
        "backup keystone", "expand keystone", "record keystone expanded",
        f"drain {a}", f"swap {a}", f"gate {a}", f"ready {a}", f"commit {a}",
        f"drain {b}", f"swap {b}", f"gate {b}", f"ready {b}", f"commit {b}",
        "migrate keystone", "contract keystone", "record keystone contracted",
    ]  # fmt: skip
    # The contract stands for the full sync: that task is recorded done with it.
    assert runner.upgrade_records == [("expanded", None), ("contracted", "keystone/db-sync")]


def test_a_failed_gate_before_the_contract_rolls_every_upgraded_instance_back(
    tmp_path: Path,
) -> None:
    a, b = keystones(release())
    runner = FakeRunner(fail_gate={b})
    with pytest.raises(ApplyFailed) as failed:
        upgrade_engine(tmp_path, runner).run()
    # b is restored by the gate's own rollback; a, already done, goes back to zed too.
    assert runner.calls[runner.calls.index(f"restore {b}") :] == [
        f"restore {b}", f"ready {b}",
        f"drain {a}", f"swap {a}", f"gate {a}", f"ready {a}", f"commit {a}",
    ]  # fmt: skip
    message = str(failed.value)
    assert "rolled back: its instances run zed again" in message
    assert str(tmp_path / f"{release().id}-keystone.sql") in message
    assert "contract keystone" not in runner.calls


def test_a_failed_contract_is_not_rolled_back_and_names_the_backup(tmp_path: Path) -> None:
    runner = FakeRunner(fail_at="contract keystone")
    with pytest.raises(ApplyFailed) as failed:
        upgrade_engine(tmp_path, runner).run()
    assert not [c for c in runner.calls if c.startswith("restore") or "rolling" in c]
    message = str(failed.value)
    assert "every instance runs 2025.1" in message and "-keystone.sql" in message
    assert runner.upgrade_records == [("expanded", None)]


def test_a_backup_gone_before_the_expand_stops_the_upgrade(tmp_path: Path) -> None:
    runner = FakeRunner(kill_at="expand keystone")
    eng = upgrade_engine(tmp_path, runner)
    with pytest.raises(Killed):
        eng.run()
    (tmp_path / f"{release().id}-keystone.sql").unlink()
    journal = Journal.load(str(tmp_path / "journal.jsonl"))
    assert journal is not None
    r = release()
    resumed = Engine(r, {}, runner, journal, lambda _: None, lambda: 0.0)
    with pytest.raises(ApplyFailed, match="is gone: put it back"):
        resumed.run()
    assert runner.calls.count("expand keystone") == 1  # not run again without a backup
