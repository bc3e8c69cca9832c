"""The apply engine's runner for the local stack (podman, through podman-compose).

Every instance has its own pillar link (``pillar/NODE/SERVICE.json`` -> the digest file
of the release it runs, see :func:`saline.stack.write_pillars`), so swapping one instance
to the new release, or restoring it, changes nothing for its neighbours on the node.

* drain / ready: through every haproxy of the release (its admin socket, via ``podman
  exec``): the (backend, server) pairs that send requests to the instance's address and
  ports are set to ``drain``, their sessions waited out (bounded), then ``maint``; ready
  sets them ``ready`` and waits until haproxy's own checks see them UP;
* swap: the running container is stopped and renamed ``NAME-saline-prev`` (kept until
  the instance passed its gate), the instance's link is pointed at the new pillar, and
  podman-compose creates the new container, which must become healthy;
* restart: the link is pointed at the new pillar and the same container restarted (its
  entrypoint configures it from the pillar at every start): the floor of a restart, no
  container to create;
* gate: the health check, then the formula's API check (``api_check``) in the container;
* restore: after a swap, the new container goes, the link points back, the kept one
  starts again; after a change in place (restart, reload), the link points back and
  the container is reloaded (a formula that can) or restarted on its old files;
* reload: the link is pointed at the new pillar, the configure states run in the
  container, then the formula's reload (a signal to PID 1, or a command). The container
  keeps its labels, so the new digest is recorded beside it (``reloaded.json``);
* a release upgrade's backup: the formula's dump command in a running container of the
  database's service (the password on stdin), into ``backups/RELEASE-SERVICE.sql``
  (0600) under the stack's folder; its database phases: a one-off container of the
  replaced bootstrap task's definition (the new image, the task's pillar), running
  ``saline-entrypoint upgrade PHASE``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..formulas import FormulaSet
from ..formulas.schema import Releases
from ..model import pillar_value
from ..release import Instance, Release, Task
from ..runtime.compose import KEPT_SUFFIX, ComposeRunner, Container
from ..runtime.haproxy import HAProxy, HAProxyError, servers_for
from ..runtime.process import CommandError, CommandTimeout
from ..stack import LOG_LINES, Stack, record_reload, record_task, repoint
from .apply import StepFailed
from .records import Records
from .upgrade import UpgradeRecord

PREVIOUS = KEPT_SUFFIX
#: How long a drained server's sessions may take to finish, and haproxy to see a
#: server UP again (its checks: inter 2s, rise 2).
DRAIN_TIMEOUT = 30.0
UP_TIMEOUT = 60.0
#: A TCP listener's sessions (a database's pooled connections) never end by themselves:
#: how long the ones in flight get before haproxy closes them. A pool notices a closed
#: idle connection when it next hands it out (oslo.db pings it first) and opens another,
#: to a server in service.
TCP_DRAIN_GRACE = 5.0


class StackRunner:
    def __init__(
        self,
        stack: Stack,
        release: Release,
        formulas: FormulaSet,
        progress: Callable[[str], None],
    ) -> None:
        self.stack = stack
        self.release = release
        self.formulas = formulas
        self.progress = progress
        self.compose: ComposeRunner = stack.runner()
        self.podman = self.compose.podman
        doc = stack.plan.document["services"]
        self.names: dict[str, str] = {}
        for name, svc in doc.items():
            labels = svc.get("labels") or {}
            key = labels.get("saline.instance") or labels.get("saline.task-key")
            if key:
                self.names[str(key)] = name

    # -- lookups ------------------------------------------------------------------------

    def _service(self, key: str) -> str:
        try:
            return self.names[key]
        except KeyError:
            raise StepFailed(f"{key}: the stack has no such part") from None

    def _running(self, key: str) -> Container | None:
        return self.compose.containers().get(self._service(key))

    def _targets(self, key: str) -> list[tuple[HAProxy, str, str, str]]:
        """(haproxy, backend, server, mode) for every balancer that sends ``key`` requests;
        mode is the listener's (``tcp`` or ``http``)."""
        inst = self.release.instance(key)
        if inst is None:
            service, _, node = key.partition("@")
            address = self._address(node)
            ports = self._ports(service)
        else:
            address, ports = self._address(inst.node), [int(p["port"]) for p in inst.ports]
        out = []
        containers = self.compose.containers()
        for lb in self.release.instances:
            if lb.service != "haproxy" or lb.key == key:
                continue
            listen = self._pillar(lb.node).get("haproxy", {}).get("proxy", {}).get("listen", {})
            pairs = [p for port in ports for p in servers_for(listen, address, port)]
            c = containers.get(self._service(lb.key))
            if pairs and c is not None and c.running:
                h = HAProxy.for_container(self.podman, c.name)
                default = str(self._pillar(lb.node)["haproxy"]["proxy"].get("mode", "http"))
                out += [
                    (h, backend, server, str(listen[backend].get("mode", default)))
                    for backend, server in pairs
                ]
        return out

    def _pillar(self, node: str) -> Mapping[str, Any]:
        return self.stack.pillars.get(node, {})

    def _address(self, node: str) -> str:
        for n in self.stack.plan.nodes:
            if n.name == node:
                return n.address
        return ""

    def _ports(self, service: str) -> list[int]:
        found = self.formulas.services.get(service)
        return [p.port for p in found[1].ports] if found else []

    # -- the Runner protocol ---------------------------------------------------------

    def run_task(self, task: Task) -> None:
        name = self._service(task.key)
        old = self.compose.containers().get(name)
        if old is not None:
            self.podman.remove(old.name)
        self.compose.up([name])
        container = self._container(name)
        timeout = task.timeout
        try:
            code = self.compose.wait(container, timeout=timeout)
        except CommandTimeout:
            logs = self._logs(container)
            self.podman.remove(container)
            raise StepFailed(f"{task.key}: did not finish within {timeout:.0f} s\n{logs}") from None
        if code != 0:
            raise StepFailed(f"{task.key}: failed (exit {code})\n{self._logs(container)}")
        step = self.stack.plan.step(name)
        volumes = self.compose.volumes_created(list(step.volumes))
        record_task(self.stack, name, task.key, task.inputs, volumes)

    def start(self, new: Instance) -> None:
        repoint(self.stack, new.node, new.service, new.pillar_digest)
        name = self._service(new.key)
        self.compose.up([name])
        self._healthy(new, self._container(name))

    def drain(self, key: str) -> None:
        for h, backend, server, mode in self._targets(key):
            self.progress(f"{key}: draining {backend}/{server}")
            h.drain(backend, server)
            if mode == "tcp":
                try:
                    h.wait_drained(backend, server, TCP_DRAIN_GRACE)
                except HAProxyError:
                    left = h.server(backend, server).sessions
                    self.progress(f"{key}: closing {left} session(s) of {backend}/{server}")
                    h.shutdown_sessions(backend, server)
            else:
                h.wait_drained(backend, server, DRAIN_TIMEOUT)
            h.maint(backend, server)

    def ready(self, key: str) -> None:
        for h, backend, server, _ in self._targets(key):
            h.ready(backend, server)
            # The engine calls ready only after the gate passed (health and a real API
            # call through the instance) or on the instance it restored, which served
            # before: haproxy need not wait for `rise` checks of its own.
            h.health_up(backend, server)
            h.wait_up(backend, server, UP_TIMEOUT)

    def swap(self, key: str, new: Instance) -> None:
        name = self._service(key)
        current, prev = self._current_and_previous(name)
        new_runs = current is not None and current.running
        if new_runs and current is not None and current.labels.get("saline.digest") == new.digest:
            return  # swapped before a kill: the new one runs already
        if current is not None:
            if prev is not None:
                self.podman.remove(prev)  # an older leftover: the running one is newer
            self.podman.cli(["stop", "-t", "30", current.name], timeout=60)
            self.podman.cli(["rename", current.name, current.name + PREVIOUS])
        repoint(self.stack, new.node, new.service, new.pillar_digest)
        self.compose.up([name])
        self._healthy(new, self._container(name))

    def restart(self, new: Instance) -> None:
        self._restart_on(new, self._container(self._service(new.key)))

    def _restart_on(self, inst: Instance, container: str) -> None:
        """Point the instance at ``inst``'s pillar and restart ``container`` on it."""
        repoint(self.stack, inst.node, inst.service, inst.pillar_digest)
        try:
            self.podman.cli(["restart", "-t", "30", container], timeout=120)
        except CommandError as e:
            raise StepFailed(f"{inst.key}: restart failed: {e}") from None
        self._healthy(inst, container)
        self._record_reload(container, inst.digest)

    def reload(self, new: Instance) -> None:
        name = self._service(new.key)
        container = self._container(name)
        repoint(self.stack, new.node, new.service, new.pillar_digest)
        spec = self.formulas.services[new.service][1]
        try:
            self.podman.exec(container, ["saline-entrypoint", "configure"], timeout=300)
            if spec.reload is not None and spec.reload.signal:
                self.podman.cli(["kill", "--signal", spec.reload.signal, container])
            elif spec.reload is not None and spec.reload.command:
                self.podman.exec(container, list(spec.reload.command), spec.reload.timeout)
        except CommandError as e:
            raise StepFailed(f"{new.key}: reload failed: {e}") from None
        self._record_reload(container, new.digest)

    def write_files(self, new: Instance) -> None:
        container = self._container(self._service(new.key))
        repoint(self.stack, new.node, new.service, new.pillar_digest)
        self.podman.exec(container, ["saline-entrypoint", "configure"], timeout=300)
        self._record_reload(container, new.digest)

    def gate(self, inst: Instance) -> str | None:
        container = self._container(self._service(inst.key))
        try:
            self._healthy(inst, container)
        except StepFailed as e:
            return str(e)
        check = inst.api_check
        if not check:
            return None
        timeout = float(check.get("timeout", 30.0))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            done = self.podman.run_in(container, list(check["command"]), timeout=timeout)
            if done.returncode == 0:
                return None
            lines = done.output.strip().splitlines()
            last = lines[-1] if lines else ""
            time.sleep(1.0)
        return (
            f"API check {' '.join(check['command'])} failed: {last or 'no output'}\n"
            f"{self._logs(container)}"
        )

    def restore(self, key: str, old: Instance | None) -> None:
        name = self._service(key)
        current, prev = self._current_and_previous(name)
        if prev is None and old is not None and current is not None:
            # Changed in place (restart, reload, files), or a swap that failed before it
            # stopped anything: the old files back. A formula that reloads is reloaded;
            # when that fails too, or it cannot, a restart (which reads them) settles it.
            spec = self.formulas.services[old.service][1]
            if current.running and spec.reload is not None:
                try:
                    self.reload(old)
                    return
                except StepFailed as e:
                    self.progress(f"{key}: {str(e).splitlines()[0]}; restarting it instead")
            self._restart_on(old, current.name)
            return
        if current is not None:
            self.podman.remove(current.name)
        if old is not None:
            repoint(self.stack, old.node, old.service, old.pillar_digest)
        if prev is None:
            return
        self.podman.cli(["rename", prev, prev.removesuffix(PREVIOUS)])
        self.podman.cli(["start", prev.removesuffix(PREVIOUS)], timeout=120)
        if old is not None:
            self._healthy(old, prev.removesuffix(PREVIOUS))

    def commit(self, key: str) -> None:
        prev = self._previous(self._service(key))
        if prev is not None:
            self.podman.remove(prev)

    def remove(self, key: str) -> None:
        current = self.compose.containers().get(self.names.get(key, ""))
        if current is not None:
            self.podman.remove(current.name)

    # -- helpers --------------------------------------------------------------------------

    def _container(self, name: str) -> str:
        found = self.compose.containers().get(name)
        if found is None:
            raise StepFailed(f"{name}: podman-compose created no container")
        return found.name

    def _previous(self, name: str) -> str | None:
        return self._current_and_previous(name)[1]

    def _current_and_previous(self, name: str) -> tuple[Container | None, str | None]:
        """The service's container and the name of the one kept by a swap (one listing)."""
        current, prev = None, None
        for c in self.compose.all_containers():
            if c.service != name:
                continue
            if c.name.endswith(PREVIOUS):
                prev = c.name
            else:
                current = c
        return current, prev

    # -- release upgrades (see .upgrade) ---------------------------------------------------

    def _releases(self, service: str) -> Releases:
        found = self.formulas.services.get(service)
        if found is None or found[1].releases is None:
            raise StepFailed(f"{service}: its formula declares no releases to upgrade between")
        return found[1].releases

    def backup_path(self, service: str, release: str) -> str:
        return os.path.join(self.stack.directory, "backups", f"{release}-{service}.sql")

    def backup(self, service: str, release: str) -> str:
        releases = self._releases(service)
        spec = self.formulas.services[service][1]
        inst = next((i for i in self.release.instances if i.service == service), None)
        if inst is None:
            raise StepFailed(f"{service}: the release has no instance of it")
        path = f"{spec.pillar}:{releases.database}"
        db = pillar_value(self._pillar(inst.node), path)
        if not isinstance(db, Mapping) or "password" not in db:
            raise StepFailed(
                f"{service}: no database section (host, name, user, password) at {path}"
            )
        try:
            command = [part.format(**db) for part in releases.backup.command]
        except (KeyError, IndexError) as e:
            raise StepFailed(f"{service}: the backup command needs {path}:{e.args[0]}") from None
        containers = self.compose.containers()
        dumper = None
        for other in self.release.instances:
            c = containers.get(self.names.get(other.key, ""))
            if other.service == releases.backup.service and c is not None and c.running:
                dumper = c
                break
        if dumper is None:
            raise StepFailed(
                f"{service}: no running {releases.backup.service} to dump its database with"
            )
        timeout = releases.backup.timeout
        try:
            done = self.podman.exec_with_secret(
                dumper.name, "MYSQL_PWD", str(db["password"]), command, timeout
            )
        except CommandTimeout:
            raise StepFailed(
                f"{service}: the database dump took longer than {timeout:.0f} s"
            ) from None
        if done.returncode != 0 or not done.stdout.strip():
            why = self.stack.redact(done.stderr.strip())[-2000:] or "no output"
            raise StepFailed(f"{service}: the database dump failed (exit {done.returncode}): {why}")
        target = self.backup_path(service, release)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        tmp = f"{target}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(done.stdout)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return target

    def upgrade_phase(self, service: str, phase: str) -> None:
        releases = self._releases(service)
        name = self._service(f"{service}/{releases.replaces}")
        container = f"{self.stack.plan.project}_{name}_{phase}"
        self.podman.remove(container)  # a run cut short before
        self.compose.run_detached(name, container, ["upgrade", phase])
        try:
            code = self.compose.wait(container, timeout=releases.timeout)
        except CommandTimeout:
            logs = self._logs(container)
            self.podman.remove(container)
            raise StepFailed(
                f"{service}: phase {phase} did not finish within {releases.timeout:.0f} s\n{logs}"
            ) from None
        if code != 0:
            logs = self._logs(container)
            self.podman.remove(container)
            raise StepFailed(f"{service}: phase {phase} failed (exit {code})\n{logs}")
        self.podman.remove(container)

    def upgraded(self, record: UpgradeRecord, replaced_task: str | None) -> None:
        Records(self.stack.directory).record_upgrade(record)
        if replaced_task is None:
            return
        task = self.release.task(replaced_task)
        if task is None:
            return
        name = self._service(replaced_task)
        step = self.stack.plan.step(name)
        volumes = self.compose.volumes_created(list(step.volumes))
        record_task(self.stack, name, task.key, task.inputs, volumes)

    def _logs(self, container: str) -> str:
        text = self.stack.redact(self.compose.logs(container, LOG_LINES)).rstrip()
        lines = "\n".join("  " + line for line in text.splitlines())
        return f"last log lines of {container}:\n{lines or '  (none)'}"

    def _healthy(self, inst: Instance, container: str) -> None:
        health = inst.health
        limit = (
            float(health.get("start_period", 120))
            + float(health.get("interval", 2)) * 3
            + float(health.get("timeout", 5))
        )
        deadline = time.monotonic() + limit
        last = ""
        while True:
            # The check first: a healthy container needs no second podman call.
            ok, last = self.compose.healthcheck(container)
            if ok:
                return
            state = self.compose.state(container) or {}
            if state.get("Status") != "running":
                code = state.get("ExitCode", "?")
                raise StepFailed(
                    f"{inst.key}: exited (code {code}) before it was healthy\n"
                    f"{self._logs(container)}"
                )
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"{inst.key}: not healthy within {limit:.0f} s: {last}\n{self._logs(container)}"
                )
            time.sleep(0.5)

    def _record_reload(self, container: str, digest: str) -> None:
        """A reloaded container keeps its labels: remember its new digest by its id."""
        c = next((c for c in self.compose.containers().values() if c.name == container), None)
        if c is not None:
            record_reload(self.stack, c.id, digest)
