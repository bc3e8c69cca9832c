"""The local stack end to end, for real: podman, podman-compose, MariaDB, RabbitMQ,
memcached, keystone, glance and haproxy from Debian packages, checked with openstacksdk
(saline smoke) and Debian's python-openstackclient (through `saline openrc`).

One stack at a time: the example model's addresses fix its subnet. The images are the
ones the other tests build (same podman store); the stack has its own name and state.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import free_port
from saline.runtime.podman import Podman
from tools import example, require_tools

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SALINE = str(Path(sys.executable).parent / "saline")
STACK = "saline-e2e"
HAPROXY_CLASS = Path("classes/system/haproxy/proxy/single.yml")
# What the example runs, derived from the formulas and the model (tests/tools.py).
SERVICES = set(example().instances)
TASKS = list(example().tasks)


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


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_tools("podman")
    root = tmp_path_factory.mktemp("stack")
    model = root / "model"
    shutil.copytree(REPO / "examples" / "openstack", model)
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_MODEL": str(model),
        "SALINE_STACK": STACK,
        # No registry runs there: images come from the podman store (or are built).
        "SALINE_REGISTRY": f"127.0.0.1:{free_port()}",
        "NO_COLOR": "1",
    }
    try:
        yield env
    finally:
        saline(env, "down", "--volumes")


def openstack_cli(env: dict[str, str], podman: Podman, *args: str) -> str:
    """Debian's `openstack` (python-openstackclient, in the glance image), given only
    what `eval "$(saline openrc)"` exports."""
    image = status(env)["glance-api"]["image"]
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
        env={**env, **podman.env(), "IMAGE": image},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_stack_lifecycle(stack_env: dict[str, str], podman: Podman) -> None:
    env = stack_env
    model = Path(env["SALINE_MODEL"])

    # 1. A service whose configure step fails stops `up`: its name, its logs, exit 1.
    good = (model / HAPROXY_CLASS).read_text()
    (model / HAPROXY_CLASS).write_text(good.replace("      timeout:\n", "      timeouts:\n"))
    failed = saline(env, "up")
    assert failed.returncode == 1
    err = failed.stderr
    assert "error: haproxy (haproxy on prx01.openstack.local)" in err
    assert "last log lines of" in err and "configure failed" in err
    assert "Traceback (most recent call last)" not in err
    rows = status(env)
    assert rows["mariadb"]["state"] == "running"  # what already ran stays

    # 2. Fixing the model and running `up` again converges; running services are kept.
    mariadb_before = container_id(podman, "mariadb")
    (model / HAPROXY_CLASS).write_text(good)
    up = ok(env, "up", "--format", "json")
    report = json.loads(up.stdout)
    assert {s["name"] for s in report["steps"] if s["kind"] == "service"} == SERVICES
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
        "cleanup",
    ]
    token = openstack_cli(env, podman, "token", "issue", "-f", "value", "-c", "id")
    assert len(token.strip()) > 20
    openstack_cli(env, podman, "project", "create", "saline-e2e-marker")

    # 4. Secrets stay out of what saline prints, and out of the compose file.
    logs = ok(env, "logs", "keystone-identity").stdout
    compose = ok(env, "compose").stdout
    for secret in ("example-admin", "example-keystone-db", "example-glance-db"):
        assert secret not in logs and secret not in compose

    # 5. A killed container comes back with `up`; bootstrap tasks do not run again.
    podman.cli(["kill", f"{STACK}_keystone_1"])
    assert status(env)["keystone"]["state"] != "running"
    again = json.loads(ok(env, "up", "--format", "json").stdout)
    outcomes = {s["name"]: s["outcome"] for s in again["steps"]}
    assert outcomes["keystone"] == "healthy"
    assert {outcomes[t] for t in TASKS} == {"already done"}

    # 6. The database survives a restart of MariaDB, and `down` + `up` (volumes kept).
    podman.cli(["restart", f"{STACK}_mariadb_1"])
    ok(env, "up")
    assert "saline-e2e-marker" in openstack_cli(env, podman, "project", "list", "-f", "value")
    down = ok(env, "down")
    assert "volumes kept" in down.stdout
    # No secrets left behind: the pillar files go with the stack.
    assert not (Path(env["SALINE_STATE_DIR"]) / "stacks" / STACK / "pillar").exists()
    assert not podman.containers(f"io.podman.compose.project={STACK}")
    back = json.loads(ok(env, "up", "--format", "json").stdout)
    assert [s for s in back["steps"] if s["outcome"] == "ran"] == []  # the data is there
    assert "saline-e2e-marker" in openstack_cli(env, podman, "project", "list", "-f", "value")
    ok(env, "smoke")

    # 7. down --volumes removes everything; the next `up` starts from scratch.
    gone = json.loads(ok(env, "down", "--volumes", "--format", "json").stdout)
    assert f"{STACK}_dbs01-mariadb-data" in gone["volumes_removed"]
    assert podman.volumes(f"io.podman.compose.project={STACK}") == []


def test_the_compose_file_runs_with_plain_podman_compose(
    stack_env: dict[str, str], podman: Podman, tmp_path: Path
) -> None:
    """No saline at run time: podman-compose alone (which cannot wait for health with
    podman < 4.6) brings up a stack that passes smoke; the entrypoints wait for ports."""
    env = stack_env
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
    finally:
        subprocess.run([*cmd, "down", "-v"], capture_output=True, env=plain)
