"""haproxy's runtime API (saline.runtime.haproxy) with a fake `podman exec`.

The ``show stat`` answers are real: captured from haproxy 2.6 (the formula's image) with
two listen sections, servers up, draining with sessions, in maintenance and down
(tests/data/haproxy/).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from saline.build import entrypoint
from saline.runtime.haproxy import (
    CLI,
    HAProxy,
    HAProxyError,
    ServerState,
    parse_stat,
    servers_for,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "haproxy"


def stat(name: str) -> str:
    return (DATA / f"show-stat-{name}.csv").read_text()


class FakeHAProxy:
    """Answers `saline-entrypoint haproxy ...` as haproxy does: ``show stat`` from a
    sequence of captured answers (the last one repeats), ``set server`` with nothing or
    haproxy's error."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []
        self.now = 0.0

    def __call__(self, argv: Sequence[str]) -> str:
        assert tuple(argv[: len(CLI)]) == CLI
        words = list(argv[len(CLI) :])
        self.calls.append(words)
        if words == ["show", "stat"]:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if words[:3] == ["shutdown", "sessions", "server"]:
            backend, _, server = words[3].partition("/")
            known = {(s.backend, s.server) for s in parse_stat(self.answers[0])}
            return "" if (backend, server) in known else "No such server.\n\n"
        if words[:2] == ["set", "server"]:
            backend, _, server = words[2].partition("/")
            known = {(s.backend, s.server) for s in parse_stat(self.answers[0])}
            return "" if (backend, server) in known else "No such server.\n\n"
        return "Unknown command\n"

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def haproxy(self) -> HAProxy:
        return HAProxy(self, clock=self.clock, sleep=self.sleep, interval=0.5)


def test_parse_stat_reads_servers_only() -> None:
    servers = parse_stat(stat("states"))
    assert [(s.backend, s.server, s.state, s.sessions) for s in servers] == [
        ("api", "be1.local", "DRAIN", 0),
        ("api", "be2.local", "UP", 3),
        ("extra", "be1.local", "MAINT", 0),
        ("extra", "gone.local", "DOWN", 0),
    ]
    assert servers[3].check == "* L4TOUT"


def test_states_and_transitions() -> None:
    def state(status: str) -> ServerState:
        return ServerState("b", "s", status, 0, "")

    assert state("UP 1/3").state == "UP" and state("UP 1/3").transitional
    assert state("DOWN 1/2").state == "DOWN" and state("DOWN 1/2").transitional
    assert state("MAINT (via b/t)").state == "MAINT" and not state("MAINT (via b/t)").transitional
    assert state("no check").state == "UP"
    assert state("NOLB").state == "NOLB"
    with pytest.raises(HAProxyError, match="unknown status"):
        _ = state("WEIRD").state


def test_not_stat_output_is_an_error() -> None:
    with pytest.raises(HAProxyError, match="not `show stat` output"):
        parse_stat("Unknown command\n")


def test_servers_of_a_backend() -> None:
    fake = FakeHAProxy(stat("up"))
    servers = fake.haproxy().servers("api")
    assert sorted(servers) == ["be1.local", "be2.local"]
    assert all(s.state == "UP" and s.sessions == 0 for s in servers.values())
    assert fake.calls == [["show", "stat"]]
    with pytest.raises(HAProxyError, match="no backend 'nope'"):
        fake.haproxy().servers("nope")
    with pytest.raises(HAProxyError, match=r"backend api has no server 'x' \(be1.local, be2"):
        fake.haproxy().server("api", "x")


def test_drain_maint_ready_send_one_command_each() -> None:
    fake = FakeHAProxy(stat("up"))
    hap = fake.haproxy()
    hap.drain("api", "be1.local")
    hap.maint("api", "be2.local")
    hap.ready("api", "be1.local")
    hap.health_up("api", "be1.local")
    assert fake.calls == [
        ["set", "server", "api/be1.local", "state", "drain"],
        ["set", "server", "api/be2.local", "state", "maint"],
        ["set", "server", "api/be1.local", "state", "ready"],
        ["set", "server", "api/be1.local", "health", "up"],
    ]


def test_shutdown_sessions_closes_a_servers_sessions_in_one_command() -> None:
    fake = FakeHAProxy(stat("draining"))
    fake.haproxy().shutdown_sessions("api", "be2.local")
    assert fake.calls == [["shutdown", "sessions", "server", "api/be2.local"]]
    with pytest.raises(HAProxyError, match="shutdown sessions server api/gone: No such server"):
        fake.haproxy().shutdown_sessions("api", "gone")


def test_haproxys_refusal_is_an_error() -> None:
    hap = FakeHAProxy(stat("up")).haproxy()
    with pytest.raises(HAProxyError, match=r"set server api/gone state drain: No such server"):
        hap.drain("api", "gone")


@pytest.mark.parametrize("word", ["a;b", "a b", "a\nb", ""])
def test_a_command_word_cannot_smuggle_another_command(word: str) -> None:
    fake = FakeHAProxy(stat("up"))
    with pytest.raises(HAProxyError, match="is not one word"):
        fake.haproxy().drain("api", word)
    assert fake.calls == []


def test_wait_drained_polls_until_no_session_is_left() -> None:
    fake = FakeHAProxy(stat("draining"), stat("draining"), stat("states"))
    hap = fake.haproxy()
    assert hap.server("api", "be1.local").sessions == 2
    done = hap.wait_drained("api", "be1.local", timeout=10)
    assert done.state == "DRAIN" and done.sessions == 0
    assert fake.now == 0.5  # polled again after one interval


def test_wait_drained_is_bounded() -> None:
    fake = FakeHAProxy(stat("draining"))
    with pytest.raises(HAProxyError) as e:
        fake.haproxy().wait_drained("api", "be1.local", timeout=3)
    assert str(e.value) == (
        "haproxy: api/be1.local did not drain within 3 s (status DRAIN, 2 session(s))"
    )
    assert 3 <= fake.now <= 3.5


def test_wait_up_wants_up_with_its_last_check_passed() -> None:
    maint = stat("states")
    # be1 of api just left maintenance: "UP 1/3" until its first check passes.
    going = _with_status(stat("up"), "api", "be1.local", "UP 1/3")
    fake = FakeHAProxy(maint, going, stat("up"))
    state = fake.haproxy().wait_up("api", "be1.local", timeout=10)
    assert state.status == "UP"
    assert fake.now == 1.0


def test_wait_up_is_bounded() -> None:
    fake = FakeHAProxy(stat("states"))
    with pytest.raises(HAProxyError, match=r"extra/gone.local did not come up within 2 s"):
        fake.haproxy().wait_up("extra", "gone.local", timeout=2)


def _with_status(text: str, backend: str, server: str, status: str) -> str:
    lines = text.splitlines()
    header = lines[0][2:].split(",")
    col = header.index("status")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if cells[:2] == [backend, server]:
            cells[col] = status
        out.append(",".join(cells))
    return "\n".join(out) + "\n"


LISTEN = {
    "keystone_public_api": {
        "binds": [{"address": "10.10.0.40", "port": 5000}],
        "servers": {"ctl01.openstack.local": "10.10.0.30", "ctl02.openstack.local": "10.10.0.31"},
        "port": 5000,
        "health_check": "/v3",
    },
    "keystone_admin_api": {
        "binds": [{"address": "10.10.0.40", "port": 35357}],
        "servers": {"ctl01.openstack.local": "10.10.0.30"},
        "port": 5000,
        "health_check": "/v3",
    },
    "glance_api": {
        "binds": [{"address": "10.10.0.40", "port": 9292}],
        "servers": {"ctl01.openstack.local": "10.10.0.30"},
        "port": 9292,
        "health_check": "/healthcheck",
    },
}


def test_servers_for_an_instance_address() -> None:
    assert servers_for(LISTEN, "10.10.0.30", 5000) == [
        ("keystone_admin_api", "ctl01.openstack.local"),
        ("keystone_public_api", "ctl01.openstack.local"),
    ]
    assert servers_for(LISTEN, "10.10.0.31", 5000) == [
        ("keystone_public_api", "ctl02.openstack.local")
    ]
    assert servers_for(LISTEN, "10.10.0.30", 9292) == [("glance_api", "ctl01.openstack.local")]
    assert servers_for(LISTEN, "10.10.0.99", 5000) == []
    assert servers_for({}, "10.10.0.30", 5000) == []


def test_servers_for_the_example_model() -> None:
    from saline.model import load_model
    from tools import EXAMPLE

    model = load_model(str(EXAMPLE))
    proxy = model.node("prx01.openstack.local").parameters["haproxy"]["proxy"]
    ctl01 = model.node("ctl01.openstack.local").parameters["_param"]["single_address"]
    assert servers_for(proxy["listen"], ctl01, 5000) == [
        ("keystone_public_api", "ctl01.openstack.local")
    ]
    assert servers_for(proxy["listen"], ctl01, 9292) == [("glance_api", "ctl01.openstack.local")]


def test_in_container_runs_podman_exec() -> None:
    class Podman:
        def __init__(self) -> None:
            self.calls: list[tuple[str, list[str], float]] = []

        def exec(self, name: str, command: list[str], timeout: float = 0) -> str:
            self.calls.append((name, command, timeout))
            return stat("up")

    podman = Podman()
    hap = HAProxy.in_container(podman, "openstack_haproxy")  # type: ignore[arg-type]
    assert hap.server("api", "be1.local").state == "UP"
    assert podman.calls == [
        ("openstack_haproxy", ["saline-entrypoint", "haproxy", "show", "stat"], 30.0)
    ]


# -- the in-image side: `saline-entrypoint haproxy COMMAND...` and `uwsgi-reload` -----------


class FakeSocket:
    """A unix socket server answering each connection with ``answer(request)`` and
    closing it, as haproxy's admin socket (non-interactive) and uwsgi's stats server do."""

    def __init__(self, path: str, answer: Callable[[bytes], bytes], reads: bool = True) -> None:
        self.requests: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(8)
        self.answer, self.reads = answer, reads
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536) if self.reads else b""
                self.requests.append(request)
                conn.sendall(self.answer(request))

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def admin_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, FakeSocket]]:
    path = str(tmp_path / "admin.sock")
    monkeypatch.setattr(entrypoint, "HAPROXY_SOCKET", path)
    fake = FakeSocket(path, lambda req: stat("up").encode() if req == b"show stat\n" else b"")
    yield path, fake
    fake.close()


def test_entrypoint_sends_one_command_and_prints_the_answer(
    admin_socket: tuple[str, FakeSocket], capsys: pytest.CaptureFixture[str]
) -> None:
    _, fake = admin_socket
    assert entrypoint.main(["saline-entrypoint", "haproxy", "show", "stat"]) == 0
    assert capsys.readouterr().out == stat("up")
    assert fake.requests == [b"show stat\n"]


def test_entrypoint_refuses_several_commands_in_one(
    admin_socket: tuple[str, FakeSocket], capsys: pytest.CaptureFixture[str]
) -> None:
    _, fake = admin_socket
    assert entrypoint.main(["saline-entrypoint", "haproxy", "show", "stat;", "shutdown"]) == 2
    assert entrypoint.main(["saline-entrypoint", "haproxy"]) == 2
    assert fake.requests == []
    assert "usage: haproxy COMMAND..." in capsys.readouterr().err


def test_entrypoint_without_haproxy_fails_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(entrypoint, "HAPROXY_SOCKET", str(tmp_path / "none.sock"))
    assert entrypoint.main(["saline-entrypoint", "haproxy", "show", "info"]) == 1
    err = capsys.readouterr().err
    assert "admin socket" in err and "does not answer" in err


def test_entrypoint_reads_the_state_file_setting(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "global\n    # server-state-file /not/this\n"
        "    server-state-file /var/lib/haproxy/server-state  # saved\n"
    )
    assert entrypoint._haproxy_setting(str(cfg), "server-state-file") == (
        "/var/lib/haproxy/server-state"
    )
    assert entrypoint._haproxy_setting(str(cfg), "stats") is None


def test_uwsgi_reload_waits_for_new_workers_with_the_app(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = str(tmp_path / "master.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the master's end
    old = [{"pid": 10, "status": "idle", "apps": [{}]}, {"pid": 11, "status": "idle", "apps": [{}]}]
    new = [{"pid": 12, "status": "idle", "apps": [{}]}, {"pid": 13, "status": "busy", "apps": [{}]}]
    answers = [old, old, [old[1], {"pid": 12, "status": "idle", "apps": []}], new]

    def stats(_req: bytes) -> bytes:
        workers = answers.pop(0) if len(answers) > 1 else answers[0]
        return json.dumps({"workers": workers}).encode()

    path = str(tmp_path / "stats.sock")
    fake = FakeSocket(path, stats, reads=False)
    try:
        assert entrypoint.main(["saline-entrypoint", "uwsgi-reload", fifo, path, "20"]) == 0
    finally:
        fake.close()
    assert os.read(reader, 10) == b"c"  # chain reload
    os.close(reader)
    assert "uwsgi reloaded: 2 of 2 new worker(s) serving" in capsys.readouterr().out


def test_uwsgi_reload_without_a_master_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = str(tmp_path / "master.fifo")
    os.mkfifo(fifo)  # nobody reads it: no uwsgi master
    path = str(tmp_path / "stats.sock")
    fake = FakeSocket(path, lambda _r: b'{"workers": []}', reads=False)
    try:
        assert entrypoint.main(["saline-entrypoint", "uwsgi-reload", fifo, path]) == 1
    finally:
        fake.close()
    assert "uwsgi does not answer" in capsys.readouterr().out


def test_uwsgi_reload_fails_early_when_the_new_app_keeps_dying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = str(tmp_path / "master.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    respawns = iter(range(100))

    def stats(_req: bytes) -> bytes:
        # Worker 1 is respawned on every look: its app exits while loading.
        n = next(respawns)
        workers = [
            {"id": 1, "pid": 100 + n, "status": "idle", "apps": [], "respawn_count": 1 + n},
            {"id": 2, "pid": 11, "status": "idle", "apps": [{}], "respawn_count": 1},
        ]
        if n == 0:
            workers[0]["pid"] = 10
        return json.dumps({"workers": workers}).encode()

    path = str(tmp_path / "stats.sock")
    fake = FakeSocket(path, stats, reads=False)
    try:
        # A 300 s timeout, and yet it gives up at the third respawn (the message says so).
        assert entrypoint.main(["saline-entrypoint", "uwsgi-reload", fifo, path, "300"]) == 1
    finally:
        fake.close()
        os.close(reader)
    assert "keeps dying" in capsys.readouterr().out


# -- the host side: haproxy's socket straight from the host ------------------------------


def test_at_socket_speaks_to_the_socket_itself(admin_socket: tuple[str, FakeSocket]) -> None:
    path, fake = admin_socket
    hap = HAProxy.at_socket(path, timeout=5)
    assert hap.server("api", "be1.local").state == "UP"
    assert fake.requests == [b"show stat\n"]


def test_at_socket_that_does_not_answer_is_one_error(tmp_path: Path) -> None:
    hap = HAProxy.at_socket(str(tmp_path / "gone.sock"), timeout=5)
    with pytest.raises(HAProxyError, match=r"gone\.sock does not answer"):
        hap.stat()


class RootPodman:
    """podman as :meth:`HAProxy.for_container` sees it: a root folder, and exec."""

    def __init__(self, root: str | None) -> None:
        self.root = root
        self.execs: list[list[str]] = []

    def root_dir(self, name: str) -> str | None:
        return self.root

    def exec(self, name: str, command: list[str], timeout: float = 0) -> str:
        self.execs.append(command)
        return stat("up")


def test_for_container_takes_the_socket_under_the_containers_root(tmp_path: Path) -> None:
    # As deep as podman's overlay folders: longer than a socket address may be (107 bytes).
    root = tmp_path / ("overlay-" + "0" * 64) / "merged"
    run = root / "run" / "haproxy"
    assert len(str(run / "admin.sock")) > 107
    run.mkdir(parents=True)
    folder = os.open(run, os.O_RDONLY | os.O_DIRECTORY)
    try:  # bound where the address is short, as haproxy binds inside its container
        fake = FakeSocket(f"/proc/self/fd/{folder}/admin.sock", lambda _r: stat("up").encode())
    finally:
        os.close(folder)
    try:
        podman = RootPodman(str(root))
        hap = HAProxy.for_container(podman, "lb")  # type: ignore[arg-type]
        assert hap.server("api", "be1.local").state == "UP"
        assert fake.requests == [b"show stat\n"] and podman.execs == []
    finally:
        fake.close()


@pytest.mark.parametrize("root", [None, "/nonexistent-root"])
def test_for_container_falls_back_to_podman_exec(root: str | None) -> None:
    podman = RootPodman(root)
    hap = HAProxy.for_container(podman, "lb")  # type: ignore[arg-type]
    assert hap.server("api", "be1.local").state == "UP"
    assert podman.execs == [["saline-entrypoint", "haproxy", "show", "stat"]]


def appless_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ticks: Callable[[int], int], loads_after: int
) -> int:
    """A chain reload whose new workers have no app for ``loads_after`` looks at the
    stats (then they serve), with ``ticks(look)`` their CPU use at each look."""
    monkeypatch.setattr(entrypoint, "UWSGI_APPLESS_SECONDS", 1.0)
    monkeypatch.setattr(entrypoint, "UWSGI_IDLE_SECONDS", 1.0)
    looks = iter(range(1000))
    now = {"look": 0}

    def stats(_req: bytes) -> bytes:
        n = now["look"] = next(looks)
        apps: list[dict[str, Any]] = [{}] if n == 0 or n > loads_after else []
        pids = (10, 11) if n == 0 else (12, 13)
        return json.dumps(
            {"workers": [{"pid": p, "status": "idle", "apps": apps} for p in pids]}
        ).encode()

    monkeypatch.setattr(entrypoint, "cpu_ticks", lambda pid: ticks(now["look"]))
    fifo = str(tmp_path / "master.fifo")
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    path = str(tmp_path / "stats.sock")
    fake = FakeSocket(path, stats, reads=False)
    try:
        return entrypoint.main(["saline-entrypoint", "uwsgi-reload", fifo, path, "60"])
    finally:
        fake.close()
        os.close(reader)


def test_uwsgi_reload_fails_early_when_new_workers_idle_without_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # App-less and using no CPU: the app failed to load; given up long before 60 s.
    assert appless_reload(tmp_path, monkeypatch, lambda look: 7, loads_after=10_000) == 1
    assert "run without the app: it does not load" in capsys.readouterr().out


def test_uwsgi_reload_waits_for_workers_still_loading_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # App-less for about 2.5 s (5 looks), past the app-less limit, but computing
    # (their CPU time grows at every look): a slow load on a busy machine, not a failure.
    assert appless_reload(tmp_path, monkeypatch, lambda look: look, loads_after=5) == 0
    assert "uwsgi reloaded: 2 of 2 new worker(s) serving" in capsys.readouterr().out


def test_the_images_status_command_reads_the_same_servers_as_saline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `saline-entrypoint haproxy-status` (in the image, no saline import) and the host's
    # parse_stat agree on every captured answer.
    for name in ("up", "states", "draining"):
        mine = entrypoint.haproxy_servers(stat(name))
        theirs: dict[str, dict[str, str]] = {}
        for s in parse_stat(stat(name)):
            theirs.setdefault(s.backend, {})[s.server] = s.status
        assert mine == theirs
    monkeypatch.setattr(entrypoint, "haproxy_ask", lambda words, timeout=10.0: stat("states"))
    code = entrypoint.haproxy_status([])
    view = json.loads(capsys.readouterr().out)
    servers = entrypoint.haproxy_servers(stat("states"))
    assert view["servers"] == servers
    every_proxy_has_one_up = all(
        any(state.startswith("UP") for state in states.values()) for states in servers.values()
    )
    assert view["healthy"] is every_proxy_has_one_up
    assert code == (0 if every_proxy_has_one_up else 1)
    for proxy, states in servers.items():
        up = sum(state.startswith("UP") for state in states.values())
        assert f"{proxy} {up}/{len(states)} UP" in view["summary"]


def test_the_status_command_reports_a_socket_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(words: list[str], timeout: float = 10.0) -> str:
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(entrypoint, "haproxy_ask", refuse)
    assert entrypoint.haproxy_status([]) == 1
    view = json.loads(capsys.readouterr().out)
    assert view["healthy"] is False and "does not answer" in view["summary"]
