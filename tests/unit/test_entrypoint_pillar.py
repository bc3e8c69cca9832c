"""``saline-entrypoint pillar``: the merged pillar, the one way the formulas' checks and
task scripts read it.

The entrypoint runs as a real process (the script the images carry), with the pillar in
two files as on Kubernetes (placeholders + secrets by JSON Pointer) or one as on compose.
The formulas' scripts run against small fakes of the servers they call (keystone,
glance-api, memcached, RabbitMQ's management API), with a ``saline-entrypoint`` on PATH
that is the real script: what they send must be the secrets, never the placeholders.
The servers themselves answer them in the stack test (tests/integration/test_stack.py).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from saline.build import entrypoint
from saline.formulas import FormulaSet
from tools import FORMULAS

ENTRYPOINT = Path(entrypoint.__file__)
PLACEHOLDER = "saline:secret"


def _run(
    argv: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
    )


def _pillar_files(tmp_path: Path, public: Any, secrets: dict[str, Any] | None) -> dict[str, str]:
    """The environment of a container whose pillar is ``public`` (+ ``secrets``)."""
    pillar = tmp_path / "pillar.json"
    pillar.write_text(json.dumps(public))
    env = {"SALINE_PILLAR": str(pillar), "SALINE_PILLAR_SECRETS": ""}
    if secrets is not None:
        path = tmp_path / "secrets.json"
        path.write_text(json.dumps(secrets))
        env["SALINE_PILLAR_SECRETS"] = str(path)
    return env


def installed_command(argv: list[str]) -> list[str]:
    """A formula's command as it runs in its image, run here: python3 is this Python, a
    script the install states put in /usr/local/lib/saline is its source in the formula
    (the install states copy ``files/X.py`` there as ``FORMULA-X-WITH-DASHES.py``)."""
    out = []
    for word in argv:
        if word == "python3":
            word = sys.executable
        elif word.startswith("/usr/local/lib/saline/"):
            found = [
                f
                for f in FORMULAS.glob("*/files/*.py")
                if word.endswith(f"/{f.parts[-3]}-{f.stem.replace('_', '-')}.py")
            ]
            assert len(found) == 1, (word, found)
            word = str(found[0])
        out.append(word)
    return out


def api_check(service: str) -> list[str]:
    """The service's ``api_check`` command from its formula.yml, runnable here."""
    check = FormulaSet([str(FORMULAS)]).services[service][1].api_check
    assert check is not None
    return installed_command(list(check.command))


def vhosts_task() -> list[str]:
    """The command rabbitmq's vhosts task runs (bootstrap.sls's cmd.run), runnable here."""
    sls = (FORMULAS / "rabbitmq" / "bootstrap.sls").read_text()
    line = next(x for x in sls.splitlines() if "with-pillar" in x and "name:" in x)
    return installed_command(line.split("name:", 1)[1].split())


def pillar_cmd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, str(ENTRYPOINT), "pillar", *args], env)


SPLIT = {"k": {"server": {"password": PLACEHOLDER, "port": 1, "users": [{"pw": PLACEHOLDER}]}}}
SECRETS = {"/k/server/password": "s3cret-pw", "/k/server/users/0/pw": "other-s3cret"}
MERGED = {"k": {"server": {"password": "s3cret-pw", "port": 1, "users": [{"pw": "other-s3cret"}]}}}


def test_pillar_prints_the_pillar_with_its_secrets_merged(tmp_path: Path) -> None:
    done = pillar_cmd(_pillar_files(tmp_path, SPLIT, SECRETS))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == MERGED


def test_pillar_without_a_secrets_file_is_the_pillar_file(tmp_path: Path) -> None:
    done = pillar_cmd(_pillar_files(tmp_path, MERGED, None))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == MERGED


def test_pillar_path_prints_that_value_only(tmp_path: Path) -> None:
    env = _pillar_files(tmp_path, SPLIT, SECRETS)
    assert json.loads(pillar_cmd(env, "k:server").stdout) == MERGED["k"]["server"]
    assert json.loads(pillar_cmd(env, "k:server:password").stdout) == "s3cret-pw"
    assert json.loads(pillar_cmd(env, "k:server:port").stdout) == 1


def test_a_path_the_pillar_lacks_exits_1_naming_the_path(tmp_path: Path) -> None:
    done = pillar_cmd(_pillar_files(tmp_path, SPLIT, SECRETS), "k:server:missing")
    assert done.returncode == 1
    assert "k:server:missing" in done.stderr
    assert done.stdout == ""
    # Through a value that is no mapping: the same.
    assert pillar_cmd(_pillar_files(tmp_path, SPLIT, SECRETS), "k:server:port:x").returncode == 1


def test_an_unreadable_pillar_exits_2_and_never_shows_a_value(tmp_path: Path) -> None:
    done = pillar_cmd({"SALINE_PILLAR": str(tmp_path / "none.json")})
    assert done.returncode == 2
    assert "no pillar at" in done.stderr
    # A secret whose path the pillar does not have: the two files do not match.
    env = _pillar_files(tmp_path, SPLIT, {"/k/server/nope": "s3cret-pw"})
    done = pillar_cmd(env)
    assert done.returncode == 2
    assert "/k/server/nope is not in the pillar" in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout
    (tmp_path / "pillar.json").write_text("{not json")
    assert pillar_cmd(env).returncode == 2


def test_pillar_takes_at_most_one_path(tmp_path: Path) -> None:
    env = _pillar_files(tmp_path, SPLIT, SECRETS)
    assert pillar_cmd(env, "k", "k").returncode == 2
    assert pillar_cmd(env, "").returncode == 2


def test_merged_pillar_is_what_configure_gets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One merge for Salt (write_pillar) and for the checks (pillar)."""
    env = _pillar_files(tmp_path, SPLIT, SECRETS)
    monkeypatch.setattr(entrypoint, "PILLAR", env["SALINE_PILLAR"])
    monkeypatch.setattr(entrypoint, "PILLAR_SECRETS", env["SALINE_PILLAR_SECRETS"])
    assert entrypoint.merged_pillar() == MERGED
    work = tmp_path / "work"
    work.mkdir()
    text = (Path(entrypoint.write_pillar(str(work))) / "saline.sls").read_text()
    assert json.loads(text.split("\n", 1)[1]) == MERGED
    monkeypatch.setattr(entrypoint, "PILLAR", str(tmp_path / "none.json"))
    with pytest.raises(entrypoint.PillarError, match="no pillar at"):
        entrypoint.merged_pillar()


# -- the formulas' scripts use it -----------------------------------------------------------

SCRIPTS = sorted(FORMULAS.glob("*/files/*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_no_formula_script_reads_the_pillar_file_itself(script: Path) -> None:
    """On Kubernetes $SALINE_PILLAR holds placeholders: a script that reads the pillar
    takes it on its stdin from the entrypoint (merged), never a secret through argv."""
    text = script.read_text()
    assert "SALINE_PILLAR" not in text
    assert "saline-entrypoint" not in text or "with-pillar" in text  # no pillar of its own


def script_of(command: list[str]) -> Path:
    """The formula script a runnable command runs (its arguments may follow it)."""
    [script] = [Path(w) for w in command if w.endswith(".py")]
    return script


@pytest.mark.parametrize(
    "command",
    [
        *(
            api_check(s)
            for s in (
                "keystone",
                "glance-api",
                "placement-api",
                "memcached",
                "neutron-server",
                "neutron-linuxbridge-agent",
                "neutron-dhcp-agent",
                "neutron-l3-agent",
                "neutron-metadata-agent",
                "horizon",
            )
        ),
        vhosts_task(),
    ],
    ids=lambda c: f"{script_of(c).parts[-3]}/{script_of(c).name}/{c[-1]}",
)
def test_the_checks_and_the_vhosts_task_read_the_pillar_on_stdin(command: list[str]) -> None:
    assert command[:2] == ["saline-entrypoint", "with-pillar"]
    assert "json.load(sys.stdin)" in script_of(command).read_text()


@pytest.fixture
def shim(tmp_path: Path) -> dict[str, str]:
    """A PATH whose ``saline-entrypoint`` is the real script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "saline-entrypoint"
    tool.write_text(f'#!/bin/sh\nexec {sys.executable} {ENTRYPOINT} "$@"\n')
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


Handler = Callable[[str, str, dict[str, str], Any], tuple[int, dict[str, str], Any]]


@pytest.fixture
def http() -> Iterator[Callable[[Handler], tuple[int, list[tuple[str, str, Any]]]]]:
    """A fake HTTP server on loopback answering with ``handler(method, path, headers,
    body)``; returns its port and the requests it saw."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: Handler) -> tuple[int, list[tuple[str, str, Any]]]:
        seen: list[tuple[str, str, Any]] = []

        class H(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                seen.append((self.command, self.path, body))
                code, headers, answer = handler(
                    self.command, self.path, dict(self.headers.items()), body
                )
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1], seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_keystone_check_logs_in_with_the_secret(
    tmp_path: Path, shim: dict[str, str], http: Any
) -> None:
    def keystone(method: str, path: str, headers: dict[str, str], body: Any) -> Any:
        if method == "POST" and path == "/v3/auth/tokens":
            password = body["auth"]["identity"]["password"]["user"]["password"]
            if password != "admin-s3cret":
                return 401, {}, {"error": "bad password"}
            return 201, {"X-Subject-Token": "tok"}, {"token": {"project": {"name": "admin"}}}
        if method == "GET" and headers.get("X-Auth-Token") == "tok":
            return 200, {}, {"token": {}}
        return 404, {}, None

    port, seen = http(keystone)
    server = {
        "bind": {"address": "0.0.0.0", "port": port},
        "admin_name": "admin",
        "admin_password": PLACEHOLDER,
        "admin_project": "admin",
    }
    env = _pillar_files(
        tmp_path,
        {"keystone": {"server": server}},
        {"/keystone/server/admin_password": "admin-s3cret"},
    )
    done = _run(api_check("keystone"), {**env, **shim})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated" in done.stdout
    assert "admin-s3cret" not in done.stdout + done.stderr
    assert [(m, p) for m, p, _ in seen] == [("POST", "/v3/auth/tokens"), ("GET", "/v3/auth/tokens")]
    # Without the secrets file the placeholder goes out, and keystone refuses it.
    env["SALINE_PILLAR_SECRETS"] = ""
    done = _run(api_check("keystone"), {**env, **shim})
    assert done.returncode == 1 and "HTTP 401" in done.stdout


def test_the_glance_check_gets_its_token_with_the_secret(
    tmp_path: Path, shim: dict[str, str], http: Any
) -> None:
    def api(method: str, path: str, headers: dict[str, str], body: Any) -> Any:
        if method == "POST" and path == "/v3/auth/tokens":
            if body["auth"]["identity"]["password"]["user"]["password"] != "glance-s3cret":
                return 401, {}, None
            return (
                201,
                {"X-Subject-Token": "tok"},
                {"token": {"project": {"id": "p1", "name": "service"}}},
            )
        if path.startswith("/v2/images") and headers.get("X-Auth-Token") == "tok":
            return 200, {}, {"images": []}
        return 401, {}, None

    port, _seen = http(api)
    identity = {
        "auth_url": f"http://127.0.0.1:{port}/v3",
        "user": "glance",
        "password": PLACEHOLDER,
        "tenant": "service",
    }
    server = {"bind": {"address": "127.0.0.1", "port": port}, "identity": identity}
    env = _pillar_files(
        tmp_path,
        {"glance": {"server": server}},
        {"/glance/server/identity/password": "glance-s3cret"},
    )
    done = _run(api_check("glance-api"), {**env, **shim})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "/v2/images?limit=1: images (0 shown) with a token" in done.stdout
    assert "glance-s3cret" not in done.stdout


def test_the_memcached_check_reads_the_port_from_the_pillar(
    tmp_path: Path, shim: dict[str, str]
) -> None:
    class Stats(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(100)
            self.request.sendall(b"STAT uptime 7\r\nSTAT curr_items 0\r\nEND\r\n")

    with socketserver.TCPServer(("127.0.0.1", 0), Stats) as server:
        threading.Thread(target=server.handle_request, daemon=True).start()
        port = server.server_address[1]
        env = _pillar_files(
            tmp_path, {"memcached": {"server": {"bind": {"address": "0.0.0.0", "port": port}}}}, {}
        )
        done = _run(api_check("memcached"), {**env, **shim})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up 7 s" in done.stdout


def test_a_check_without_a_pillar_says_so_in_one_line(tmp_path: Path, shim: dict[str, str]) -> None:
    env = {"SALINE_PILLAR": str(tmp_path / "none.json"), **shim}
    done = _run(api_check("memcached"), env)
    assert done.returncode == 2  # the entrypoint's: the check never ran
    assert "no pillar at" in done.stderr and done.stdout == ""


def _neutron(agents: list[dict[str, Any]], port: list[int]) -> Handler:
    """keystone (a catalog whose network endpoint is this server) and neutron's agent
    list, on one fake; ``port`` holds the fake's own port once it is known."""

    def api(method: str, path: str, headers: dict[str, str], body: Any) -> Any:
        if method == "POST" and path == "/v3/auth/tokens":
            if body["auth"]["identity"]["password"]["user"]["password"] != "neutron-s3cret":
                return 401, {}, None
            url = f"http://127.0.0.1:{port[0]}"
            catalog = [
                {"type": "image", "endpoints": [{"interface": "internal", "url": "x"}]},
                {
                    "type": "network",
                    "endpoints": [
                        {"interface": "public", "region_id": "RegionOne", "url": "http://no"},
                        {"interface": "internal", "region_id": "RegionOne", "url": url},
                    ],
                },
            ]
            return 201, {"X-Subject-Token": "tok"}, {"token": {"catalog": catalog}}
        if path.startswith("/v2.0/agents?") and headers.get("X-Auth-Token") == "tok":
            return 200, {}, {"agents": agents}
        return 401, {}, None

    return api


def test_the_neutron_agent_check_asks_neutron_for_this_nodes_agent(
    tmp_path: Path, shim: dict[str, str], http: Any
) -> None:
    agents: list[dict[str, Any]] = []
    port: list[int] = []
    found, seen = http(_neutron(agents, port))
    port.append(found)
    identity = {
        "auth_url": f"http://127.0.0.1:{found}/v3",
        "user": "neutron",
        "password": PLACEHOLDER,
        "tenant": "service",
        "region": "RegionOne",
    }
    env = _pillar_files(
        tmp_path,
        {"neutron": {"gateway": {"host": "cmp01", "identity": identity}}},
        {"/neutron/gateway/identity/password": "neutron-s3cret"},
    )
    check = api_check("neutron-l3-agent")
    # Not registered yet.
    done = _run(check, {**env, **shim})
    assert done.returncode == 1
    assert "knows no neutron-l3-agent on cmp01" in done.stdout
    # The query names this node and the agent's binary, at the internal endpoint.
    assert seen[-1][:2] == ("GET", "/v2.0/agents?host=cmp01&binary=neutron-l3-agent")
    agents.append(
        {
            "alive": False,
            "admin_state_up": True,
            "heartbeat_timestamp": "then",
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        }
    )
    done = _run(check, {**env, **shim})
    assert done.returncode == 1 and "not alive (last report then)" in done.stdout
    agents[0]["alive"] = True
    done = _run(check, {**env, **shim})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "neutron-l3-agent on cmp01: alive in neutron's agent list" in done.stdout
    assert "neutron-s3cret" not in done.stdout + done.stderr
    # A row whose agent started before this "container" (here: this machine's PID 1)
    # is the previous agent's: alive on its old heartbeats, not this one's.
    agents[0]["started_at"] = "2001-01-01 00:00:00"
    done = _run(check, {**env, **shim})
    assert done.returncode == 1
    assert "has not reported since this container started" in done.stdout
    agents[0]["admin_state_up"] = False
    done = _run(check, {**env, **shim})
    assert done.returncode == 1 and "administratively down" in done.stdout


# -- RabbitMQ's vhosts task ---------------------------------------------------------------

VHOSTS = FORMULAS / "rabbitmq" / "files" / "vhosts.py"


def _rabbit_pillar(port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "rabbitmq": {
            "server": {
                "bind": {"address": "0.0.0.0", "port": 5672},
                "admin": {"name": "admin", "password": PLACEHOLDER, "host": host, "port": port},
                "host": {
                    "/openstack": {
                        "enabled": True,
                        "user": "openstack",
                        "password": PLACEHOLDER,
                        "policies": [
                            {
                                "name": "HA",
                                "pattern": "^(?!amq\\.).*",
                                "definition": '{"ha-mode": "all"}',
                            }
                        ],
                    },
                    "/off": {"enabled": False, "user": "x", "password": "y"},
                },
            }
        }
    }


RABBIT_SECRETS = {
    "/rabbitmq/server/admin/password": "admin-s3cret",
    "/rabbitmq/server/host/~1openstack/password": "rabbit-s3cret",
}


def _rabbit(state: dict[str, Any]) -> Handler:
    """A management API that keeps what it is told (PUT), as RabbitMQ does."""

    def api(method: str, path: str, headers: dict[str, str], body: Any) -> Any:
        auth = base64.b64decode(headers.get("Authorization", "Basic ")[6:]).decode()
        if auth != "admin:admin-s3cret":
            return 401, {}, {"error": "not_authorised", "reason": "Login failed"}
        if method == "GET" and path == "/api/overview":
            return 200, {}, {"rabbitmq_version": "3.10.8"}
        if method == "PUT":
            created = path not in state
            state[path] = body
            return (201 if created else 204), {}, None
        return 404, {}, None

    return api


def test_the_vhosts_task_puts_every_enabled_host_with_the_secrets(
    tmp_path: Path, shim: dict[str, str], http: Any
) -> None:
    state: dict[str, Any] = {}
    port, seen = http(_rabbit(state))
    env = {**_pillar_files(tmp_path, _rabbit_pillar(port), RABBIT_SECRETS), **shim}
    done = _run(vhosts_task(), env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert state == {
        "/api/vhosts/%2Fopenstack": {},
        "/api/permissions/%2Fopenstack/admin": {"configure": ".*", "write": ".*", "read": ".*"},
        "/api/users/openstack": {"password": "rabbit-s3cret", "tags": ""},
        "/api/permissions/%2Fopenstack/openstack": {"configure": ".*", "write": ".*", "read": ".*"},
        "/api/policies/%2Fopenstack/HA": {
            "pattern": "^(?!amq\\.).*",
            "definition": {"ha-mode": "all"},
            "apply-to": "all",
            "priority": 0,
        },
    }
    assert "virtual host /openstack: user openstack, 1 policies" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr
    # Again: the same calls, the same state (PUTs of whole objects).
    before, calls = dict(state), list(seen)
    assert _run(vhosts_task(), env).returncode == 0
    assert state == before and seen[len(calls) :] == calls


def test_the_vhosts_task_fails_at_once_when_the_admin_is_refused(
    tmp_path: Path, shim: dict[str, str], http: Any
) -> None:
    state: dict[str, Any] = {}
    port, seen = http(_rabbit(state))
    secrets = {**RABBIT_SECRETS, "/rabbitmq/server/admin/password": "wrong-s3cret"}
    env = {**_pillar_files(tmp_path, _rabbit_pillar(port), secrets), **shim}
    done = _run(vhosts_task(), env)
    assert done.returncode == 1
    assert "GET /api/overview: HTTP 401 Login failed" in done.stdout
    assert len(seen) == 1 and not state
    assert "s3cret" not in done.stdout + done.stderr


def test_the_vhosts_task_reaches_the_bind_address_unless_told_a_host() -> None:
    spec = importlib.util.spec_from_file_location("saline_test_vhosts", VHOSTS)
    assert spec is not None and spec.loader is not None
    vhosts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vhosts)
    bind = {"address": "0.0.0.0", "port": 5672}
    assert vhosts.api_url({"bind": bind, "admin": {}}) == "http://127.0.0.1:15672/api"
    assert vhosts.api_url({"bind": {"address": "::"}, "admin": {"port": 1}}) == (
        "http://127.0.0.1:1/api"
    )
    assert vhosts.api_url({"bind": {"address": "10.0.0.2"}, "admin": {}}) == (
        "http://10.0.0.2:15672/api"
    )
    assert vhosts.api_url({"bind": bind, "admin": {"host": "rabbitmq"}}) == (
        "http://rabbitmq:15672/api"
    )
    assert vhosts.api_url({"bind": bind, "admin": {"host": "fd00::1"}}) == (
        "http://[fd00::1]:15672/api"
    )


# -- with-pillar ------------------------------------------------------------------------------


def test_with_pillar_gives_the_command_that_value_on_stdin(tmp_path: Path) -> None:
    env = _pillar_files(tmp_path, SPLIT, SECRETS)
    echo = [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read()); sys.exit(3)"]
    done = _run([sys.executable, str(ENTRYPOINT), "with-pillar", "k:server", *echo], env)
    assert done.returncode == 3  # the command's own
    assert json.loads(done.stdout) == MERGED["k"]["server"]


def test_with_pillar_refuses_a_missing_path_or_command(tmp_path: Path) -> None:
    env = _pillar_files(tmp_path, SPLIT, SECRETS)
    run = [sys.executable, str(ENTRYPOINT), "with-pillar"]
    done = _run([*run, "k:nope", "true"], env)
    assert done.returncode == 1 and "k:nope" in done.stderr and "s3cret" not in done.stderr
    assert _run([*run, "k:server"], env).returncode == 2
    done = _run([*run, "k:server", str(tmp_path / "no-such-command")], env)
    assert done.returncode == 127 and "cannot run" in done.stderr


def test_registration_takes_the_service_project_another_task_just_made(
    http: Callable[[Handler], tuple[int, list[tuple[str, str, Any]]]],
) -> None:
    """The cloud's services register in parallel, each finding or creating the shared
    service project: the one that loses the race (409 Conflict) takes the other's."""
    made: dict[str, Any] = {}

    def keystone(method: str, path: str, headers: dict[str, str], body: Any) -> Any:
        if method == "POST" and path == "/v3/auth/tokens":
            token = {
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "project": {"id": "a1", "name": "admin", "domain": {"id": "default"}},
                "user": {"id": "u0", "name": "admin", "domain": {"id": "default"}},
                "catalog": [],
                "methods": ["password"],
            }
            return 201, {"X-Subject-Token": "tok"}, {"token": token}
        if path.rstrip("/") == "/v3":  # the script's wait until keystone answers
            return 200, {}, {"version": {"id": "v3.14"}}
        kind = path.split("?")[0].strip("/").split("/")[1][:-1]  # /v3/users?... -> user
        if method == "GET" and "?" in path:
            if kind == "project" and "project" not in made:
                made["project"] = {"id": "p1", "name": "service"}  # another task's, just now
                return 200, {}, {"projects": []}
            found = made.get(kind)
            return 200, {}, {f"{kind}s": [found] if found else []}
        if method == "POST" and kind == "project":
            return 409, {}, {"error": {"code": 409, "message": "Conflict"}}
        if method == "POST":
            made[kind] = {"id": f"{kind}1", **body[kind]}
            return 201, {}, {kind: made[kind]}
        return 204, {}, None

    port, seen = http(keystone)
    env = {
        "PATH": os.environ["PATH"],
        "SERVICE_USER": "nova",
        "SERVICE_PASSWORD": "pw",
        "SERVICE_PROJECT": "service",
        "SERVICE_TYPE": "compute",
        "SERVICE_NAME": "nova",
        "SERVICE_URL": "http://10.0.0.1:8774/v2.1",
        "SERVICE_REGION": "RegionOne",
        "SERVICE_ROLES": "service",
        "OS_AUTH_URL": f"http://127.0.0.1:{port}/v3",
        "OS_USERNAME": "admin",
        "OS_PASSWORD": "admin-pw",
        "OS_PROJECT_NAME": "admin",
    }
    done = subprocess.run(
        [sys.executable, str(FORMULAS / "openstack" / "files" / "register.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nova registered: user nova, role, service compute, 3 endpoints" in done.stdout
    # The admin and service roles given in the project another task made.
    grants = [p for m, p, _ in seen if m == "PUT"]
    assert len(grants) == 2 and all(g.startswith("/v3/projects/p1/users/") for g in grants)
