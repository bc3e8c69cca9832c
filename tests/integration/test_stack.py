"""The local stack end to end, for real: podman, podman-compose, MariaDB, RabbitMQ,
memcached, keystone, glance and haproxy from Debian packages, checked with openstacksdk
(saline smoke) and Debian's python-openstackclient (through `saline openrc`).

One stack at a time: the example model's addresses fix its subnet. The stack is the one
the session shares (integration/example_cloud.py: the README's main job brings it up);
these tests start from the example as committed, and the last takes the stack down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from integration.example_cloud import STACK, ExampleCloud
from saline.model import load_model
from saline.runtime.podman import Podman
from tools import core

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SALINE = str(Path(sys.executable).parent / "saline")
HAPROXY_CLASS = Path("classes/system/haproxy/proxy/single.yml")
# What the example runs, derived from the formulas and the model (tests/tools.py).
SERVICES = set(core().instances)
TASKS = list(core().tasks)
# The example runs keystone and glance-api on two controllers (SERVICE-NODE); one of them.
KEYSTONES = sorted(i for i in SERVICES if i.startswith("keystone"))
KEYSTONE = KEYSTONES[0]
GLANCE = sorted(i for i in SERVICES if i.startswith("glance-api"))[0]


def saline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SALINE, *args], capture_output=True, text=True, env=env)


def ok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = saline(env, *args)
    assert done.returncode == 0, (
        f"saline {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
    )
    return done


def status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    rows = json.loads(ok(env, "status", "--format", "json").stdout)["services"]
    return {r["name"]: r for r in rows}


def container_id(podman: Podman, name: str) -> str:
    return podman.cli(["inspect", "--format", "{{.Id}}", f"{STACK}_{name}_1"]).strip()


def started(report: dict[str, Any]) -> set[str]:
    """The services an `up --format json` report (re)started."""
    return {
        s["name"] for s in report["steps"] if s["kind"] == "service" and s["outcome"] == "healthy"
    }


def addresses(env: dict[str, str], service: str) -> list[str]:
    """The addresses of the nodes that run ``service``, in node order."""
    model = load_model(env["SALINE_MODEL"])
    nodes = [n for n, services in core().node_services.items() if service in services]
    return [str(model.node(n).parameters["_param"]["single_address"]) for n in nodes]


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP call: (status, headers with lowercase names, body); JSON for a dict or
    list body."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if data is not None and "Content-Type" not in hdrs:
        hdrs["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def admin_token(env: dict[str, str], keystone: str) -> tuple[str, str]:
    """A project-scoped admin token from one keystone instance (``host:port``): (token,
    the admin's user id)."""
    rc = json.loads(ok(env, "openrc", "--format", "json").stdout)
    domain = {"name": "Default"}
    auth = {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": rc["OS_USERNAME"], "password": rc["OS_PASSWORD"], "domain": domain}
            },
        },
        "scope": {"project": {"name": rc["OS_PROJECT_NAME"], "domain": domain}},
    }
    status, headers, body = http("POST", f"http://{keystone}/v3/auth/tokens", {"auth": auth})
    assert status == 201, body[:500]
    return headers["x-subject-token"], json.loads(body)["token"]["user"]["id"]


def check_replicas_share_their_state(env: dict[str, str]) -> None:
    """What one instance of a replicated service does, the other sees: keystone's tokens
    and credentials (the same Fernet and credential keys from the model), glance's images
    (one file store)."""
    one, two = addresses(env, "keystone")
    token, user = admin_token(env, f"{one}:5000")
    auth = {"X-Auth-Token": token}
    # A token issued by the first keystone validates on the second.
    status, _, body = http(
        "GET", f"http://{two}:5000/v3/auth/tokens", headers={**auth, "X-Subject-Token": token}
    )
    assert status == 200, body[:500]
    # A credential encrypted by the first decrypts on the second.
    blob = f"saline-e2e-{uuid.uuid4().hex[:8]}"
    cred = {"credential": {"type": "cert", "user_id": user, "blob": blob}}
    status, _, body = http("POST", f"http://{one}:5000/v3/credentials", cred, auth)
    assert status == 201, body[:500]
    cred_id = json.loads(body)["credential"]["id"]
    status, _, body = http("GET", f"http://{two}:5000/v3/credentials/{cred_id}", headers=auth)
    assert status == 200 and json.loads(body)["credential"]["blob"] == blob, body[:500]
    assert http("DELETE", f"http://{two}:5000/v3/credentials/{cred_id}", headers=auth)[0] == 204
    # An image uploaded through the first glance-api downloads through the second.
    g1, g2 = (f"http://{a}:9292/v2" for a in addresses(env, "glance-api"))
    meta = {"name": blob, "disk_format": "raw", "container_format": "bare"}
    status, _, body = http("POST", f"{g1}/images", meta, auth)
    assert status == 201, body[:500]
    image = json.loads(body)["id"]
    data = os.urandom(64 * 1024)
    octets = {**auth, "Content-Type": "application/octet-stream"}
    assert http("PUT", f"{g1}/images/{image}/file", data, octets)[0] == 204
    status, _, body = http("GET", f"{g2}/images/{image}/file", headers=auth)
    assert status == 200 and body == data
    assert http("DELETE", f"{g2}/images/{image}", headers=auth)[0] == 204


def openstack_cli(env: dict[str, str], podman: Podman, *args: str) -> str:
    """Debian's `openstack` (python-openstackclient, in the glance image), given only
    what `eval "$(saline openrc)"` exports."""
    return openstack_in(status(env)[GLANCE]["image"], {**env, **podman.env()}, *args)


def openstack_in(image: str, env: dict[str, str], *args: str) -> str:
    """`openstack ARGS` in ``image`` (python-openstackclient: the glance-api image has it)
    on the host's network, given only what `eval "$(saline openrc)"` exports, with saline
    and podman run in ``env``."""
    script = (
        f'eval "$({SALINE} openrc)"; '
        "exec podman run --rm --network host "
        "$(env | grep -o '^OS_[A-Z_]*' | sed 's/^/-e /') "
        f'--entrypoint openstack "$IMAGE" "$@"'
    )
    done = subprocess.run(
        ["bash", "-c", script, "openstack", *args],
        capture_output=True,
        text=True,
        env={**env, "IMAGE": image},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_stack_lifecycle(example_cloud: ExampleCloud, podman: Podman) -> None:
    example_cloud.reset()
    env, model = example_cloud.env, example_cloud.model
    running = example_cloud.containers(podman)

    # 1. A template that does not render stops `up` before anything changes: the
    # template, the state and the node, exit 1.
    good = (model / HAPROXY_CLASS).read_text()
    (model / HAPROXY_CLASS).write_text(good.replace("      timeout:\n", "      timeouts:\n"))
    failed = saline(env, "up")
    assert failed.returncode == 1
    err = failed.stderr
    assert "haproxy/files/haproxy.cfg.j2" in err and "node prx01.openstack.local" in err
    assert "Traceback (most recent call last)" not in err
    assert example_cloud.containers(podman) == running
    # A service that fails at start (haproxy refuses a value that renders) stops `up`:
    # its name, its logs, exit 1; what already runs stays.
    mariadb_before = container_id(podman, "mariadb")
    bad = good.replace("        server: 60s\n", "        server: sixty\n")
    assert bad != good
    (model / HAPROXY_CLASS).write_text(bad)
    failed = saline(env, "up")
    assert failed.returncode == 1
    err = failed.stderr
    assert "error: haproxy (haproxy on prx01.openstack.local)" in err
    assert "last log lines of" in err
    assert "Traceback (most recent call last)" not in err
    rows = status(env)
    assert rows["mariadb"]["state"] == "running"  # what already ran stays

    # 2. Fixing the model and running `up` again converges: haproxy starts; what runs is
    # kept.
    (model / HAPROXY_CLASS).write_text(good)
    report = json.loads(ok(env, "up", "--format", "json").stdout)
    assert {s["name"] for s in report["steps"] if s["kind"] == "service"} == SERVICES
    assert started(report) == {"haproxy"}
    assert container_id(podman, "mariadb") == mariadb_before
    rows = status(env)
    assert all(r["health"] == "healthy" for r in rows.values() if r["kind"] == "service")
    assert all(r["state"] == "exited (0)" for r in rows.values() if r["kind"] == "task")

    # 3. Real OpenStack calls: openstacksdk (smoke), and a stock client through openrc.
    smoke = ok(env, "smoke", "--format", "json")
    checks = [c["name"] for c in json.loads(smoke.stdout)["checks"]]
    assert checks == [
        "token",
        "catalog",
        "project and user",
        "image upload and download",
        "placement",
        "cleanup",
    ]
    token = openstack_cli(env, podman, "token", "issue", "-f", "value", "-c", "id")
    assert len(token.strip()) > 20
    openstack_cli(env, podman, "project", "create", "saline-e2e-marker")
    check_replicas_share_their_state(env)

    # 4. Secrets stay out of what saline prints, and out of the compose file.
    logs = ok(env, "logs", "keystone-identity").stdout
    compose = ok(env, "compose").stdout
    for secret in ("example-admin", "example-keystone-db", "example-glance-db"):
        assert secret not in logs and secret not in compose

    # 5. With one keystone killed, the other serves (haproxy's checks take it out); the
    # killed one comes back with `up`; bootstrap tasks do not run again.
    podman.cli(["kill", f"{STACK}_{KEYSTONE}_1"])
    assert status(env)[KEYSTONE]["state"] != "running"
    time.sleep(8)  # haproxy: 3 failed checks, 2 s apart
    proxy = json.loads(ok(env, "openrc", "--format", "json").stdout)["OS_AUTH_URL"]
    for _ in range(5):
        admin_token(env, proxy.split("/")[2])
    again = json.loads(ok(env, "up", "--format", "json").stdout)
    outcomes = {s["name"]: s["outcome"] for s in again["steps"]}
    assert outcomes[KEYSTONE] == "healthy"
    assert {outcomes[k] for k in KEYSTONES[1:]} == {"running"}  # left alone
    assert {outcomes[t] for t in TASKS} == {"already done"}

    # 6. The database survives a restart of MariaDB. (`down` and `up` with the volumes
    # kept: test_openstack_ha's full stop, on the HA example.)
    podman.cli(["restart", f"{STACK}_mariadb_1"])
    ok(env, "up")
    assert "saline-e2e-marker" in openstack_cli(env, podman, "project", "list", "-f", "value")


# Last of the tests that take the shared stack down: it needs nothing running (it
# brings the stack up with podman-compose alone).
@pytest.mark.takes_the_example_down(order=3)
def test_the_compose_file_runs_with_plain_podman_compose(
    example_cloud: ExampleCloud, podman: Podman, tmp_path: Path
) -> None:
    """No saline at run time: podman-compose alone (which cannot wait for health with
    podman < 4.6) brings up a stack that passes smoke; the entrypoints wait for ports.
    Then `saline down --volumes` removes everything, volumes too."""
    example_cloud.restore_model()
    env = example_cloud.env
    ok(env, "down", "--volumes")
    compose = tmp_path / "compose.yml"
    ok(env, "compose", "--out", str(compose))
    plain = {**env, **podman.env()}
    cmd = [sys.executable, "-m", "podman_compose", "-f", str(compose)]
    try:
        up = subprocess.run([*cmd, "up", "-d"], capture_output=True, text=True, env=plain)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        deadline = time.monotonic() + 600
        while True:
            smoke = saline(env, "smoke")
            if smoke.returncode == 0:
                break
            assert time.monotonic() < deadline, smoke.stderr
            time.sleep(5)
        tasks = {
            c["Labels"]["io.podman.compose.service"]: (c["State"], c["ExitCode"])
            for c in podman.containers(f"io.podman.compose.project={STACK}")
            if c["Labels"].get("saline.kind") == "task"
        }
        assert sorted(tasks) == sorted(TASKS) and set(tasks.values()) == {("exited", 0)}
        # `saline down --volumes` removes what podman-compose started, volumes too.
        gone = json.loads(ok(env, "down", "--volumes", "--format", "json").stdout)
        assert f"{STACK}_mariadb-data" in gone["volumes_removed"]
        assert f"{STACK}_glance-api-images" in gone["volumes_removed"]  # one for both glances
        assert podman.volumes(f"io.podman.compose.project={STACK}") == []
        assert podman.containers(f"io.podman.compose.project={STACK}") == []
    finally:
        subprocess.run([*cmd, "down", "-v"], capture_output=True, env=plain)
