"""A client loop for zero-downtime checks: keystone asked for a project-scoped token every
0.2 s while a change rolls out, each failure kept (the day-2 tests on compose, the
Kubernetes tests), and the token's lifetime (the value those changes move)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from integration.test_stack import http


def admin_auth(rc: dict[str, str]) -> dict[str, Any]:
    """keystone's password auth body for the admin of ``saline openrc --format json``."""
    domain = {"name": "Default"}
    user = {"name": rc["OS_USERNAME"], "password": rc["OS_PASSWORD"], "domain": domain}
    return {
        "identity": {"methods": ["password"], "password": {"user": user}},
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": domain}},
    }


@dataclass
class TokenLoop:
    """Asks keystone at ``url`` (``http://HOST:PORT/v3``) for a token every 0.2 s."""

    url: str
    auth: dict[str, Any]
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _, body = http("POST", f"{self.url}/auth/tokens", {"auth": self.auth})
                if status != 201:
                    self.failures.append(f"HTTP {status}: {body[:200]!r}")
            except OSError as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            self.requests += 1
            self.stop.wait(0.2)

    def token_lifetime(self) -> float:
        """Seconds between a new token's issue and its expiry."""
        status, _, body = http("POST", f"{self.url}/auth/tokens", {"auth": self.auth})
        assert status == 201, body[:300]
        token = json.loads(body)["token"]

        def ts(text: str) -> float:
            return time.mktime(time.strptime(text.split(".")[0], "%Y-%m-%dT%H:%M:%S"))

        return ts(token["expires_at"]) - ts(token["issued_at"])


T = TypeVar("T")
Loop = TypeVar("Loop", "TokenLoop", "WriteLoop", "ProbeLoop", "ImageListLoop")


@contextmanager
def running(loop: Loop) -> Iterator[Loop]:
    """``loop`` asking in a thread from a second before the block to a second after."""
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    try:
        yield loop
    finally:
        time.sleep(1.0)
        loop.stop.set()
        thread.join(60)


#: How long a client waits before its one retry: what keystoneauth's connect_retries=2
#: waits in all (0.5 s, then 1 s). A virtual address moves in about a second (keepalived
#: checks haproxy once a second).
RETRY_DELAY = 1.5


@dataclass
class Outcome:
    """Failures of a client loop: ``raw`` (every failed call) and ``after_retry`` (calls
    that failed again when retried once, :data:`RETRY_DELAY` later)."""

    requests: int = 0
    raw: list[str] = field(default_factory=list)
    after_retry: list[str] = field(default_factory=list)

    def report(self) -> str:
        return (
            f"{self.requests} requests, {len(self.raw)} failed, "
            f"{len(self.after_retry)} failed after one retry"
        )


@dataclass
class WriteLoop:
    """A client through the API at ``url`` (keystone's ``http://HOST:PORT/v3``) every
    0.3 s: a token, then a new project (a write that goes to the database), each call
    retried once, :data:`RETRY_DELAY` later, when it fails. ``created`` holds every
    project keystone answered 201 for: a committed write that must never be lost."""

    url: str
    auth: dict[str, Any]
    prefix: str
    outcome: Outcome = field(default_factory=Outcome)
    created: dict[str, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def _call(self, what: str, fn: Callable[[], T]) -> T | None:
        self.outcome.requests += 1
        for attempt in (1, 2):
            try:
                return fn()
            except (OSError, AssertionError, ValueError, KeyError) as e:
                why = f"{what}: {type(e).__name__}: {e}"
                (self.outcome.raw if attempt == 1 else self.outcome.after_retry).append(why)
                if attempt == 1:
                    time.sleep(RETRY_DELAY)
        return None

    def _token(self) -> str:
        status, headers, body = http("POST", f"{self.url}/auth/tokens", {"auth": self.auth})
        assert status == 201, f"HTTP {status}: {body[:200]!r}"
        return headers["x-subject-token"]

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            token = self._call("token", self._token)
            if token is not None:
                n += 1
                name = f"{self.prefix}-{n}"

                def create(name: str = name, token: str = token) -> str:
                    body = {"project": {"name": name, "domain_id": "default"}}
                    status, _, out = http(
                        "POST", f"{self.url}/projects", body, {"X-Auth-Token": token}
                    )
                    if status == 409:  # the first attempt's write committed
                        return self._project_id(name, token)
                    assert status == 201, f"HTTP {status}: {out[:200]!r}"
                    return str(json.loads(out)["project"]["id"])

                project = self._call("create project", create)
                if project is not None:
                    self.created[name] = project
            self.stop.wait(0.3)

    def _project_id(self, name: str, token: str) -> str:
        status, _, out = http(
            "GET", f"{self.url}/projects?name={name}", None, {"X-Auth-Token": token}
        )
        assert status == 200, f"HTTP {status}: {out[:200]!r}"
        return str(json.loads(out)["projects"][0]["id"])

    def lost(self) -> list[str]:
        """The created projects keystone no longer lists (lost writes)."""
        token = self._token()
        status, _, out = http(
            "GET", f"{self.url}/projects?domain_id=default", None, {"X-Auth-Token": token}
        )
        assert status == 200, out[:300]
        have = {p["name"]: p["id"] for p in json.loads(out)["projects"]}
        return sorted(n for n, i in self.created.items() if have.get(n) != i)


@dataclass
class ProbeLoop:
    """GET ``url`` every 0.2 s (an HTTP 200 is an answer), each failure retried once,
    :data:`RETRY_DELAY` later: a service behind a virtual address, without OpenStack."""

    url: str
    outcome: Outcome = field(default_factory=Outcome)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Seconds between two calls.
    interval: float = 0.2

    def _get(self) -> None:
        status, _, body = http("GET", self.url, None)
        assert status == 200, f"HTTP {status}: {body[:200]!r}"

    def run(self) -> None:
        while not self.stop.is_set():
            self.outcome.requests += 1
            for attempt in (1, 2):
                try:
                    self._get()
                    break
                except (OSError, AssertionError, KeyError) as e:
                    why = f"{type(e).__name__}: {e}"
                    (self.outcome.raw if attempt == 1 else self.outcome.after_retry).append(why)
                    if attempt == 1:
                        time.sleep(RETRY_DELAY)
            self.stop.wait(self.interval)


@dataclass
class ImageListLoop(ProbeLoop):
    """glance's image list through ``url`` (``http://HOST:9292``) every 0.3 s, with a
    token from keystone at ``auth_url`` (a new one each minute), each failure retried
    once, :data:`RETRY_DELAY` later (:class:`ProbeLoop`'s loop)."""

    interval: float = 0.3
    auth_url: str = ""
    auth: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    token_time: float = 0.0

    def _get(self) -> None:
        if not self.token or time.monotonic() - self.token_time > 60:
            status, headers, body = http(
                "POST", f"{self.auth_url}/auth/tokens", {"auth": self.auth}
            )
            assert status == 201, f"token: HTTP {status}: {body[:200]!r}"
            self.token, self.token_time = headers["x-subject-token"], time.monotonic()
        status, _, body = http("GET", f"{self.url}/v2/images", None, {"X-Auth-Token": self.token})
        if status == 401:
            self.token = ""  # expired or revoked: a new one next time
        assert status == 200, f"HTTP {status}: {body[:200]!r}"
