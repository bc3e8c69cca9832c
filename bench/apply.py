"""Benchmark: `saline apply` of a one-service config change, against its floor.

On its own stack of the example model (a temporary git repository, its own state), with a
client asking for a keystone token and a glance image list through haproxy every 0.2 s
the whole time:

* keystone (two instances, a reload): its token expiration changed, `saline apply --yes`;
* glance-api (two instances, a restart): its `debug` setting changed, `saline apply --yes`.

The floor of each (issue 10): that service's own restart-until-healthy time (its
container stopped and started again with podman until its health check passes, timed
from the stop), times its instances. An apply does more than that per instance (drain,
a real API call as its gate, haproxy seeing it UP again) and must stay within 2x of it.
Failed requests must be 0.

Usage: python bench/apply.py
Results: printed, and bench/out/apply.json. Needs the example's subnet free (no other
stack of the example model running). Images missing from podman's store are built by the
first `saline up` (and pushed to a registry of the benchmark's own).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "apply.json"
EXAMPLE = REPO / "examples" / "openstack"
SALINE = str(Path(sys.executable).parent / "saline")
STACK = "saline-bench-apply"
PROXY = "10.10.0.40"  # haproxy's address in the example model

sys.path.insert(0, str(REPO / "src"))
from saline.runtime.podman import Podman  # noqa: E402
from saline.runtime.registry import LocalRegistry  # noqa: E402


def saline(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [SALINE, *args, "--format", "json"], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        sys.exit(f"saline {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
    return out


def call(method: str, url: str, body: Any = None, token: str = "") -> tuple[int, Any, str]:
    """(status, JSON body or None, X-Subject-Token)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None, r.headers.get("X-Subject-Token", "")
    except urllib.error.HTTPError as e:
        return e.code, None, ""


@dataclass
class Client:
    """A token and an image list through haproxy, every 0.2 s."""

    auth: dict[str, Any]
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, _, token = call(
                    "POST", f"http://{PROXY}:5000/v3/auth/tokens", {"auth": self.auth}
                )
                self.requests += 1
                if status != 201:
                    self.failures.append(f"token: HTTP {status}")
                else:
                    status, _, _ = call("GET", f"http://{PROXY}:9292/v2/images", token=token)
                    self.requests += 1
                    if status != 200:
                        self.failures.append(f"images: HTTP {status}")
            except OSError as e:
                self.failures.append(f"{type(e).__name__}: {e}")
            self.stop.wait(0.2)


def client_for(env: dict[str, str]) -> Client:
    rc = saline(env, "openrc")
    domain = {"name": "Default"}
    user = {"name": rc["OS_USERNAME"], "password": rc["OS_PASSWORD"], "domain": domain}
    return Client(
        {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": domain}},
        }
    )


def own_restart(podman: Podman, container: str) -> float:
    """Stop, start, wait healthy: the service's own restart time."""
    t = time.perf_counter()
    podman.cli(["stop", "-t", "30", container], timeout=60)
    podman.cli(["start", container], timeout=120)
    while True:
        ok, _ = podman.healthcheck(container)
        if ok:
            return time.perf_counter() - t
        if time.perf_counter() - t > 300:
            sys.exit(f"{container} did not become healthy again within 300 s")
        time.sleep(0.2)


def running(podman: Podman, service: str) -> list[str]:
    return sorted(
        c["Names"][0]
        for c in podman.containers(f"io.podman.compose.project={STACK}")
        if c.get("State") == "running"
        and c["Labels"].get("io.podman.compose.service", "").startswith(service + "-")
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        sys.exit(f"{old!r} is not in {path}")
    path.write_text(text.replace(old, new, 1))


def apply_timed(env: dict[str, str]) -> tuple[float, list[str]]:
    """`saline apply --yes`: its wall time, and its progress lines stamped with the
    seconds since it started (where the time goes)."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [SALINE, "apply", "--yes", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None and proc.stdout is not None
    timeline = [f"{time.perf_counter() - t:6.1f} {line.rstrip()}" for line in proc.stderr]
    out = proc.stdout.read()
    code = proc.wait()
    took = time.perf_counter() - t
    if code != 0:
        sys.exit("saline apply failed:\n" + out[-2000:] + "\n".join(timeline[-30:]))
    return took, timeline


def measure(env: dict[str, str], label: str, path: Path, old: str, new: str) -> dict[str, Any]:
    edit(path, old, new)
    plan = saline(env, "plan")
    changed = sorted({c["key"] for c in plan["changes"]})
    actions = sorted({c["action"] for c in plan["changes"]})
    client = client_for(env)
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    took, timeline = apply_timed(env)
    time.sleep(1.0)
    client.stop.set()
    thread.join(60)
    print(f"  {label}: {took:.1f} s, {client.requests} requests, {len(client.failures)} failed")
    return {
        "changed": changed,
        "actions": actions,
        "apply_s": round(took, 1),
        "requests": client.requests,
        "failed_requests": len(client.failures),
        "failures": client.failures[:5],
        "timeline": timeline,
    }


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="saline-bench-apply-"))
    model = root / "model"
    shutil.copytree(EXAMPLE, model)
    git = ["git", "-c", "user.email=bench@saline", "-c", "user.name=bench"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "model"], cwd=root, check=True)
    state = str(root / "state")
    podman = Podman.for_state(state)  # the settings the saline commands below use
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A real registry: images missing from the podman store are built and pushed there.
    registry = LocalRegistry(f"127.0.0.1:{port}", str(root / "registry"))
    registry.start()
    env = {
        **os.environ,
        "SALINE_STATE_DIR": state,
        "SALINE_MODEL": str(model),
        "SALINE_STACK": STACK,
        "SALINE_REGISTRY": f"127.0.0.1:{port}",
        "NO_COLOR": "1",
    }
    results: dict[str, Any] = {}
    try:
        print("up ...", flush=True)
        saline(env, "up")
        print("floor: each instance's own restart until healthy ...", flush=True)
        floors: dict[str, list[float]] = {}
        for service in ("keystone", "glance-api"):
            floors[service] = [round(own_restart(podman, c), 1) for c in running(podman, service)]
            time.sleep(10)  # haproxy's checks (inter 2 s, rise 2) see them UP again
        print("apply, under a client loop ...", flush=True)
        keystone = measure(
            env,
            "keystone",
            model / "classes/system/keystone/server.yml",
            "expiration: 3600",
            "expiration: 7200",
        )
        glance = measure(
            env,
            "glance-api",
            model / "classes/system/glance/server.yml",
            "enabled: true",
            "enabled: true\n      debug: true",
        )
        for name, row in (("keystone", keystone), ("glance-api", glance)):
            floor = sum(floors[name])
            row["floor_s"] = round(floor, 1)
            row["own_restart_s"] = floors[name]
            row["ratio_to_floor"] = round(row["apply_s"] / floor, 2)
            results[name] = row
    finally:
        subprocess.run([SALINE, "down", "--volumes"], env=env, capture_output=True)
        registry.stop()
        shutil.rmtree(root, ignore_errors=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
