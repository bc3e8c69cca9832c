"""The apply engine: runs a plan's steps through a runner, one at a time, with a journal.

The engine decides; a :class:`Runner` acts (podman for the local stack; Kubernetes
later). For each step of the plan, in order:

* a **task**: run it (the runner waits for it to exit 0);
* **create**: start the instance, gate it, make it ready;
* **replace**: drain it (load balancers stop sending it new requests and its sessions
  finish, bounded), swap it (the old container is stopped and kept, the new one
  started), **gate** it (its health check and a real API call through it), make it
  ready (enabled again, and seen UP by every load balancer), then drop the old container;
* **restart** (only files changed, and they need a restart): drain, restart the same
  container on its new files, gate, ready; a new container would cost its creation and
  keep nothing the old one lacks (the image and definition are the same);
* **reload**: drain, reload in place, gate, ready;
* **none**: write its new files, nothing else;
* **remove**: drain, remove.

A failed gate restores the previous container (or configuration), makes it ready again,
stops the rollout and raises :class:`ApplyFailed` naming the instance, the failed check
and its last log lines: the cloud keeps serving with what it had.

Every phase is journaled before the next begins (:mod:`.journal`). Resuming a killed
apply skips finished steps and takes an unfinished one from its last phase: before the
swap it starts again (draining is idempotent); after the swap the new container is gated
again and made ready, or restored when the gate fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from ..errors import SalineError
from ..release import Instance, Release, Task
from .journal import Journal
from .upgrade import UpgradeRecord


class ApplyFailed(SalineError):
    """A step failed; the instance was restored and the rollout stopped."""


class StepFailed(SalineError):
    """A runner could not do a step (a task failed, a container did not start)."""


class Runner(Protocol):
    """What the engine needs from a runtime. Every method is bounded in time and raises
    :class:`StepFailed` (or another SalineError) when it cannot do its part."""

    def run_task(self, task: Task) -> None: ...

    def start(self, new: Instance) -> None:
        """Create and start an instance that did not run (waits until healthy)."""

    def drain(self, key: str) -> None:
        """Stop new requests to the instance and let its sessions end (no-op when no
        load balancer sends it any)."""

    def swap(self, key: str, new: Instance) -> None:
        """Stop the running container of ``key`` (keep it), start ``new`` in its place.
        Idempotent: when ``new`` already runs, nothing happens."""

    def restart(self, new: Instance) -> None:
        """Give the instance its new files and restart its container (same image and
        definition); waits until healthy. Idempotent."""

    def reload(self, new: Instance) -> None:
        """Give the running instance its new files and reload it."""

    def write_files(self, new: Instance) -> None:
        """Give the running instance its new files; nothing else."""

    def gate(self, inst: Instance) -> str | None:
        """None when the instance is healthy and its API check passes, else what failed
        (with its last log lines)."""

    def restore(self, key: str, old: Instance | None) -> None:
        """Back to the container (or configuration) the instance had before."""

    def ready(self, key: str) -> None:
        """Enable the instance again on every load balancer and wait until they see it
        UP (no-op when none sends it requests)."""

    def commit(self, key: str) -> None:
        """The new instance is in: drop the kept container."""

    def remove(self, key: str) -> None: ...

    def backup_path(self, service: str, release: str) -> str:
        """Where the release upgrade of ``service`` to ``release`` keeps its backup."""

    def backup(self, service: str, release: str) -> str:
        """Dump the service's database (:mod:`.upgrade`); returns the file."""

    def upgrade_phase(self, service: str, phase: str) -> None:
        """Run a database phase (expand, migrate, contract) with the new release's image."""

    def upgraded(self, record: UpgradeRecord, replaced_task: str | None) -> None:
        """Keep an upgrade's phase in the records; with ``replaced_task``, that task is
        done too (the contract left the schema where the task would)."""


@dataclass(frozen=True)
class StepOutcome:
    key: str
    action: str
    outcome: str  # done | skipped (already done) | restored
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "action": self.action,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 2),
        }


Progress = Callable[[str], None]
Clock = Callable[[], float]


class Engine:
    """Runs ``steps`` (plan step dicts: kind, key, action) of ``desired`` with ``runner``.

    ``previous``: the instances as they run now (for restoring), by key."""

    def __init__(
        self,
        desired: Release,
        previous: dict[str, Instance],
        runner: Runner,
        journal: Journal,
        progress: Progress,
        clock: Clock,
    ) -> None:
        self.desired = desired
        self.previous = previous
        self.runner = runner
        self.journal = journal
        self.progress = progress
        self.clock = clock

    def run(self) -> list[StepOutcome]:
        out = []
        for index, step in enumerate(self.journal.steps):
            start = self.clock()
            phase = self.journal.phase(index)
            key, action = str(step["key"]), str(step["action"])
            if phase == "done":
                out.append(StepOutcome(key, action, "skipped", 0.0))
                continue
            if phase in ("restored", "failed"):
                raise ApplyFailed(f"{key}: this apply already stopped at this step")
            if phase is not None:
                self.progress(f"{key}: resuming {action} after '{phase}'")
            if step["kind"] == "task":
                self._task(index, key, phase)
            elif step["kind"] == "upgrade":
                self._upgrade(index, step, phase)
            else:
                try:
                    self._instance(index, key, action, phase)
                except ApplyFailed as e:
                    self._roll_back_upgrade(key.partition("@")[0], str(e))
            seconds = self.clock() - start
            self.progress(f"{key}: {action} done ({seconds:.1f} s)")
            out.append(StepOutcome(key, action, "done", seconds))
        return out

    def _task(self, index: int, key: str, phase: str | None) -> None:
        task = self.desired.task(key)
        if task is None:
            raise ApplyFailed(f"{key}: the release has no such task")
        if phase is None:
            self.journal.record(index, "begin")
        self.progress(f"{key}: running bootstrap task")
        try:
            self.runner.run_task(task)
        except SalineError as e:
            self.journal.record(index, "failed", why=str(e).splitlines()[0])
            raise
        self.journal.record(index, "done")

    def _instance(self, index: int, key: str, action: str, phase: str | None) -> None:
        new = self.desired.instance(key)
        if action == "remove":
            if phase is None:
                self.journal.record(index, "begin")
            self.runner.drain(key)
            self.runner.remove(key)
            self.journal.record(index, "done")
            return
        if new is None:
            raise ApplyFailed(f"{key}: the release has no such instance")
        if action == "none":
            self.runner.write_files(new)
            self.journal.record(index, "done")
            return
        if action == "create":
            if phase is None:
                self.journal.record(index, "begin")
            self.progress(f"{key}: starting")
            try:
                self.runner.start(new)
            except SalineError as e:
                self._restore_and_stop(index, key, True, "it did not start", str(e))
            self._gate_or_restore(index, key, new, created=True)
            return
        if phase in (None, "begin"):
            if phase is None:
                self.journal.record(index, "begin")
            self.progress(f"{key}: draining")
            self.runner.drain(key)
            self.journal.record(index, "drained")
            phase = "drained"
        if phase == "drained":
            # A reload or swap that fails half-way (a reload command that times out, a
            # new container that never gets healthy) is undone like a failed gate: the
            # instance is only serving again once it runs what it had before.
            try:
                if action == "reload":
                    self.progress(f"{key}: reloading")
                    self.runner.reload(new)
                elif action == "restart":
                    self.progress(f"{key}: restarting on its new files")
                    self.runner.restart(new)
                else:
                    self.progress(f"{key}: {action} (new container)")
                    self.runner.swap(key, new)
            except SalineError as e:
                self._restore_and_stop(index, key, False, f"its {action} failed", str(e))
            self.journal.record(index, "swapped")
            phase = "swapped"
        if phase == "swapped":
            self._gate_or_restore(index, key, new, created=False)
            return
        if phase == "gated":
            self.runner.ready(key)
            self.runner.commit(key)
            self.journal.record(index, "done")

    # -- release upgrades (see .upgrade) --------------------------------------------------

    def _upgrade(self, index: int, step: dict[str, Any], phase: str | None) -> None:
        service, action = str(step["key"]), str(step["action"])
        detail = step.get("upgrade") or {}
        before, after = str(detail.get("from")), str(detail.get("to"))
        backup = self.runner.backup_path(service, self.desired.id)
        if phase is None:
            self.journal.record(index, "begin")
        try:
            if action == "backup":
                self.progress(f"{service}: dumping its database before {before} -> {after}")
                backup = self.runner.backup(service, self.desired.id)
                self.progress(f"{service}: backup in {backup}")
            else:
                if not os.path.exists(backup):
                    raise StepFailed(
                        f"the backup this upgrade took before it changed anything ({backup}) "
                        "is gone: put it back, or start the upgrade again from a stack on "
                        f"{before}"
                    )
                self.progress(f"{service}: database phase {action} ({before} -> {after})")
                self.runner.upgrade_phase(service, action)
                if action in ("expand", "contract"):
                    done = "expanded" if action == "expand" else "contracted"
                    record = UpgradeRecord(service, before, after, self.desired.id, done, backup)
                    replaced = detail.get("replaces") if action == "contract" else None
                    self.runner.upgraded(record, str(replaced) if replaced else None)
        except SalineError as e:
            self.journal.record(index, "failed", why=str(e).splitlines()[0])
            if action == "contract":
                raise ApplyFailed(
                    f"{service}: the contract phase of {before} -> {after} failed; every "
                    f"instance runs {after}. Fix the cause and run `saline apply` again "
                    f"(the phase is idempotent); the backup from before the upgrade: "
                    f"{backup}\n{e}"
                ) from None
            self._roll_back_upgrade(service, f"{service}: database phase {action} failed: {e}")
        self.journal.record(index, "done")

    def _upgrade_step(self, service: str, action: str) -> int | None:
        for i, s in enumerate(self.journal.steps):
            if s["kind"] == "upgrade" and s["key"] == service and s["action"] == action:
                return i
        return None

    def _roll_back_upgrade(self, service: str, failure: str) -> NoReturn:
        """A failure during ``service``'s release upgrade, before its contract: its
        instances already on the new release go back to the old one (which runs on the
        expanded schema), then the rollout stops. Other failures stop as they are."""
        expand = self._upgrade_step(service, "expand")
        contract = self._upgrade_step(service, "contract")
        if (
            expand is None
            or contract is None
            or self.journal.phase(expand) != "done"
            or self.journal.phase(contract) == "done"
        ):
            raise ApplyFailed(failure)
        backup = self.runner.backup_path(service, self.desired.id)
        detail = self.journal.steps[expand].get("upgrade") or {}
        before, after = detail.get("from"), detail.get("to")
        back = []
        for index, s in enumerate(self.journal.steps):
            key = str(s["key"])
            if s["kind"] != "instance" or key.partition("@")[0] != service:
                continue
            if self.journal.phase(index) != "done":
                continue
            old = self.previous.get(key)
            if old is None:
                continue
            self.progress(f"{key}: rolling back to {before}")
            self.runner.drain(key)
            self.runner.swap(key, old)
            problem = self.runner.gate(old)
            self.runner.ready(key)
            if problem is not None:
                raise ApplyFailed(
                    f"{failure}\nRolling {service} back to {before}, {key} failed its gate "
                    f"too: {problem}\nThe backup from before the upgrade: {backup}"
                )
            self.runner.commit(key)
            self.journal.record(index, "restored", why=f"rolled back to {before}")
            back.append(key)
        rolled = f" ({', '.join(back)} rolled back)" if back else ""
        raise ApplyFailed(
            f"{failure}\nThe upgrade of {service} to {after} was rolled back: its instances run "
            f"{before} again{rolled}, on the expanded schema, which {before} uses. The "
            f"backup from before the upgrade: {backup}"
        )

    def _gate_or_restore(self, index: int, key: str, new: Instance, created: bool) -> None:
        self.progress(f"{key}: checking health and API")
        failure = self.runner.gate(new)
        if failure is None:
            self.journal.record(index, "gated")
            self.progress(f"{key}: ready again, waiting until the load balancers see it UP")
            self.runner.ready(key)
            self.runner.commit(key)
            self.journal.record(index, "done")
            return
        self._restore_and_stop(index, key, created, "the new instance failed its gate", failure)

    def _restore_and_stop(
        self, index: int, key: str, created: bool, reason: str, failure: str
    ) -> NoReturn:
        old = self.previous.get(key)
        self.progress(f"{key}: failed, restoring the previous instance")
        self.runner.restore(key, None if created else old)
        if not created:
            self.runner.ready(key)
        self.journal.record(index, "restored", why=failure.splitlines()[0] if failure else "")
        what = "removed the new instance" if created else "restored the previous instance"
        raise ApplyFailed(f"{key}: {reason}, {what}; the rollout stopped here.\n{failure}")
