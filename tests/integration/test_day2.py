"""Day 2 on the real stack: `saline plan` and `saline apply` change a running cloud, with
a client asking keystone for a token every 0.2 s through haproxy the whole time.

The example's stack the session shares (integration/example_cloud.py: the main job
brings it up), its model in a git repository; the tests run in order, each changing the
model and checking what runs:

* nothing changed: the plan is empty (exit 0 with --detailed-exitcode);
* one keystone value: only keystone's two instances change, one at a time; 0 failed
  requests; the new value is seen through the API;
* a secret: the plan shows it changed, masked;
* a change that lets keystone start but breaks its API: the gate fails, the instance is
  restored by itself, apply exits 1 naming it; 0 failed requests;
* apply killed midway, then resumed; the release is recorded;
* memcached (one instance): only memcached is restarted;
* rollback: back to the release before, from the records (it was applied from
  uncommitted changes: git cannot give it), and only memcached changes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from integration.clients import TokenLoop, admin_auth, running
from integration.example_cloud import PROXY, ExampleCloud
from integration.test_stack import SALINE, ok, saline
from saline.runtime.podman import Podman
from tools import EXAMPLE

pytestmark = pytest.mark.integration

KEYSTONE_CLASS = Path("classes/system/keystone/server.yml")


@pytest.fixture(scope="module")
def cloud(example_cloud: ExampleCloud) -> ExampleCloud:
    """The shared example stack (integration/example_cloud.py), running the example as
    committed."""
    example_cloud.reset()
    return example_cloud


def client_for(env: dict[str, str]) -> TokenLoop:
    rc = json.loads(ok(env, "openrc", "--format", "json").stdout)
    return TokenLoop(f"http://{PROXY}:5000/v3", admin_auth(rc))


def under_load(
    env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], TokenLoop]:
    with running(client_for(env)) as client:
        done = saline(env, *args)
    return done, client


def plan(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = saline(env, "plan", "--format", "json", "--detailed-exitcode")
    assert done.returncode in (0, 2), done.stderr
    return done.returncode, json.loads(done.stdout)


def token_lifetime(env: dict[str, str]) -> float:
    return client_for(env).token_lifetime()


def test_apply_and_rollback_refuse_a_stack_that_is_not_running(
    tmp_path: Path, podman: Podman
) -> None:
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(tmp_path / "state"),
        "SALINE_MODEL": str(EXAMPLE),
        "SALINE_STACK": "saline-day2-stopped",
        "NO_COLOR": "1",
    }
    for args in (("apply", "--yes"), ("rollback", "--yes")):
        done = saline(env, *args)
        assert done.returncode == 1, done.stdout + done.stderr
        if args[0] == "apply":
            assert "stack saline-day2-stopped is not running: start it with `saline up`" in (
                done.stderr
            )
        else:  # nothing was ever applied there
            assert "no earlier release to roll back to" in done.stderr
        assert "Traceback" not in done.stderr
    assert podman.containers("io.podman.compose.project=saline-day2-stopped") == []


def test_nothing_changed_plans_nothing(cloud: ExampleCloud) -> None:
    code, data = plan(cloud.env)
    assert code == 0, data["summary"]
    assert data["steps"] == [] and data["format_version"] == 1


def test_a_keystone_value_rolls_out_with_zero_failed_requests(
    cloud: ExampleCloud, podman: Podman
) -> None:
    before = cloud.containers(podman)
    cloud.edit(KEYSTONE_CLASS, "expiration: 3600", "expiration: 7200")
    code, data = plan(cloud.env)
    assert code == 2
    changed = {c["service"] for c in data["changes"]}
    assert changed == {"keystone"}, data["summary"]
    assert all(c["action"] in ("restart", "reload") for c in data["changes"])
    assert any(
        cause["key"] == "keystone:server:tokens:expiration"
        and cause["location"].startswith(str(KEYSTONE_CLASS))
        for c in data["changes"]
        for cause in c["causes"]
    )
    done, client = under_load(cloud.env, "apply", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert client.requests > 20 and client.failures == [], client.failures[:5]
    assert token_lifetime(cloud.env) == 7200
    after = cloud.containers(podman)
    untouched = {n for n in before if not n.startswith("keystone")}
    assert {n: after.get(n) for n in untouched} == {n: before[n] for n in untouched}
    assert plan(cloud.env)[0] == 0
    cloud.commit("token expiration 7200")


def test_a_secret_change_is_planned_masked(cloud: ExampleCloud) -> None:
    secrets = cloud.model / "classes/cluster/openstack/secrets.yml"
    original = secrets.read_text()
    line = next(x for x in original.splitlines() if "keystone_db_password:" in x)
    old_value = line.split(":", 1)[1].strip()
    cloud.edit(
        Path("classes/cluster/openstack/secrets.yml"),
        line,
        line.replace(old_value, "brand-new-secret-1"),
    )
    try:
        done = saline(cloud.env, "plan")
        assert done.returncode == 0, done.stderr
        assert "brand-new-secret-1" not in done.stdout and old_value not in done.stdout
        assert "changed (secret)" in done.stdout and "********" in done.stdout
    finally:
        secrets.write_text(original)


def test_a_change_that_breaks_the_api_is_rolled_back_by_itself(
    cloud: ExampleCloud, podman: Podman
) -> None:
    before = cloud.containers(podman)
    # keystone starts and answers its health check (/v3), but cannot issue a token: JWS
    # tokens need keys the model does not give. The gate's real API call fails.
    text = (cloud.model / KEYSTONE_CLASS).read_text()
    cloud.edit(KEYSTONE_CLASS, "engine: fernet", "engine: jws")
    try:
        done, client = under_load(cloud.env, "apply", "--yes")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "keystone@" in done.stderr and "restored" in done.stderr
        assert client.failures == [], client.failures[:5]
        # What ran before runs again; the rollout stopped at the first instance.
        after = cloud.containers(podman)
        assert set(after) == set(before)
        releases = json.loads(ok(cloud.env, "releases", "--format", "json").stdout)
        assert releases["releases"][-1]["outcome"] == "failed"
    finally:
        (cloud.model / KEYSTONE_CLASS).write_text(text)
    # The model back as it was: the restored instance is what the model says.
    assert plan(cloud.env)[0] == 0


def test_apply_killed_midway_resumes_and_finishes(cloud: ExampleCloud) -> None:
    cloud.edit(KEYSTONE_CLASS, "expiration: 7200", "expiration: 5400")
    journal = Path(cloud.env["SALINE_STATE_DIR"]) / "stacks" / cloud.stack / "journal.jsonl"
    proc = subprocess.Popen(
        [SALINE, "apply", "--yes"], env=cloud.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and '"phase": "swapped"' in journal.read_text():
            break
        time.sleep(0.2)
    assert proc.poll() is None, "apply ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert journal.exists()
    done = ok(cloud.env, "apply", "--yes", "--format", "json")
    result = json.loads(done.stdout)
    assert result["resumed"] is True
    outcomes = [s["outcome"] for s in result["steps"]]
    assert "done" in outcomes
    assert not journal.exists()
    assert token_lifetime(cloud.env) == 5400
    assert plan(cloud.env)[0] == 0
    cloud.commit("token expiration 5400")


def test_a_change_to_memcached_restarts_only_memcached(cloud: ExampleCloud, podman: Podman) -> None:
    before = cloud.containers(podman)
    path = Path("classes/system/memcached/server.yml")
    cloud.edit(path, "cache_size: 64", "cache_size: 96")
    code, data = plan(cloud.env)
    assert code == 2 and {c["service"] for c in data["changes"]} == {"memcached"}
    # One instance: nothing can serve while it restarts, so no client loop here.
    ok(cloud.env, "apply", "--yes")
    after = cloud.containers(podman)
    changed = {n for n in before if after.get(n) != before[n]}
    assert changed == {n for n in before if n.startswith("memcached")}
    cloud.commit("memcached")


def test_rollback_goes_back_to_the_release_before(cloud: ExampleCloud, podman: Podman) -> None:
    history = json.loads(ok(cloud.env, "releases", "--format", "json").stdout)["releases"]
    applied = [r["id"] for r in history if r["outcome"] == "applied"]
    current, previous = applied[-1], applied[-2]
    before = cloud.containers(podman)
    # One memcached: nothing serves while it restarts, so no client loop (as above).
    done = ok(cloud.env, "rollback", "--yes", "--format", "json")
    assert json.loads(done.stdout)["release"] == previous != current
    # The release before ran memcached with 64 MB: only memcached is replaced, from the
    # records (that release was applied from uncommitted changes: git cannot give it).
    after = cloud.containers(podman)
    assert {n for n in before if after.get(n) != before[n]} == {
        n for n in before if n.startswith("memcached")
    }
    memcached = next(n for n in after if n.startswith("memcached"))
    container_id = after[memcached].split("@")[0]  # "ID@STARTED", see ExampleCloud.containers
    conf = podman.exec(container_id, ["cat", "/etc/memcached.conf"])
    assert "-m 64" in conf, conf
    history = json.loads(ok(cloud.env, "releases", "--format", "json").stdout)["releases"]
    assert history[-1]["id"] == previous and history[-1]["outcome"] == "applied"
    # What runs is the earlier release; the model (cache_size 96) now differs from it.
    code, data = plan(cloud.env)
    assert code == 2 and {c["service"] for c in data["changes"]} == {"memcached"}
