"""`saline up`'s scheduler with a fake podman-compose: order, health gates, failures,
bootstrap tasks run once. Fast; tests/integration/test_stack.py runs the same code
against real podman."""

from __future__ import annotations

import _thread
import dataclasses
import itertools
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from saline.runtime.compose import ComposeRunner, Container
from saline.runtime.process import CommandTimeout, Interrupted
from saline.stack import Stack, StackError, _Up, record_reload
from tools import FORMULAS, example, example_stack

#: The example's keystone instances (it runs two), and one of them.
KEYSTONES = [i for i in example().instances if i.startswith("keystone")]
KEYSTONE = KEYSTONES[0]


@dataclass
class FakePodman:
    removed: list[str] = field(default_factory=list)

    def remove(self, name: str) -> None:
        self.removed.append(name)

    def networks(self) -> list[dict[str, Any]]:
        return []


@dataclass
class FakeRunner:
    """Containers as podman-compose would make them; everything it was asked, in order."""

    stack: Stack
    exit_codes: dict[str, int] = field(default_factory=dict)
    unhealthy: set[str] = field(default_factory=set)
    #: Tasks that never exit: waiting for them runs into the task's timeout.
    hanging: set[str] = field(default_factory=set)
    waited: dict[str, float] = field(default_factory=dict)
    #: Tasks whose wait blocks until `stopped` is set (what terminate_all does for real).
    blocking: set[str] = field(default_factory=set)
    waiting: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    calls: list[str] = field(default_factory=list)
    recreated: list[str] = field(default_factory=list)
    made: dict[str, Container] = field(default_factory=dict)
    #: Start times (podman's StartedAt): each container made starts later than the last.
    clock: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    podman: FakePodman = field(default_factory=FakePodman)

    def containers(self) -> dict[str, Container]:
        return dict(self.made)

    def up(self, services: list[str], recreate: bool = False) -> None:
        for name in services:
            self.calls.append(name)
            if recreate:
                self.recreated.append(name)
            doc = self.stack.plan.document["services"][name]
            task = doc["labels"]["saline.kind"] == "task"
            code = self.exit_codes.get(name, 0)
            self.made[name] = Container(
                name=f"p_{name}_1",
                service=name,
                state="exited" if task else ("exited" if code else "running"),
                exit_code=code,
                image=doc["image"],
                labels=dict(doc["labels"]),
                id=f"id-{name}-{len(self.calls)}",
                started_at=next(self.clock),
            )

    def wait(self, container: str, *, timeout: float) -> int:
        c = self._by_container(container)
        self.waited[c.service] = timeout
        if c.service in self.blocking:
            # Like `podman wait` on a task that runs on: until saline stops its commands.
            self.waiting.set()
            if not self.stopped.wait(10):
                raise AssertionError("nothing stopped the wait")
            raise Interrupted(["podman", "wait", container], None)
        if c.service in self.hanging:
            raise CommandTimeout(["podman", "wait", container], timeout)
        return c.exit_code

    def state(self, container: str) -> dict[str, Any]:
        c = self._by_container(container)
        return {"Status": c.state, "ExitCode": c.exit_code}

    def healthcheck(self, container: str) -> tuple[bool, str]:
        name = self._by_container(container).service
        return name not in self.unhealthy, "HTTP 503 from http://10.10.0.40:8404/healthz"

    def logs(self, container: str, tail: int | None = None) -> str:
        return "starting\nadmin password is example-admin\nfailed\n"

    def volumes_created(self, names: list[str]) -> dict[str, str]:
        return {n: "2026-11-24T00:00:00Z" for n in names}

    def _by_container(self, container: str) -> Container:
        return next(c for c in self.made.values() if c.name == container)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    formulas = tmp_path / "formulas"
    shutil.copytree(FORMULAS, formulas)
    # A patient haproxy would make the timeout test slow.
    meta = formulas / "haproxy" / "formula.yml"
    text, count = re.subn(
        r"(\n      http: \{port: 8404, path: /healthz\}\n)      start_period: \d+\n",
        r"\1      start_period: 0.3\n      interval: 0.1\n      timeout: 0.1\n",
        meta.read_text(),
    )
    assert count == 1, "haproxy's health check changed: update this fixture"
    meta.write_text(text)
    return example_stack(str(tmp_path / "state"), formula_dirs=[str(formulas)], project="p")


def run(stack: Stack, runner: FakeRunner) -> dict[str, str]:
    results = _Up(stack, cast(ComposeRunner, runner), lambda line: None).run()
    return {r.name: r.outcome for r in results}


def test_every_step_starts_after_what_it_needs(stack: Stack) -> None:
    runner = FakeRunner(stack)
    outcomes = run(stack, runner)
    assert set(outcomes) == {s.name for s in stack.plan.steps}
    assert {outcomes[s.name] for s in stack.plan.steps if s.kind == "task"} == {"ran"}
    assert {outcomes[s.name] for s in stack.plan.steps if s.kind == "service"} == {"healthy"}
    # The node containers first, in one call; then each step after everything it needs.
    nodes = [s.name for s in stack.plan.steps if s.kind == "node"]
    assert runner.calls[: len(nodes)] == nodes
    position = {name: i for i, name in enumerate(runner.calls)}
    for step in stack.plan.steps:
        for need in step.after:
            assert position[need] < position[step.name], (need, step.name)


def test_a_second_up_changes_nothing_and_runs_no_task(stack: Stack) -> None:
    runner = FakeRunner(stack)
    run(stack, runner)
    runner.calls.clear()
    outcomes = run(stack, runner)
    assert runner.calls == []  # nothing created, recreated or started
    assert {o for n, o in outcomes.items() if stack.plan.step(n).kind == "task"} == {"already done"}
    assert {o for n, o in outcomes.items() if stack.plan.step(n).kind == "service"} == {"running"}


def test_a_stopped_service_is_started_again_without_its_tasks(stack: Stack) -> None:
    runner = FakeRunner(stack)
    run(stack, runner)
    killed = runner.made[KEYSTONE]
    runner.made[KEYSTONE] = Container(
        killed.name, KEYSTONE, "exited", 137, killed.image, killed.labels
    )
    runner.calls.clear()
    outcomes = run(stack, runner)
    assert runner.calls == [KEYSTONE]
    assert outcomes[KEYSTONE] == "healthy"
    assert outcomes["keystone-identity"] == "already done"


def test_a_container_reloaded_to_other_files_is_recreated(stack: Stack) -> None:
    # An apply reloaded keystone in place to another release's files (stack.reloaded):
    # its labels still match the model, what it serves does not. `up` must not leave it.
    labels = stack.plan.document["services"][KEYSTONE]["labels"]
    labels["saline.digest"] = "the-model-s"
    runner = FakeRunner(stack)
    run(stack, runner)
    record_reload(stack, runner.made[KEYSTONE].id, "another-release-s")
    other = KEYSTONES[1]
    record_reload(stack, runner.made[other].id, "the-model-s")  # reloaded back: fine
    runner.calls.clear()
    runner.recreated.clear()
    outcomes = run(stack, runner)
    assert runner.calls == runner.recreated == [KEYSTONE]
    assert outcomes[KEYSTONE] == "healthy" and outcomes[other] == "running"
    runner.calls.clear()
    run(stack, runner)  # the new container has no reload on record
    assert runner.calls == []


def test_a_service_that_never_gets_healthy_stops_up(stack: Stack) -> None:
    runner = FakeRunner(stack, unhealthy={"haproxy"})
    with pytest.raises(StackError) as e:
        run(stack, runner)
    msg = str(e.value)
    assert msg.startswith("haproxy (haproxy on prx01.openstack.local): did not become healthy")
    assert "HTTP 503 from http://10.10.0.40:8404/healthz" in msg
    assert "last log lines of p_haproxy_1:\n  starting\n" in msg
    assert "example-admin" not in msg and "********" in msg  # secrets masked
    assert "run `saline up` again" in msg
    assert runner.podman.removed == []  # what runs stays


def test_a_failing_task_stops_what_depends_on_it(stack: Stack) -> None:
    runner = FakeRunner(stack, exit_codes={"mariadb-databases": 3})
    with pytest.raises(StackError, match=r"mariadb-databases \(mariadb on dbs01.openstack.local\)"):
        run(stack, runner)
    assert "mariadb" in runner.calls
    assert "keystone-db-sync" not in runner.calls and not set(KEYSTONES) & set(runner.calls)
    # Fixed (exit 0 now): the next up runs it, and goes on from there.
    runner.exit_codes.clear()
    outcomes = run(stack, runner)
    assert outcomes["mariadb-databases"] == "ran"
    assert outcomes["mariadb"] == "running"
    assert {outcomes[k] for k in KEYSTONES} == {"healthy"}
    assert "p_mariadb-databases_1" in runner.podman.removed  # the failed run's container


def test_a_service_that_exits_is_reported_with_its_code(stack: Stack) -> None:
    runner = FakeRunner(stack, exit_codes={"memcached": 1})
    with pytest.raises(StackError, match=r"memcached .*: exited \(code 1\) before it was healthy"):
        run(stack, runner)


def test_a_task_that_never_exits_is_stopped_at_its_timeout(stack: Stack) -> None:
    runner = FakeRunner(stack, hanging={"keystone-db-sync"})
    with pytest.raises(StackError) as e:
        run(stack, runner)
    msg = str(e.value)
    assert msg.startswith(
        "keystone-db-sync (keystone on ctl01.openstack.local): bootstrap task db-sync did "
        "not finish within 600 s"
    )
    assert "last log lines of p_keystone-db-sync_1" in msg
    assert runner.waited["keystone-db-sync"] == 600.0  # the formula's default timeout
    assert "p_keystone-db-sync_1" in runner.podman.removed  # the hung task is gone
    assert not set(KEYSTONES) & set(runner.calls)  # nothing that needs it started


def test_ctrl_c_stops_up_and_removes_the_task_it_was_running(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (KeyboardInterrupt in the main thread) while a bootstrap task runs: every
    command saline runs is stopped, the worker threads end, the unfinished task's
    container is removed (its work is not done), and what already runs stays."""
    import saline.stack

    runner = FakeRunner(stack, blocking={"keystone-db-sync"})
    monkeypatch.setattr(saline.stack, "terminate_all", runner.stopped.set)

    def press_ctrl_c() -> None:
        if runner.waiting.wait(10):
            _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run(stack, runner)
    # The task it was waiting for is removed; on a loaded machine another worker may have
    # been between starting a task and waiting for it: unfinished too, removed too. No
    # service is ever removed.
    assert "p_keystone-db-sync_1" in runner.podman.removed
    removed = [r.removeprefix("p_").removesuffix("_1") for r in runner.podman.removed]
    assert all(stack.plan.step(r).kind == "task" for r in removed), removed
    assert "mariadb" in runner.calls and not set(KEYSTONES) & set(runner.calls)
    # The next up runs the task again and goes on from there.
    runner.blocking.clear()
    outcomes = run(stack, runner)
    assert outcomes["keystone-db-sync"] == "ran" and outcomes[KEYSTONE] == "healthy"


def test_a_node_restarted_behind_saline_s_back_gets_its_services_recreated(stack: Stack) -> None:
    """A node container restarted outside saline (podman restart, a reboot) runs, but the
    services that joined its old network namespace hold a namespace that is gone: the
    next `up` recreates them, and only them."""
    runner = FakeRunner(stack)
    run(stack, runner)
    node = next(s for s in stack.plan.steps if s.kind == "node")
    runner.made[node.name] = dataclasses.replace(
        runner.made[node.name], started_at=next(runner.clock)
    )
    runner.recreated.clear()
    outcomes = run(stack, runner)
    own = {s.name for s in stack.plan.steps if s.kind == "service" and s.node == node.node}
    assert own and set(runner.recreated) == own
    assert {outcomes[n] for n in own} == {"healthy"}
    # Up again: nothing is older than its node now.
    runner.recreated.clear()
    run(stack, runner)
    assert runner.recreated == []
