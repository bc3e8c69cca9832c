"""Horizon in a real browser: Debian's Chromium, headless, through Debian's chromedriver,
driven by selenium. Both are named by path (:data:`CHROMIUM`, :data:`CHROMEDRIVER`), so
selenium never runs its selenium-manager and nothing is downloaded.

* :func:`browser`: a Chromium session with a fresh profile (a context manager);
* :func:`login`: log in through the login form as a user does; :class:`LoginRefused`
  with Horizon's own message when it refuses;
* :func:`instance_names`: the names the project's instances page lists (what a test
  asserts the smoke server among);
* :func:`user_name`, :func:`screenshot`.

Every wait is bounded (``timeout``, seconds); a page that does not come is a
``selenium.common.exceptions.TimeoutException`` naming what was awaited.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

#: Debian's packages (scripts/install): the browser and its WebDriver.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Headless, no sandbox (root in a container-like machine), nothing that phones home
#: (component updates, sync, background networking) or waits for a first-run dialog;
#: /dev/shm may be small.
OPTIONS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: The browser window's size (width, height): what screenshots are as wide as.
WINDOW = (1400, 1000)
#: What a page may take (a login asks keystone, an instances page nova and glance).
TIMEOUT = 60.0
LOGIN = "/auth/login/"
#: A refused login's form: Horizon's alert (wrong credentials) or a field's error (a
#: required field left empty).
ERRORS = "form .alert-danger, form .has-error .help-block"


class LoginRefused(AssertionError):
    """Horizon showed the login form again, with this message."""


@contextmanager
def browser(
    profile: Path, *, timeout: float = TIMEOUT, log: Path | None = None
) -> Iterator[WebDriver]:
    """Chromium with a fresh profile folder ``profile`` (created; it must not exist),
    ``timeout`` for each page load, chromedriver's log to ``log``; quit at the end."""
    profile.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (*OPTIONS, f"--user-data-dir={profile}", "--window-size={},{}".format(*WINDOW)):
        options.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(log) if log else None)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(timeout)
        driver.set_script_timeout(timeout)
        yield driver
    finally:
        driver.quit()


def _path(driver: WebDriver) -> str:
    return urllib.parse.urlsplit(driver.current_url).path


def _wait(driver: WebDriver, timeout: float) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout, poll_frequency=0.2)


def login(
    driver: WebDriver, url: str, user: str, password: str, *, timeout: float = TIMEOUT
) -> float:
    """Log in to the dashboard at ``url`` (``http://HOST``) through its form: the user's
    name and password typed in, Sign In clicked, until Horizon shows a page other than
    the login page (the user's home). The seconds from the click until then.
    :class:`LoginRefused` with Horizon's message when it shows the form again."""
    driver.get(url.rstrip("/") + LOGIN)
    wait = _wait(driver, timeout)
    wait.until(ec.element_to_be_clickable((By.ID, "id_username")), "the login form")
    driver.find_element(By.ID, "id_username").send_keys(user)
    driver.find_element(By.ID, "id_password").send_keys(password)
    form = driver.find_element(By.CSS_SELECTOR, "form[action$='/auth/login/']")
    started = time.monotonic()
    driver.find_element(By.ID, "loginBtn").click()

    def done(d: WebDriver) -> bool:
        # Logged in: a page of the dashboard (the form's page is gone). Refused: the form
        # again, with its error alert.
        if not _path(d).startswith(LOGIN):
            return bool(d.find_elements(By.CSS_SELECTOR, ".user-menu .user-name"))
        return bool(d.find_elements(By.CSS_SELECTOR, ERRORS)) and not _is_current(form)

    wait.until(done, "a page after the login (or the login's error)")
    took = time.monotonic() - started
    if _path(driver).startswith(LOGIN):
        errors = driver.find_elements(By.CSS_SELECTOR, ERRORS)
        raise LoginRefused(" ".join(e.text.strip() for e in errors) or "no reason shown")
    return took


def _is_current(element: WebElement) -> bool:
    """Whether an element is still on the page (the login form before it was posted)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return False
    return True


def user_name(driver: WebDriver) -> str:
    """The user name the page's header shows (its user menu)."""
    return str(driver.find_element(By.CSS_SELECTOR, ".user-menu .user-name").text).strip()


def open_page(driver: WebDriver, url: str, path: str, *, timeout: float = TIMEOUT) -> None:
    """Open ``path`` of the dashboard and wait until its header (the user menu) is there:
    a page that needs a login and got none is the login form, an error. Raises
    AssertionError naming where the browser is instead."""
    driver.get(url.rstrip("/") + path)
    try:
        _wait(driver, timeout).until(
            lambda d: (
                d.find_elements(By.CSS_SELECTOR, ".user-menu .user-name")
                or _path(d).startswith(LOGIN)
            ),
            f"the page {path}",
        )
    except TimeoutException as e:
        raise AssertionError(f"{path}: no page within {timeout:g} s ({driver.title!r})") from e
    if _path(driver).startswith(LOGIN):
        raise AssertionError(f"{path}: the login page instead ({driver.current_url})")


def instance_names(driver: WebDriver, url: str, *, timeout: float = TIMEOUT) -> list[str]:
    """The names of the instances the project's instances page (/project/instances/)
    lists, in its order: each row's ``data-display`` (Horizon's table rows carry the
    object's id and display name). Needs a logged-in session (:func:`login`)."""
    open_page(driver, url, "/project/instances/", timeout=timeout)
    _wait(driver, timeout).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "table#instances")),
        "the instances table",
    )
    rows = driver.find_elements(By.CSS_SELECTOR, "table#instances tbody tr[data-object-id]")
    return [str(r.get_attribute("data-display")) for r in rows]


def screenshot(driver: WebDriver, path: Path) -> Path:
    """A PNG of the page as rendered now, at ``path``."""
    assert driver.save_screenshot(str(path)), f"no screenshot at {path}"
    return path
