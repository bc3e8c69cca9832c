"""The horizon formula's pure parts: what it renders for the example (its controllers run
the dashboard: classes/cluster/openstack/cloud), haproxy's listener for it, and its API
check (a real login through the form) against a small fake of Horizon's login pages.

The real dashboard (Debian's openstack-dashboard under uwsgi, keystone behind it, a
browser) is tests/integration/cloud/test_dashboard.py.
"""

from __future__ import annotations

import ast
import http.cookies
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from saline.configs import render_nodes
from saline.formulas import FormulaSet
from saline.model import load_model
from tools import EXAMPLE, FORMULAS, deployment
from unit.test_entrypoint_pillar import PLACEHOLDER, _pillar_files, _run, api_check, shim

__all__ = ["shim"]  # a fixture of test_entrypoint_pillar, used here

SHIPPED = FormulaSet([str(FORMULAS)])
SNIPPET = "/etc/openstack-dashboard/local_settings.d/_9000_saline.py"
UWSGI = "/etc/openstack-dashboard/horizon-uwsgi.ini"
CONTROLLERS = ("ctl01.openstack.local", "ctl02.openstack.local")
PUBLIC = "10.10.0.40"
#: The example's horizon_secret_key (classes/cluster/openstack/secrets.yml).
SECRET_KEY = "oJ3x5mRk2vQ8tZ1bY7nW4cL9fH6dS0gA3pE2uK8iV5rT1yN7qM"
#: What Horizon's offline compression context is made of (openstack_dashboard/settings.py
#: HORIZON_COMPRESS_OFFLINE_CONTEXT_BASE, horizon.themes.offline_context): a snippet that
#: set one would need the static files compressed again at every start.
OFFLINE_CONTEXT = {
    "WEBROOT",
    "STATIC_URL",
    "STATIC_ROOT",
    "HORIZON_CONFIG",
    "NG_TEMPLATE_CACHE_AGE",
    "DEBUG",
    "AVAILABLE_THEMES",
    "DEFAULT_THEME",
    "SELECTABLE_THEMES",
    "THEME_COLLECTION_DIR",
    "COMPRESS_OFFLINE",
    "COMPRESS_ENABLED",
}


@pytest.fixture(scope="module")
def model() -> Path:
    return EXAMPLE


@pytest.fixture(scope="module")
def rendered(model: Path) -> dict[str, dict[str, dict[str, str]]]:
    """node -> service -> path -> content."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for node, configs in render_nodes(load_model(str(model)), SHIPPED).items():
        out[node] = {sc.service.name: {f.path: f.content for f in sc.files} for sc in configs}
    return out


def settings(text: str) -> dict[str, Any]:
    """The snippet's assignments: each a literal (Horizon execs the snippet and, when it
    raises, logs it and goes on without it: a snippet must not be able to fail)."""
    out: dict[str, Any] = {}
    for stmt in ast.parse(text).body:
        assert isinstance(stmt, ast.Assign) and len(stmt.targets) == 1, ast.dump(stmt)
        target = stmt.targets[0]
        assert isinstance(target, ast.Name), ast.dump(stmt)
        out[target.id] = ast.literal_eval(stmt.value)
    return out


def test_the_dashboard_runs_on_both_controllers_with_memcached_first(model: Path) -> None:
    d = deployment(model, [str(FORMULAS)])
    assert {"horizon-ctl01", "horizon-ctl02"} <= set(d.instances)
    assert "horizon" in d.replicated
    spec = SHIPPED.services["horizon"][1]
    assert spec.depends == ["memcached"] and spec.user == "www-data"
    # A failed login would be the login page again: the health check wants a 200 only.
    assert spec.health.http is not None and spec.health.http.status == [200]


def test_the_settings_snippet_is_literals_that_win_over_debians(
    rendered: dict[str, dict[str, dict[str, str]]],
) -> None:
    values = [settings(rendered[n]["horizon"][SNIPPET]) for n in CONTROLLERS]
    one, two = values
    assert one["OPENSTACK_KEYSTONE_URL"] == f"http://{PUBLIC}:5000/v3"
    # The same key on every instance: a session one signs, the other reads.
    assert one["SECRET_KEY"] == two["SECRET_KEY"] == SECRET_KEY
    # Debian's _0006 sets a per-process LocMemCache: the shared memcached instead.
    assert one["CACHES"]["default"]["BACKEND"].endswith("memcached.MemcachedCache")
    assert one["CACHES"]["default"]["LOCATION"] == ["10.10.0.30:11211"]
    assert one["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"
    # haproxy's address, the node's own (health checks) and loopback (the API check).
    assert one["ALLOWED_HOSTS"] == [PUBLIC, "10.10.0.30", "127.0.0.1", "localhost"]
    assert two["ALLOWED_HOSTS"][1] == "10.10.0.31"
    # Nothing that the offline-compressed bundle of the image depends on.
    assert not set(one) & OFFLINE_CONTEXT


def test_the_uwsgi_ini_matches_the_formulas_port_and_reload(
    rendered: dict[str, dict[str, dict[str, str]]],
) -> None:
    spec = SHIPPED.services["horizon"][1]
    lines = dict(
        line.split(" = ", 1)
        for line in rendered[CONTROLLERS[0]]["horizon"][UWSGI].splitlines()
        if " = " in line and not line.startswith("#")
    )
    assert spec.health.http is not None
    assert lines["http-socket"] == f"0.0.0.0:{spec.health.http.port}"
    assert [p.port for p in spec.ports] == [spec.health.http.port]
    assert lines["wsgi-file"] == "/usr/share/openstack-dashboard/wsgi.py"
    assert lines["static-map"] == "/static=/var/lib/openstack-dashboard/static"
    assert lines["lazy-apps"] == "true"
    assert spec.reload is not None and spec.reload.command is not None
    assert spec.reload.command[-2:] == [lines["master-fifo"], lines["stats"]]


def test_haproxy_serves_it_on_port_80_checking_the_login_page_with_a_host(
    rendered: dict[str, dict[str, dict[str, str]]],
) -> None:
    cfg = rendered["prx01.openstack.local"]["haproxy"]["/etc/haproxy/haproxy.cfg"]
    block = cfg.split("listen horizon\n", 1)[1].split("\n\n", 1)[0].splitlines()
    lines = [line.strip() for line in block if not line.strip().startswith("#")]
    assert lines == [
        f"bind {PUBLIC}:80",
        "option httpchk GET /auth/login/",
        # Django refuses a request without an allowed Host (haproxy's check has none).
        f"http-check send hdr Host {PUBLIC}",
        "server ctl01.openstack.local 10.10.0.30:8080 check inter 2s rise 2 fall 3",
        "server ctl02.openstack.local 10.10.0.31:8080 check inter 2s rise 2 fall 3",
    ]
    # The health frontend counts it among the proxied services.
    assert "acl horizon_down nbsrv(horizon) lt 1" in cfg
    # The other listeners' checks send no Host (their servers do not ask for one).
    assert cfg.count("http-check send hdr Host") == 1


# -- the API check against a fake of Horizon's login pages ----------------------------


LOGIN_PAGE = """<html><body>
<noscript><div class="alert alert-danger">This application requires JavaScript.</div></noscript>
<form id="" method="POST" action="/auth/login/" autocomplete="off">
<input type="hidden" name="csrfmiddlewaretoken" value="{csrf}">
<div class="fake_credentials" style="display: none">
<input type="text" name="fake_email" value="" />
<input type="password" name="fake_password" value="" />
</div>
{error}
<input type="hidden" name="region" value="default" id="id_region">
<input type="text" name="username" autofocus="autofocus" id="id_username">
<input type="password" name="password" id="id_password">
<button id="loginBtn" type="submit">Sign In</button>
</form></body></html>
"""
ERROR = '<div class="alert alert-danger"><p>Invalid credentials.</p></div>'


@dataclass
class FakeHorizon:
    """Horizon's login as a browser sees it: the CSRF cookie and token, the session
    cookie after a good login, the home page for a session it knows."""

    password: str
    #: Whether sessions outlive their request (a cache that works).
    keeps_sessions: bool = True
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)


def _serve(fake: FakeHorizon) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def _cookies(self) -> dict[str, str]:
            jar = http.cookies.SimpleCookie(self.headers.get("Cookie", ""))
            return {k: m.value for k, m in jar.items()}

        def _send(self, code: int, body: str = "", headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _page(self, error: str = "") -> None:
            page = LOGIN_PAGE.format(csrf="masked-token", error=error)
            self._send(200, page, {"Set-Cookie": "csrftoken=cookie-token; Path=/"})

        def do_GET(self) -> None:
            cookies = self._cookies()
            fake.seen.append(("GET", self.path, {}))
            if self.path == "/auth/login/":
                self._page()
            elif self.path == "/" and cookies.get("sessionid") in fake.sessions:
                self._send(302, headers={"Location": "/project/"})
            elif self.path == "/":
                self._page()  # Horizon's splash page is the login form
            elif self.path == "/auth/logout/":
                fake.sessions.discard(cookies.get("sessionid", ""))
                self._send(302, headers={"Location": "/auth/login/"})
            else:
                self._send(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode(), True))
            fake.seen.append(("POST", self.path, form))
            if self._cookies().get("csrftoken") != "cookie-token" or not form.get(
                "csrfmiddlewaretoken"
            ):
                self._send(403, "CSRF verification failed")
            elif form.get("password") != fake.password:
                self._page(ERROR)
            else:
                if fake.keeps_sessions:
                    fake.sessions.add("s1")
                self._send(302, headers={"Location": "/", "Set-Cookie": "sessionid=s1; Path=/"})

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def horizon() -> Iterator[tuple[FakeHorizon, int]]:
    fake = FakeHorizon(password="admin-s3cret")
    server = _serve(fake)
    yield fake, server.server_address[1]
    server.shutdown()
    server.server_close()


def _check(
    tmp_path: Path, shim: dict[str, str], port: int, secret: str | None
) -> subprocess.CompletedProcess[str]:
    server = {
        "bind": {"address": "0.0.0.0", "port": port},
        "identity": {"admin_user": "admin", "admin_password": PLACEHOLDER},
    }
    secrets = {} if secret is None else {"/horizon/server/identity/admin_password": secret}
    env = _pillar_files(tmp_path, {"horizon": {"server": server}}, secrets)
    return _run(api_check("horizon"), {**env, **shim})


def test_the_check_logs_in_through_the_form_with_the_secret_and_logs_out(
    tmp_path: Path, shim: dict[str, str], horizon: tuple[FakeHorizon, int]
) -> None:
    fake, port = horizon
    done = _check(tmp_path, shim, port, "admin-s3cret")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(
        f"horizon at http://127.0.0.1:{port}: logged in as admin (redirected to /, home /project/)"
    ), done.stdout
    assert "admin-s3cret" not in done.stdout + done.stderr
    assert [(m, p) for m, p, _ in fake.seen] == [
        ("GET", "/auth/login/"),
        ("POST", "/auth/login/"),
        ("GET", "/"),
        ("GET", "/auth/logout/"),
    ]
    # The form as a browser posts it: its hidden fields and decoys, the credentials.
    posted = fake.seen[1][2]
    assert posted == {
        "csrfmiddlewaretoken": "masked-token",
        "region": "default",
        "fake_email": "",
        "fake_password": "",
        "username": "admin",
        "password": "admin-s3cret",
    }
    assert not fake.sessions  # logged out


def test_a_refused_login_fails_with_horizons_reason(
    tmp_path: Path, shim: dict[str, str], horizon: tuple[FakeHorizon, int]
) -> None:
    _fake, port = horizon
    # Without the secrets file the placeholder goes out as the password: refused.
    done = _check(tmp_path, shim, port, None)
    assert done.returncode == 1
    assert done.stdout.strip() == (
        f"horizon at http://127.0.0.1:{port}: POST http://127.0.0.1:{port}/auth/login/: the "
        "login was refused (HTTP 200: Invalid credentials.)"
    )


def test_a_session_that_is_not_kept_fails_naming_the_cache(
    tmp_path: Path, shim: dict[str, str], horizon: tuple[FakeHorizon, int]
) -> None:
    fake, port = horizon
    fake.keeps_sessions = False
    done = _check(tmp_path, shim, port, "admin-s3cret")
    assert done.returncode == 1
    assert "no session: is the cache reachable?" in done.stdout, done.stdout


def test_an_instance_that_does_not_answer_fails_in_one_line(
    tmp_path: Path, shim: dict[str, str]
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    done = _check(tmp_path, shim, port, "admin-s3cret")
    assert done.returncode == 1
    assert done.stdout.count("\n") == 1 and "URLError" in done.stdout, done.stdout
