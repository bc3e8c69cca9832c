"""Day 2 on the whole cloud: a compute node's change under a running server. The smoke's
server runs (the package's kept_server); the model turns on nova-compute's debug logging
on the compute node. `saline plan` restarts nova-compute only and says the running
servers keep running; `saline apply` restarts it (gated on its API check: the compute
service up and its hypervisor listed); the server is still ACTIVE and its QEMU process
the same one; the plan is empty again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from integration.cloud.conftest import CloudStack
from integration.test_stack import ok, saline
from release_tools import edit

pytestmark = pytest.mark.integration

COMPUTE_CLASS = Path("classes/system/nova/compute.yml")
#: The QEMU processes in nova-libvirt's container: pid and start time (clock ticks since
#: boot: a new process with a reused pid differs).
QEMU = r"""
import os
for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    if cmd.startswith(b"/usr/bin/qemu-system"):
        print(pid, stat.rsplit(")", 1)[1].split()[19])
"""


def test_a_compute_node_change_keeps_the_running_server(
    cloud: CloudStack, kept_server: str
) -> None:
    conn = cloud.connect()
    vm = conn.compute.find_server(kept_server, ignore_missing=False)
    assert vm.status == "ACTIVE"
    qemu = cloud.run("nova-libvirt", ["python3", "-c", QEMU]).split("\n")
    assert [line for line in qemu if line], "no QEMU process for the kept server"

    edit(
        Path(cloud.env["SALINE_MODEL"]) / COMPUTE_CLASS,
        "virt_type: qemu",
        "virt_type: qemu\n      debug: true",
    )
    planned = saline(cloud.env, "plan", "--format", "json", "--detailed-exitcode")
    assert planned.returncode == 2, planned.stdout[-2000:] + planned.stderr[-2000:]
    changes = json.loads(planned.stdout)["changes"]
    assert {(c["service"], c["action"]) for c in changes} == {("nova-compute", "restart")}
    assert any("running servers keep running" in r for r in changes[0]["reasons"]), changes
    start = time.monotonic()
    ok(cloud.env, "apply", "--yes")
    print(f"\nday 2: apply restarted nova-compute: {time.monotonic() - start:.1f} s")

    vm = conn.compute.get_server(vm)
    assert vm.status == "ACTIVE", vm.status
    assert cloud.run("nova-libvirt", ["python3", "-c", QEMU]).split("\n") == qemu
    conf = cloud.run("nova-compute", ["grep", "^debug", "/etc/nova/nova.conf"])
    assert conf.strip() == "debug = true", conf
    assert saline(cloud.env, "plan", "--detailed-exitcode").returncode == 0
