"""A client loop for zero-downtime checks: keystone asked for a project-scoped token every
0.2 s while a change rolls out, each failure kept (the day-2 tests on compose, the
Kubernetes tests), and the token's lifetime (the value those changes move)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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


@contextmanager
def running(loop: TokenLoop) -> Iterator[TokenLoop]:
    """``loop`` asking in a thread from a second before the block to a second after."""
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    try:
        yield loop
    finally:
        time.sleep(1.0)
        loop.stop.set()
        thread.join(30)
