"""The dashboard for real: Horizon (Debian's openstack-dashboard under uwsgi) on both
controllers of the whole example cloud (the package's stack, integration/cloud/conftest.py)
behind haproxy's port 80, used through a real browser, Debian's headless Chromium
(integration/dashboard.py). In order:

* both horizon instances healthy, and each one's API check (a login through its form)
  passes;
* Chromium opens http://PROXY/, logs in as the model's admin through the form, lands on
  the project's overview; the smoke's server (the package's kept_server: `saline smoke
  --keep`, deleted after by `saline smoke --clean`) is listed on the instances page;
  the admin dashboard opens; each page shows the user's name and was styled and
  scripted by the static files compressed in the image (screenshots in the test's tmp
  folder);
* a wrong password: the form again, with Horizon's "Invalid credentials.";
* the browser's session is good on either instance (asked directly, not through
  haproxy): the sessions are in the shared memcached, signed with the same key;
* a settings change (the session timeout) is planned as a reload of each instance, and
  `saline apply` reloads them in place (the containers keep running).

Every wait is bounded; times are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import struct
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.remote.webdriver import WebDriver

from integration.cloud.conftest import PREFIX, PROXY, CloudStack
from integration.dashboard import (
    WINDOW,
    LoginRefused,
    browser,
    instance_names,
    login,
    open_page,
    screenshot,
    user_name,
)
from integration.test_stack import ok, saline
from tools import require_tools

pytestmark = pytest.mark.integration

URL = f"http://{PROXY}"
CONTROLLERS = {"ctl01": f"{PREFIX}30", "ctl02": f"{PREFIX}31"}
HORIZON_CLASS = Path("classes/system/horizon/server.yml")
SNIPPET = "/etc/openstack-dashboard/local_settings.d/_9000_saline.py"
API_CHECK = [
    "saline-entrypoint",
    "with-pillar",
    "horizon:server",
    "python3",
    "/usr/local/lib/saline/horizon-api-check.py",
]


@dataclass
class Dashboard:
    stack: CloudStack
    #: The admin's name and password (`saline openrc`).
    user: str
    password: str
    #: The browser's session cookie after the login (name -> value).
    cookies: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    def container(self, service: str) -> str:
        return self.stack.container(service)

    def started(self, service: str) -> str:
        """The container's id and start time (a reload in place keeps both)."""
        out = self.stack.podman.cli(["inspect", "--format", "json", self.container(service)])
        info = json.loads(out)[0]
        return f"{info['Id']}@{info['State']['StartedAt']}"


def timed(d: Dashboard, label: str, seconds: float) -> None:
    d.timings[label] = seconds
    print(f"\ndashboard: {label}: {seconds:.1f} s")


@pytest.fixture(scope="module")
def dash(cloud: CloudStack) -> Dashboard:
    require_tools("chromium", "chromedriver")
    # The model's admin (what `saline openrc` gives a user of the cloud).
    rc = cloud.openrc()
    return Dashboard(cloud, rc["OS_USERNAME"], rc["OS_PASSWORD"])


@pytest.fixture
def no_selenium_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    """selenium must find Debian's chromedriver by the path it is given: its
    selenium-manager (which downloads drivers and browsers) must not even be asked."""

    def refuse(self: SeleniumManager, args: list[str]) -> dict[str, str]:
        raise AssertionError(f"selenium-manager was asked for {args}")

    monkeypatch.setattr(SeleniumManager, "binary_paths", refuse)


def test_both_controllers_serve_the_dashboard(dash: Dashboard) -> None:
    rows = {
        r["name"]: r
        for r in json.loads(ok(dash.env, "status", "--format", "json").stdout)["services"]
    }
    for node in CONTROLLERS:
        assert rows[f"horizon-{node}"]["health"] == "healthy", rows[f"horizon-{node}"]
    # Each instance's API check: a real login through its own form, as apply's gate does.
    podman = dash.stack.podman
    for node in CONTROLLERS:
        done = podman.run_in(dash.container(f"horizon-{node}"), API_CHECK, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"logged in as {dash.user}" in done.stdout and "home /project/" in done.stdout
        assert dash.password not in done.stdout + done.stderr
        print(f"\ndashboard: {node}: {done.stdout.strip()}")
        # What an instance takes (resources: in formula.yml), printed.
        mem = podman.cli(
            ["stats", "--no-stream", "--format", "{{.MemUsage}}", dash.container(f"horizon-{node}")]
        )
        print(f"dashboard: horizon-{node} memory: {mem.strip()}")


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height (its IHDR chunk)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is no PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def styled_and_scripted(driver: WebDriver) -> dict[str, Any]:
    """What the page got from the compressed static files: rules of each stylesheet
    (same origin, so readable) and Horizon's and Angular's scripts loaded."""
    return dict(
        driver.execute_script(
            "return {sheets: Array.from(document.styleSheets).map(s => s.cssRules.length),"
            " horizon: typeof horizon !== 'undefined', angular: typeof angular !== 'undefined'}"
        )
    )


def test_a_browser_logs_in_and_sees_the_project_and_admin_pages(
    dash: Dashboard, kept_server: str, tmp_path: Path, no_selenium_manager: None
) -> None:
    start = time.monotonic()
    with browser(tmp_path / "profile", log=tmp_path / "chromedriver.log") as driver:
        timed(dash, "Chromium started", time.monotonic() - start)
        took = login(driver, URL, dash.user, dash.password)
        timed(dash, "login (Sign In clicked to the project page)", took)
        assert driver.current_url == f"{URL}/project/", driver.current_url
        assert user_name(driver) == dash.user
        assert driver.find_elements(By.CSS_SELECTOR, "#sidebar-accordion-project.in")
        assert driver.find_element(By.CSS_SELECTOR, ".page-header h1").text.strip() == "Overview"
        shown = styled_and_scripted(driver)
        assert shown["sheets"] and all(n > 0 for n in shown["sheets"]), shown
        assert shown["horizon"] and shown["angular"], shown
        overview = screenshot(driver, tmp_path / "project-overview.png")

        start = time.monotonic()
        names = instance_names(driver, URL)
        timed(dash, "instances page", time.monotonic() - start)
        assert names == [kept_server], names
        assert user_name(driver) == dash.user
        instances = screenshot(driver, tmp_path / "project-instances.png")

        open_page(driver, URL, "/admin/")
        assert driver.current_url.startswith(f"{URL}/admin/"), driver.current_url
        assert user_name(driver) == dash.user
        # The sidebar has the admin dashboard's panels open: the current dashboard.
        assert driver.find_elements(By.CSS_SELECTOR, "#sidebar-accordion-admin.in")
        assert driver.find_element(By.CSS_SELECTOR, ".page-header h1").text.strip() == "Overview"
        admin = screenshot(driver, tmp_path / "admin.png")
        dash.cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    for shot in (overview, instances, admin):
        # The window's width (its height is the window's less the headless frame).
        assert png_size(shot)[0] == WINDOW[0], png_size(shot)
        print(f"\ndashboard: screenshot {shot}")
    assert "sessionid" in dash.cookies, sorted(dash.cookies)


def test_a_wrong_password_shows_the_login_error(
    dash: Dashboard, tmp_path: Path, no_selenium_manager: None
) -> None:
    with browser(tmp_path / "profile") as driver:
        with pytest.raises(LoginRefused) as refused:
            login(driver, URL, dash.user, dash.password + "-wrong")
        assert str(refused.value) == "Invalid credentials."
        assert driver.current_url == f"{URL}/auth/login/"
        screenshot(driver, tmp_path / "login-refused.png")


def test_the_browsers_session_is_good_on_either_instance(dash: Dashboard) -> None:
    """Asked directly (not through haproxy), each instance serves the project's pages to
    the browser's session: it is in the shared memcached, signed with the same key."""
    assert dash.cookies, "needs the browser's login first"
    cookie = "; ".join(f"{k}={v}" for k, v in dash.cookies.items())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for node, address in CONTROLLERS.items():
        request = urllib.request.Request(
            f"http://{address}:8080/project/instances/", headers={"Cookie": cookie}
        )
        try:
            with opener.open(request, timeout=60) as resp:
                status, body = resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.headers.get("Location", "")
        assert status == 200, f"{node}: HTTP {status} {body[:200]}"
        assert 'id="instances"' in body and 'class="user-name">' + dash.user in body, node


def test_a_settings_change_reloads_each_instance_in_place(dash: Dashboard) -> None:
    path = Path(dash.env["SALINE_MODEL"]) / HORIZON_CLASS
    text = path.read_text()
    assert "timeout: 3600" in text
    path.write_text(text.replace("timeout: 3600", "timeout: 1800", 1))
    done = saline(dash.env, "plan", "--format", "json", "--detailed-exitcode")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    changes = json.loads(done.stdout)["changes"]
    assert {(c["service"], c["action"]) for c in changes} == {("horizon", "reload")}, changes
    assert len(changes) == len(CONTROLLERS)
    before = {n: dash.started(f"horizon-{n}") for n in CONTROLLERS}
    start = time.monotonic()
    ok(dash.env, "apply", "--yes")
    timed(
        dash,
        "apply: both instances reloaded (drain, reload, login check, ready)",
        time.monotonic() - start,
    )
    for node in CONTROLLERS:
        container = dash.container(f"horizon-{node}")
        assert dash.started(f"horizon-{node}") == before[node], "restarted, not reloaded"
        snippet = dash.stack.podman.run_in(container, ["cat", SNIPPET], timeout=60).stdout
        assert "SESSION_TIMEOUT = 1800" in snippet
    assert saline(dash.env, "plan", "--detailed-exitcode").returncode == 0
