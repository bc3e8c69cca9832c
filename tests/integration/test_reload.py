"""Reloads and haproxy's runtime API for real, on the haproxy image the project builds.

Two small HTTP backends and one haproxy container on a podman network of their own (no
stack). A client loop inside haproxy's container counts failed requests while the tests
drain, stop, restart and re-enable a backend (saline.runtime.haproxy), and while haproxy
reloads new configurations (`saline-entrypoint haproxy-reload`): no request may fail.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from saline.build.builder import Builder
from saline.build.graph import plan_images
from saline.formulas import FormulaSet
from saline.images import package_resolver
from saline.runtime.haproxy import HAProxy, servers_for
from saline.runtime.podman import Podman, PodmanError
from saline.settings import resolve
from tools import FORMULAS

pytestmark = pytest.mark.integration

BACKEND = """
import http.server, sys, time
NAME = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        body = NAME.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""

# THREADS clients, each a new connection per request, for SECONDS: JSON counts of answers
# by backend, failures by reason.
CLIENT = """
import collections, json, sys, threading, time, urllib.request
url, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
lock = threading.Lock()
served, failed = collections.Counter(), collections.Counter()
def work():
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                who = r.read().decode()
            with lock:
                served[who] += 1
        except Exception as e:
            with lock:
                failed[type(e).__name__ + ": " + str(e)[:60]] += 1
ts = [threading.Thread(target=work) for _ in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({"served": served, "failed": failed}))
"""


@pytest.fixture(scope="module")
def podman() -> Podman:
    from integration.conftest import saline_podman
    from tools import require_tools

    require_tools("podman")
    return saline_podman()


@pytest.fixture(scope="module")
def haproxy_image(podman: Podman) -> str:
    """The haproxy image of the shipped formula (built if missing: base, Salt, haproxy)."""
    formula, spec = FormulaSet([str(FORMULAS)]).services["haproxy"]
    settings = resolve({}, os.environ, os.getcwd())
    specs = plan_images({"haproxy": (formula, spec)}, package_resolver(settings))
    builder = Builder(
        podman,
        None,
        lambda _msg: None,
        apt_cache_dir=os.path.join(settings.state_dir, "apt-cache"),
        debian=settings.debian,
    )
    builder.ensure(specs)
    return specs[-1].ref(None)


@dataclass
class Lab:
    podman: Podman
    haproxy: str  # its container
    backends: dict[str, str]  # server name -> container
    addresses: dict[str, str]  # server name -> address
    pillar_file: Path
    pillar: dict[str, Any]

    def write_pillar(self) -> None:
        # In place: the container has this very file mounted.
        with open(self.pillar_file, "r+") as fh:
            fh.seek(0)
            fh.truncate()
            json.dump(self.pillar, fh)

    def exec(self, *command: str, timeout: float = 120) -> str:
        return self.podman.exec(self.haproxy, list(command), timeout=timeout)

    def api(self) -> HAProxy:
        return HAProxy.in_container(self.podman, self.haproxy)


class Clients:
    """The client loop running in haproxy's container, in a thread of the test."""

    def __init__(self, lab: Lab, path: str, seconds: float, threads: int) -> None:
        self.result: dict[str, Any] = {}
        url = f"http://127.0.0.1:5000{path}"
        args = ["python3", "/saline-test/client.py", url, str(seconds), str(threads)]

        def run() -> None:
            self.result = json.loads(lab.exec(*args, timeout=seconds + 120))

        self.thread = threading.Thread(target=run)
        self.thread.start()

    def join(self) -> dict[str, Any]:
        self.thread.join()
        return self.result


def _address(podman: Podman, name: str) -> str:
    out = podman.cli(
        ["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name]
    )
    return out.strip()


@pytest.fixture
def lab(podman: Podman, haproxy_image: str, tmp_path: Path) -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:8]
    network = f"saline-test-net-{tag}"
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "backend.py").write_text(BACKEND)
    (scripts / "client.py").write_text(CLIENT)
    mount = f"{scripts}:/saline-test:ro,Z"
    names: list[str] = []
    podman.cli(["network", "create", network])
    try:
        backends, addresses = {}, {}
        for server in ("be1", "be2"):
            # As in a stack: a node container holds the address, the service joins its
            # network namespace (a replaced service keeps the address).
            node = f"saline-test-node-{server}-{tag}"
            names.append(node)
            run = ["run", "-d", "--name", node, "--network", network, "--entrypoint", "sleep"]
            podman.cli([*run, haproxy_image, "infinity"])
            addresses[server] = _address(podman, node)
            name = f"saline-test-{server}-{tag}"
            names.append(name)
            run = ["run", "-d", "--name", name, "--network", f"container:{node}", "-v", mount]
            podman.cli(
                [*run, "--entrypoint", "python3", haproxy_image, "/saline-test/backend.py", server]
            )
            backends[server] = name
        listen = {
            "binds": [{"address": "0.0.0.0", "port": 5000}],
            "port": 8080,
            "health_check": "/",
            "servers": addresses,
        }
        pillar = {
            "haproxy": {
                "proxy": {
                    "enabled": True,
                    "mode": "http",
                    "timeout": {"client": "60s", "server": "60s"},
                    "listen": {"api": listen},
                }
            }
        }
        pillar_file = tmp_path / "pillar.json"
        pillar_file.write_text(json.dumps(pillar))
        name = f"saline-test-haproxy-{tag}"
        names.append(name)
        run = ["run", "-d", "--name", name, "--network", network, "-v", mount]
        podman.cli([*run, "-v", f"{pillar_file}:/run/saline/pillar.json:ro,Z", haproxy_image])
        lab = Lab(podman, name, backends, addresses, pillar_file, pillar)
        deadline = time.monotonic() + 120
        while True:
            try:
                api = lab.api()
                for server in backends:
                    api.wait_up("api", server, timeout=30)
                break
            except PodmanError:  # the admin socket is not there yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield lab
    finally:
        for name in reversed(names):
            podman.remove(name)
        podman.cli(["network", "rm", "-f", network])


def test_the_pillar_names_each_instances_server(lab: Lab) -> None:
    listen = lab.pillar["haproxy"]["proxy"]["listen"]
    assert servers_for(listen, lab.addresses["be1"], 8080) == [("api", "be1")]
    assert servers_for(listen, lab.addresses["be1"], 9999) == []
    assert set(lab.api().servers("api")) == {"be1", "be2"}


def test_drain_replace_ready_loses_no_request(lab: Lab) -> None:
    api = lab.api()
    clients = Clients(lab, "/", seconds=25, threads=4)
    slow = Clients(lab, "/slow", seconds=25, threads=2)
    time.sleep(2)
    # One instance out: drained, its sessions finish, then it is stopped and started.
    api.drain("api", "be1")
    assert api.server("api", "be1").state == "DRAIN"
    assert api.wait_drained("api", "be1", timeout=20).sessions == 0
    lab.podman.cli(["stop", "-t", "5", lab.backends["be1"]])
    time.sleep(2)
    lab.podman.cli(["start", lab.backends["be1"]])
    time.sleep(1)
    api.ready("api", "be1")
    assert api.wait_up("api", "be1", timeout=30).state == "UP"
    # The other one in maintenance and back.
    api.maint("api", "be2")
    assert api.server("api", "be2").state == "MAINT"
    api.ready("api", "be2")
    api.wait_up("api", "be2", timeout=30)
    done, done_slow = clients.join(), slow.join()
    print(f"drain, replace, ready: {done} {done_slow}")
    assert done["failed"] == {} and done_slow["failed"] == {}
    assert done["served"]["be1"] > 0 and done["served"]["be2"] > 0
    # Both serve again.
    after = Clients(lab, "/", seconds=2, threads=2).join()
    assert after["failed"] == {} and set(after["served"]) == {"be1", "be2"}


def test_reload_is_hitless_keeps_server_states_and_takes_the_new_config(lab: Lab) -> None:
    api = lab.api()
    listen = lab.pillar["haproxy"]["proxy"]["listen"]
    clients = Clients(lab, "/", seconds=40, threads=4)
    slow = Clients(lab, "/slow", seconds=40, threads=2)
    time.sleep(2)
    api.drain("api", "be2")
    for i in range(4):
        if i % 2 == 0:
            listen["extra"] = {
                "binds": [{"address": "0.0.0.0", "port": 5001}],
                "port": 8080,
                "health_check": "/",
                "servers": {"be1": lab.addresses["be1"]},
            }
        else:
            del listen["extra"]
        lab.write_pillar()
        lab.exec("saline-entrypoint", "configure")
        assert "haproxy reloaded" in lab.exec("saline-entrypoint", "haproxy-reload")
        backends = {s.backend for s in api.stat()}
        assert ("extra" in backends) == (i % 2 == 0)
        # A drained server stays drained through a reload (saved server states).
        assert api.server("api", "be2").state == "DRAIN"
    api.ready("api", "be2")
    done, done_slow = clients.join(), slow.join()
    print(f"4 reloads: {done} {done_slow}")
    assert done["failed"] == {} and done_slow["failed"] == {}
    assert sum(done["served"].values()) > 100 and sum(done_slow["served"].values()) > 10


def test_an_invalid_configuration_reloads_nothing(lab: Lab) -> None:
    before = lab.exec("saline-entrypoint", "haproxy", "show", "info")
    pid = next(line for line in before.splitlines() if line.startswith("Pid:"))
    lab.exec("sh", "-c", "echo '    no-such-keyword 1' >> /etc/haproxy/haproxy.cfg")
    with pytest.raises(PodmanError) as e:
        lab.exec("saline-entrypoint", "haproxy-reload")
    assert e.value.returncode == 1
    assert "is invalid; haproxy keeps its running configuration" in e.value.output
    assert "no-such-keyword" in e.value.output
    after = lab.exec("saline-entrypoint", "haproxy", "show", "info")
    assert pid in after.splitlines()
    assert Clients(lab, "/", seconds=1, threads=1).join()["failed"] == {}


def test_the_api_check_is_the_health_frontend(lab: Lab) -> None:
    spec = FormulaSet([str(FORMULAS)]).services["haproxy"][1]
    assert spec.api_check is not None
    lab.exec(*spec.api_check.command)  # exit 0, or PodmanError
    lab.api().maint("api", "be1")
    lab.api().maint("api", "be2")
    with pytest.raises(PodmanError):
        lab.exec(*spec.api_check.command)


# -- keystone: a chain reload of uwsgi takes a new keystone.conf without a failed request --

TOKENS = """
import collections, datetime, json, os, sys, threading, time, urllib.request
base, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
body = open("/saline-test/token.json").read().encode()
def token():
    req = urllib.request.Request(base + "/v3/auth/tokens", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        t = json.load(r)["token"]
    when = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return round((when(t["expires_at"]) - when(t["issued_at"])).total_seconds())
if seconds == 0:
    print(json.dumps({"lifetime": token()}))
    sys.exit()
lock = threading.Lock()
served, failed = collections.Counter(), collections.Counter()
def work(kind):
    end = time.monotonic() + seconds
    # Until the test says stop (a file in the mounted folder), at most SECONDS.
    while time.monotonic() < end and not os.path.exists("/saline-test/stop"):
        try:
            if kind == "token":
                token()
            else:
                urllib.request.urlopen(base + "/v3", timeout=60).read()
            with lock:
                served[kind] += 1
        except Exception as e:
            with lock:
                failed[type(e).__name__ + ": " + str(e)[:60]] += 1
ts = [threading.Thread(target=work, args=(k,)) for k in ["token", "get"] * threads]
[t.start() for t in ts]
[t.join() for t in ts]
print(json.dumps({"served": served, "failed": failed}))
"""


@pytest.fixture(scope="module")
def openstack_images(podman: Podman) -> dict[str, str]:
    """The images of mariadb, memcached and keystone (built if missing)."""
    formulas = FormulaSet([str(FORMULAS)])
    wanted = {n: formulas.services[n] for n in ("mariadb", "memcached", "keystone")}
    settings = resolve({}, os.environ, os.getcwd())
    specs = plan_images(wanted, package_resolver(settings))
    builder = Builder(
        podman,
        None,
        lambda _msg: None,
        apt_cache_dir=os.path.join(settings.state_dir, "apt-cache"),
        debian=settings.debian,
    )
    builder.ensure(specs)
    return {s.name: s.ref(None) for s in specs if s.name in wanted}


def _until(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except PodmanError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout:g} s") from None
            time.sleep(2)


def test_keystone_reload_serves_every_request_and_the_new_config(
    podman: Podman, openstack_images: dict[str, str], tmp_path: Path
) -> None:
    from saline.configs import node_services
    from saline.model import load_model
    from tools import EXAMPLE

    formulas = FormulaSet([str(FORMULAS)])
    keystone = formulas.services["keystone"][1]
    assert keystone.reload is not None and keystone.reload.command is not None
    assert keystone.api_check is not None
    model = load_model(str(EXAMPLE))

    def pillar_of(service: str) -> dict[str, Any]:
        """The pillar of the first node of the example that runs ``service``."""
        for node in model.node_names():
            if any(s.name == service for s in node_services(model, formulas, node)):
                return model.node(node).parameters
        raise AssertionError(f"the example runs no {service}")

    db_pillar, pillar = pillar_of("mariadb"), pillar_of("keystone")
    tag = uuid.uuid4().hex[:8]
    network = f"saline-test-net-{tag}"
    files = tmp_path / "files"
    files.mkdir()
    (files / "tokens.py").write_text(TOKENS)
    (files / "db.json").write_text(json.dumps(db_pillar))
    mount = f"{files}:/saline-test:ro,Z"
    names = {s: f"saline-test-{s}-{tag}" for s in ("mariadb", "memcached", "keystone")}

    def run(service: str, pillar_file: str) -> None:
        args = ["run", "-d", "--name", names[service], "--network", network, "-v", mount]
        pillar_mount = f"{files / pillar_file}:/run/saline/pillar.json:ro,Z"
        podman.cli([*args, "-v", pillar_mount, openstack_images[service]])

    def exec_(service: str, *command: str, timeout: float = 300) -> str:
        return podman.exec(names[service], list(command), timeout=timeout)

    podman.cli(["network", "create", network])
    try:
        run("mariadb", "db.json")
        server = pillar["keystone"]["server"]
        (files / "mc.json").write_text(json.dumps(pillar))
        run("memcached", "mc.json")
        db, mc = (_address(podman, names[s]) for s in ("mariadb", "memcached"))
        server["database"]["host"] = db
        server["cache"]["members"] = [{"host": mc, "port": 11211}]
        server["tokens"]["expiration"] = 3600
        ks_file = files / "keystone.json"
        ks_file.write_text(json.dumps(pillar))
        auth = {"user": {"name": server["admin_name"], "domain": {"id": "default"}}}
        auth["user"]["password"] = server["admin_password"]
        scope = {"project": {"name": server["admin_project"], "domain": {"id": "default"}}}
        body = {"auth": {"identity": {"methods": ["password"], "password": auth}, "scope": scope}}
        (files / "token.json").write_text(json.dumps(body))
        _until("mariadb serves", lambda: exec_("mariadb", "mariadb-admin", "ping"), 120)
        exec_("mariadb", "saline-entrypoint", "bootstrap", "databases")
        run("keystone", "keystone.json")
        # The container configures itself, then starts uwsgi (its stats socket appears).
        # A task's own configure run beside the container's would race it on the same
        # files (seen: EEXIST on /etc/keystone/credential-keys): on the stack tasks run
        # in containers of their own, here they share the service's.
        _until(
            "keystone configured and uwsgi started",
            lambda: exec_("keystone", "test", "-S", "/var/lib/keystone/uwsgi-stats.sock"),
            300,
        )
        for task in keystone.bootstrap:
            exec_("keystone", "saline-entrypoint", "bootstrap", task.name)
        _until(
            "keystone's API check passes",
            lambda: exec_("keystone", *keystone.api_check.command),
            300,
        )
        for service in ("mariadb", "memcached"):
            check = formulas.services[service][1].api_check
            assert check is not None
            exec_(service, *check.command)

        ks = _address(podman, names["keystone"])
        base = f"http://{ks}:5000"
        tokens = ["python3", "/saline-test/tokens.py", base]
        assert json.loads(exec_("memcached", *tokens, "0", "0"))["lifetime"] == 3600
        result: dict[str, Any] = {}

        def clients() -> None:
            result.update(json.loads(exec_("memcached", *tokens, "75", "2", timeout=400)))

        loop = threading.Thread(target=clients)
        loop.start()
        time.sleep(5)
        server["tokens"]["expiration"] = 7200
        with open(ks_file, "r+") as fh:  # in place: the container has this file mounted
            fh.seek(0)
            fh.truncate()
            json.dump(pillar, fh)
        exec_("keystone", "saline-entrypoint", "configure")
        answer = exec_("keystone", *keystone.reload.command, timeout=400)
        assert "uwsgi reloaded" in answer
        assert json.loads(exec_("memcached", *tokens, "0", "0"))["lifetime"] == 7200
        time.sleep(5)  # the clients go on a while with the reloaded workers
        (files / "stop").touch()
        loop.join()
        print(f"keystone reload ({' '.join(keystone.reload.command[2:3])}): {result}")
        assert result["failed"] == {}, result
        assert result["served"]["token"] > 10 and result["served"]["get"] > 10
        exec_("keystone", *keystone.api_check.command)
    finally:
        for name in reversed(names.values()):
            podman.remove(name)
        podman.cli(["network", "rm", "-f", network])
