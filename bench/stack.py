"""Benchmark: the local stack of the example model, images already built.

Measures, in one run, on its own stack name and state folder:

* cold: `saline up` on empty volumes (every bootstrap task runs) until `saline smoke`
  passes;
* warm: after `saline down` (volumes kept), `up` until smoke passes (no task runs);
* no-op: `up` on the running stack;
* the floor: each service's own start time, one at a time on the running stack (its
  container stopped, started again with podman, until its health check passes: configure
  at start plus the service's own start-up), summed over the services;
* memory: each container's use after smoke (`podman stats`), and the total.

Usage: python bench/stack.py
Results: printed, and bench/out/stack.json. Needs the example's subnet free (no other
stack of the example model running).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
EXAMPLE = os.path.join(REPO, "examples", "openstack")
SALINE = os.path.join(os.path.dirname(sys.executable), "saline")
STACK = "saline-bench"

sys.path.insert(0, os.path.join(REPO, "src"))
from saline.runtime.podman import Podman  # noqa: E402


def saline(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [SALINE, *args, "--format", "json"], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        sys.exit(f"saline {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def up_to_smoke(env: dict[str, str]) -> dict[str, Any]:
    t = time.perf_counter()
    report = saline(env, "up")
    up = time.perf_counter() - t
    saline(env, "smoke")
    total = time.perf_counter() - t
    ran = [s["name"] for s in report["steps"] if s["outcome"] == "ran"]
    return {"up_s": round(up, 1), "up_to_smoke_s": round(total, 1), "tasks_run": len(ran)}


def own_start(podman: Podman, container: str) -> float:
    """Stop, start, wait healthy: the service's own start time, nothing else running."""
    podman.cli(["stop", "-t", "10", container])
    t = time.perf_counter()
    podman.cli(["start", container])
    while True:
        ok, _ = podman.healthcheck(container)
        if ok:
            return time.perf_counter() - t
        if time.perf_counter() - t > 300:
            sys.exit(f"{container} did not become healthy again")
        time.sleep(0.2)


def main() -> None:
    state = tempfile.mkdtemp(prefix="saline-bench-stack-")
    podman = Podman.for_state(state)  # the settings the saline commands below use
    env = {
        **os.environ,
        "SALINE_STATE_DIR": state,
        "SALINE_MODEL": EXAMPLE,
        "SALINE_STACK": STACK,
        "SALINE_REGISTRY": "127.0.0.1:9",  # nothing there: images come from the store
    }
    saline(env, "down", "--volumes")
    print("images ...", flush=True)
    subprocess.run([SALINE, "build"], env=env, check=True, capture_output=True)
    results: dict[str, Any] = {}
    try:
        print("cold up -> smoke ...", flush=True)
        results["cold"] = up_to_smoke(env)
        print("warm up -> smoke (after down, volumes kept) ...", flush=True)
        saline(env, "down")
        results["warm"] = up_to_smoke(env)
        t = time.perf_counter()
        saline(env, "up")
        results["noop_up_s"] = round(time.perf_counter() - t, 1)

        rows = saline(env, "status")["services"]
        services = [r["name"] for r in rows if r["kind"] == "service"]
        names = {
            c["Labels"]["io.podman.compose.service"]: c["Names"][0]
            for c in podman.containers(f"io.podman.compose.project={STACK}")
        }
        memory = podman.memory([names[r["name"]] for r in rows if r["state"] == "running"])
        results["memory_mb"] = {
            k.removeprefix(f"{STACK}_").removesuffix("_1"): round(v / 1e6, 1)
            for k, v in sorted(memory.items())
        }
        results["memory_total_mb"] = round(sum(memory.values()) / 1e6, 1)

        print("floor: each service's own start ...", flush=True)
        starts = {s: round(own_start(podman, names[s]), 1) for s in services}
        results["own_start_s"] = starts
        floor = sum(starts.values())
        results["floor_sum_s"] = round(floor, 1)
        results["ratio_cold_to_floor"] = round(results["cold"]["up_to_smoke_s"] / floor, 2)
        results["ratio_warm_to_floor"] = round(results["warm"]["up_to_smoke_s"] / floor, 2)
    finally:
        saline(env, "down", "--volumes")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "stack.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
