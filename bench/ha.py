"""Benchmark: the highly available example (examples/openstack-ha) under faults and a
rolling change of every service, beside the single-node example in the same run.

On stacks of their own (temporary copies of the models, their own state and registry):

* reference: the single-node example (examples/openstack): `saline up` until healthy and
  its memory (`podman stats`);
* the HA example: the same, then, with a client asking for a token and creating a project
  through the virtual address every 0.3 s (each call retried once, 1.5 s later):
  - each fault: the Galera member taking the writes, a RabbitMQ member, a keystone
    instance and the haproxy holding the virtual address killed (`podman kill`); 10 s
    later `saline up`; timed from the kill until `saline status` shows every cluster whole;
  - a rolling change of every service (one `saline apply` changing a setting of MariaDB,
    RabbitMQ, memcached, keystone, glance-api, haproxy and keepalived);
  - a full stop (`saline down`, volumes kept) and `saline up`.
  For each: the client's calls, failed calls (raw) and calls that failed again after
  their retry (target 0), and created projects lost (target 0).

Usage: python bench/ha.py
Results: printed, and bench/out/ha.json. Needs both examples' subnets free. Images missing
from podman's store are built (untimed) before each example's `saline up`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "ha.json"
SALINE = str(Path(sys.executable).parent / "saline")
VIP = "10.20.0.50"

sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
from integration.clients import WriteLoop, admin_auth, running  # noqa: E402
from saline.runtime.podman import Podman  # noqa: E402
from saline.runtime.registry import LocalRegistry  # noqa: E402

#: (file under the HA model, old text, new text): one setting of every service.
ROLLING = [
    ("classes/system/mysql/server.yml", "max_connections: 1000", "max_connections: 1100"),
    (
        "classes/cluster/openstack/message_queue.yml",
        "  - system.rabbitmq.cluster\n",
        "  - system.rabbitmq.cluster\nparameters:\n  rabbitmq:\n    server:\n"
        "      memory:\n        vm_high_watermark: 0.5\n",
    ),
    ("classes/system/memcached/server.yml", "maxconn: 8192", "maxconn: 8000"),
    ("classes/system/keystone/server.yml", "expiration: 3600", "expiration: 3500"),
    (
        "classes/system/glance/server.yml",
        "      enabled: true\n",
        "      enabled: true\n      debug: true\n",
    ),
    ("classes/system/haproxy/proxy/single.yml", "client: 60s", "client: 61s"),
    (
        "classes/cluster/openstack/proxy.yml",
        "keepalived_vip_priority: 250",
        "keepalived_vip_priority: 251",
    ),
]


def saline(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([SALINE, *args], capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        sys.exit(f"saline {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done


def timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return round(time.monotonic() - start, 1)


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


def environment(root: Path, model: Path, stack: str, registry: str) -> dict[str, str]:
    return {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_MODEL": str(model),
        "SALINE_STACK": stack,
        "SALINE_REGISTRY": registry,
        "NO_COLOR": "1",
    }


def memory_mb(env: dict[str, str], stack: str) -> float:
    podman = Podman.for_state(env["SALINE_STATE_DIR"])
    names = [
        str(c["Names"][0])
        for c in podman.containers(f"io.podman.compose.project={stack}")
        if c.get("State") == "running"
    ]
    return round(sum(podman.memory(names).values()) / 1e6, 1)


def problems(env: dict[str, str]) -> list[str]:
    rows = json.loads(saline(env, "status", "--format", "json").stdout)["services"]
    return [
        f"{r['name']}: {r['cluster']['summary']}"
        for r in rows
        if "cluster" in r and not r["cluster"]["healthy"]
    ]


def until_whole(env: dict[str, str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while problems(env):
        if time.monotonic() > deadline:
            sys.exit(f"the clusters are not whole after {timeout:.0f} s: {problems(env)}")
        time.sleep(2)


def container(env: dict[str, str], stack: str, service: str) -> str:
    podman = Podman.for_state(env["SALINE_STATE_DIR"])
    for c in podman.containers(f"io.podman.compose.project={stack}"):
        if c["Labels"].get("io.podman.compose.service") == service:
            return str(c["Names"][0])
    sys.exit(f"no container for {service}")


def vip_holder(env: dict[str, str]) -> str:
    """The keepalived service whose instance holds the virtual address."""
    rows = json.loads(saline(env, "status", "--format", "json").stdout)["services"]
    for r in rows:
        view = r.get("cluster", {})
        if r["name"].startswith("keepalived") and view.get("state") == "MASTER":
            return str(r["name"])
    sys.exit("no keepalived instance holds the virtual address")


def under_load(env: dict[str, str], label: str, action: Callable[[], None]) -> dict[str, Any]:
    rc = json.loads(saline(env, "openrc", "--format", "json").stdout)
    loop = WriteLoop(f"http://{VIP}:5000/v3", admin_auth(rc), prefix=f"bench-{int(time.time())}")
    start = time.monotonic()
    with running(loop):
        action()
    row = {
        "what": label,
        "seconds": round(time.monotonic() - start, 1),
        "calls": loop.outcome.requests,
        "failed": len(loop.outcome.raw),
        "failed_after_retry": len(loop.outcome.after_retry),
        "lost_writes": len(loop.lost()),
        "first_failures": loop.outcome.raw[:3],
    }
    print(
        f"{label:<34} {row['seconds']:>7.1f} s  {row['calls']:>5} calls  {row['failed']:>3} failed"
        f"  {row['failed_after_retry']:>3} after retry  {row['lost_writes']} lost",
        flush=True,
    )
    return row


def fault(env: dict[str, str], stack: str, service: str) -> Callable[[], None]:
    def run() -> None:
        target = service if service != "VIP" else vip_holder(env).replace("keepalived", "haproxy")
        Podman.for_state(env["SALINE_STATE_DIR"]).cli(
            ["kill", container(env, stack, target)], timeout=60
        )
        time.sleep(10)
        saline(env, "up")
        until_whole(env)

    return run


def main() -> None:
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="saline-bench-ha-") as tmp:
        root = Path(tmp)
        registry = LocalRegistry("127.0.0.1:5079", str(root / "registry"))
        registry.start()
        try:
            one = environment(
                root / "one",
                copy_model(REPO / "examples" / "openstack", root / "one-model"),
                "saline-bench-one",
                registry.address,
            )
            # The images first, untimed: `up` times starting, not building.
            saline(one, "build")
            try:
                results["single_up_seconds"] = timed(lambda: saline(one, "up"))
                results["single_memory_mb"] = memory_mb(one, "saline-bench-one")
            finally:
                saline(one, "down", "--volumes", check=False)
            print(
                f"single-node example: up {results['single_up_seconds']} s, "
                f"{results['single_memory_mb']} MB",
                flush=True,
            )

            model = copy_model(REPO / "examples" / "openstack-ha", root / "ha-model")
            stack = "saline-bench-ha"
            ha = environment(root / "ha", model, stack, registry.address)
            saline(ha, "build")
            try:
                results["ha_up_seconds"] = timed(lambda: saline(ha, "up"))
                results["ha_memory_mb"] = memory_mb(ha, stack)
                print(
                    f"HA example: up {results['ha_up_seconds']} s, {results['ha_memory_mb']} MB",
                    flush=True,
                )
                rows = []
                for label, service in (
                    ("galera writer killed", "mariadb-dbs01"),
                    ("rabbitmq member killed", "rabbitmq-msg01"),
                    ("keystone instance killed", "keystone-ctl01"),
                    ("haproxy holding the address killed", "VIP"),
                ):
                    rows.append(under_load(ha, label, fault(ha, stack, service)))

                def rolling() -> None:
                    for path, old, new in ROLLING:
                        target = model / path
                        text = target.read_text()
                        assert old in text, (old, target)
                        target.write_text(text.replace(old, new, 1))
                    saline(ha, "apply", "--yes")
                    until_whole(ha)

                rows.append(under_load(ha, "rolling change of every service", rolling))

                # A full stop: projects created before it must all be there after it (no
                # client during the stop itself: nothing serves then).
                rc = json.loads(saline(ha, "openrc", "--format", "json").stdout)
                before = WriteLoop(f"http://{VIP}:5000/v3", admin_auth(rc), prefix="bench-stop")
                with running(before):
                    time.sleep(5)

                def full_stop() -> None:
                    saline(ha, "down")
                    saline(ha, "up")
                    until_whole(ha)

                results["full_stop_seconds"] = timed(full_stop)
                results["full_stop_lost_writes"] = len(before.lost())
                results["full_stop_writes"] = len(before.created)
                print(
                    f"full stop and up: {results['full_stop_seconds']} s, "
                    f"{results['full_stop_lost_writes']} of {len(before.created)} writes lost"
                )
                results["runs"] = rows
            finally:
                saline(ha, "down", "--volumes", check=False)
        finally:
            registry.stop()
    results["memory_ratio"] = round(results["ha_memory_mb"] / results["single_memory_mb"], 2)
    results["up_ratio"] = round(results["ha_up_seconds"] / results["single_up_seconds"], 2)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
