"""An OpenStack release upgrade on the real stack: the example's keystone and glance-api
from Zed on Debian 12 to 2025.1 on Debian 13 by one model value, rolled out by `saline
apply` while clients ask keystone (a token, then a new project: a write) and glance
(the image list) through haproxy the whole time.

Checked: the plan names the upgrades and their phases in order (backup and expand before
the service's first instance, migrate and contract after its last; no db-sync); apply
takes a real dump, every instance runs the 2025.1 packages after it, no client call
fails after one retry, no write is lost, smoke passes and nothing is left to plan.
Then going back is refused everywhere (`rollback`, `plan` and `up` with the model at Zed
again), naming the key and the backup. The stack's schema is 2025.1's then: this test
takes the shared example down (volumes too) at its end.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from integration.clients import ImageListLoop, WriteLoop, admin_auth, running
from integration.example_cloud import PROXY, ExampleCloud
from integration.test_stack import ok, saline
from saline.runtime.podman import Podman

pytestmark = pytest.mark.integration

CLUSTER_CLASS = Path("classes/cluster/openstack/init.yml")
UPGRADED = ("keystone", "glance-api")


def installed(podman: Podman, container: str, package: str) -> str:
    return podman.exec(container, ["dpkg-query", "-W", "-f", "${Version}", package]).strip()


# Second of the tests that take the shared stack down: it removes the volumes too
# (the schema is 2025.1's).
@pytest.mark.takes_the_example_down(order=2)
def test_zed_to_2025_1_rolls_out_without_a_failed_call_and_cannot_go_back(
    example_cloud: ExampleCloud, podman: Podman
) -> None:
    cloud = example_cloud
    env = cloud.env
    cloud.reset()
    try:
        _upgrade_and_refuse_going_back(cloud, env, podman)
    finally:
        # The schema is 2025.1's: the first commit cannot run on it any more.
        cloud.restore_model()
        saline(env, "down", "--volumes")


def _upgrade_and_refuse_going_back(
    cloud: ExampleCloud, env: dict[str, str], podman: Podman
) -> None:
    cloud.edit(CLUSTER_CLASS, "openstack_version: zed", 'openstack_version: "2025.1"')
    cloud.commit("OpenStack 2025.1")
    ok(env, "build")

    plan = json.loads(ok(env, "plan", "--format", "json").stdout)
    upgrades = {u["service"]: (u["from"], u["to"]) for u in plan["upgrades"]}
    assert upgrades == {s: ("zed", "2025.1") for s in UPGRADED}
    assert not [t for t in plan["tasks"] if t["task"] == "db-sync"]
    order = [(s["kind"], s["key"], s["action"]) for s in plan["steps"]]
    for service in UPGRADED:
        mine = [i for i, (kind, key, _) in enumerate(order) if key.partition("@")[0] == service]
        phases = [order[i][2] for i in mine if order[i][0] == "upgrade"]
        assert phases == ["backup", "expand", "migrate", "contract"]
        instances = [i for i in mine if order[i][0] == "instance"]
        assert len(instances) == 2 and all(order[i][2] == "replace" for i in instances)
        expand = next(i for i in mine if order[i][2] == "expand")
        migrate = next(i for i in mine if order[i][2] == "migrate")
        assert expand < min(instances) and max(instances) < migrate
    text = ok(env, "plan").stdout
    assert "Release upgrade of keystone: zed -> 2025.1" in text

    rc = json.loads(ok(env, "openrc", "--format", "json").stdout)
    auth = admin_auth(rc)
    writes = WriteLoop(f"http://{PROXY}:5000/v3", auth, "upgrade")
    images = ImageListLoop(f"http://{PROXY}:9292", auth_url=f"http://{PROXY}:5000/v3", auth=auth)
    start = time.monotonic()
    with running(writes), running(images):
        applied = saline(env, "apply", "--yes")
    seconds = time.monotonic() - start
    assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-3000:]
    report = (
        f"{seconds:.0f} s; keystone: {writes.outcome.report()}; glance: {images.outcome.report()}"
    )
    print(f"upgrade: {report}")
    assert writes.outcome.requests > 20 and images.outcome.requests > 20, report
    assert writes.outcome.after_retry == [] and images.outcome.after_retry == [], report
    assert writes.lost() == []

    # Every instance runs 2025.1's packages; the backups are real dumps.
    for service, package in (("keystone", "keystone"), ("glance-api", "glance-api")):
        for c in cloud.containers(podman):
            if c.startswith(f"{service}-"):
                name = f"{cloud.stack}_{c}_1"
                assert installed(podman, name, package).startswith(("2:27.", "2:30.")), name
    state = Path(env["SALINE_STATE_DIR"]) / "stacks" / cloud.stack / "backups"
    dumps = sorted(state.glob("*.sql"))
    assert sorted(d.name.split("-", 1)[1] for d in dumps) == ["glance-api.sql", "keystone.sql"]
    for dump in dumps:
        assert "CREATE TABLE" in dump.read_text() and oct(dump.stat().st_mode)[-3:] == "600"
    assert "smoke passed" in ok(env, "smoke").stdout
    assert saline(env, "plan", "--detailed-exitcode").returncode == 0

    # Going back is refused wherever it is asked, naming the key and the backup.
    back = saline(env, "rollback", "--yes")
    assert back.returncode == 1 and "Traceback" not in back.stderr
    named = re.search(
        r"key parameters:(keystone|glance):server:version: (keystone|glance-api): "
        r"2025\.1 -> zed is a downgrade, and the contract phase",
        back.stderr,
    )
    assert named, back.stderr
    assert str(state / f"{plan['desired_release']}-{named.group(2)}.sql") in back.stderr
    cloud.restore_model()
    for args in (("plan",), ("up",)):
        refused = saline(env, *args)
        assert refused.returncode == 1, args
        assert "is a downgrade" in refused.stderr and "Traceback" not in refused.stderr
