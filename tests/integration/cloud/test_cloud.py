"""The whole example cloud for real, as a user of it would see it (issue 14): on the
package's stack (integration/cloud/conftest.py), `saline smoke` boots saline's guest:
kernel, ramdisk and root disk images uploaded, a network routed to the external one, a
server ACTIVE, the guest's own lines in its console log (booted, the address DHCP gave
it), its page reached through a floating address from the network node, a cinder volume
on Ceph RBD attached and seen by the guest as a new disk, everything deleted again.

The day-2 modules share the example's core profile instead (integration/example_cloud.py).
Each step prints its time (run with -s to see them).
"""

from __future__ import annotations

import json
import time

import pytest

from integration.cloud.conftest import CloudStack
from integration.test_stack import ok

pytestmark = pytest.mark.integration


def test_a_server_boots_gets_an_address_and_answers(cloud: CloudStack) -> None:
    start = time.monotonic()
    done = ok(cloud.env, "smoke", "--format", "json")
    report = json.loads(done.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    for c in report["checks"]:
        print(f"  {c['name']}: {c['seconds']} s  {c['detail']}")
    print(f"saline smoke: {time.monotonic() - start:.1f} s")
    assert report["passed"] is True
    for name in (
        "catalog",
        "placement",
        "guest images",
        "network",
        "server active",
        "console",
        "floating address",
        "volume attached",
        "cleanup",
    ):
        assert name in checks, f"{name} not among {sorted(checks)}"
    # What the guest itself printed: its boot line and the address DHCP gave it.
    assert "saline-guest: booted" in checks["console"]["detail"]
    assert "DHCP gave 192.168.199." in checks["console"]["detail"]
    # Reached through its floating address (the external network's), not just attached.
    assert "answers: " in checks["floating address"]["detail"]
    assert "172.24.4." in checks["floating address"]["detail"]
    # A cinder volume (Ceph RBD) attached to the running server: the guest saw the disk.
    assert "the guest sees vdb (1024 MiB)" in checks["volume attached"]["detail"]
    # Everything made is gone: no server, network or image of the smoke's left.
    assert checks["cleanup"]["detail"].startswith("deleted ")
