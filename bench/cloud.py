"""Benchmark: the whole example cloud (issue 14), on a stack of its own (10.33.0.0/24).

Measures, images built first (untimed: `saline build`):

* cold `saline up` of the whole cloud (every node, service and bootstrap task, from no
  containers and no volumes);
* `saline smoke` --runs times: each check's seconds, among them the server's (`server
  active`: from `server create` to ACTIVE; `console`: from ACTIVE to the guest's boot line
  and DHCP address in its console log; `floating address`: until its page answers through
  the floating address; `volume attached`: until the guest reports the disk);
* the stack's memory (`podman stats`, every container) after the first smoke;
* `saline down --volumes`;
* the floor, in the same run: the same guest booted --runs times by QEMU alone on this
  machine (bench/guest.py's boot: TCG, direct kernel boot, a disk hot-attached over
  QMP), and the ratios of the cloud's figures to it: a server's create to its boot line
  (`server active` + `console`) against QEMU's start to the same line, and `volume
  attached` against the hot-attach.

Usage: python bench/cloud.py [--runs 3]
Results: printed, and bench/out/cloud.json. A registry of its own is started unless
SALINE_REGISTRY names one. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from guest import boot

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
SALINE = os.path.join(os.path.dirname(sys.executable), "saline")
EXAMPLE = os.path.join(REPO, "examples", "openstack")
STACK = "saline-bench-cloud"
EXAMPLE_PREFIX, PREFIX = "10.10.0.", "10.33.0."
UNITS = {
    "b": 1e-6,
    "kb": 1e-3,
    "kib": 1.024e-3,
    "mb": 1.0,
    "mib": 1.048576,
    "gb": 1e3,
    "gib": 1073.741824,
}


def saline(env: dict[str, str], *args: str) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run([SALINE, *args], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(
            f"saline {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return seconds, done.stdout


def memory_mb(env: dict[str, str]) -> dict[str, float]:
    """Each running container of the stack: MB in use (podman stats)."""
    done = subprocess.run(
        ["podman", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = {}
    for line in done.stdout.splitlines():
        name, use = line.split(" ", 1)
        found = re.match(r"([\d.]+)\s*([a-zA-Z]+)", use.split("/")[0].strip())
        if name.startswith(STACK + "_") and found:
            out[name] = float(found.group(1)) * UNITS.get(found.group(2).lower(), 1.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="saline-bench-cloud-"))
    model = root / "model"
    shutil.copytree(EXAMPLE, model)
    for path in sorted(model.rglob("*.yml")):
        text = path.read_text()
        if EXAMPLE_PREFIX in text:
            path.write_text(text.replace(EXAMPLE_PREFIX, PREFIX))
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_MODEL": str(model),
        "SALINE_STACK": STACK,
        "NO_COLOR": "1",
        "CONTAINERS_CONF": os.environ.get(
            "CONTAINERS_CONF", os.path.expanduser("~/.local/state/saline/containers.conf")
        ),
    }
    from saline.runtime.registry import LocalRegistry

    own = None
    if not os.environ.get("SALINE_REGISTRY"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        own = LocalRegistry(f"127.0.0.1:{port}", str(root / "registry"))
        own.start()
        env["SALINE_REGISTRY"] = own.address
    result: dict[str, Any] = {"runs": []}
    guest: dict[str, Any] = {}
    try:
        print("building images (untimed)...", flush=True)
        saline(env, "build", "--push")
        result["up_s"], _ = saline(env, "up")
        print(f"saline up (cold): {result['up_s']:.1f} s", flush=True)
        for i in range(args.runs):
            seconds, out = saline(env, "smoke", "--format", "json")
            checks = {c["name"]: c["seconds"] for c in json.loads(out)["checks"]}
            result["runs"].append({"smoke_s": seconds, "checks": checks})
            print(f"smoke {i + 1}: {seconds:.1f} s {checks}", flush=True)
            if i == 0:
                _, built = saline(env, "guest", "build", "--format", "json")
                guest = json.loads(built)
                mem = memory_mb(env)
                result["memory_mb"] = round(sum(mem.values()))
                result["containers"] = len(mem)
                print(f"memory: {result['memory_mb']} MB in {len(mem)} containers", flush=True)
        for name in ("server active", "console", "floating address", "volume attached"):
            values = [r["checks"][name] for r in result["runs"] if name in r["checks"]]
            if values:
                result[f"median {name} s"] = statistics.median(values)
    finally:
        result["down_s"], _ = saline(env, "down", "--volumes")
        if own is not None:
            own.stop()
    # The floor: the same guest under QEMU alone, the stack gone (nothing else running).
    floors = [boot(guest["folder"], root / f"qemu-{i}") for i in range(args.runs)]
    shutil.rmtree(root, ignore_errors=True)
    result["floor"] = floors
    to_boot = [
        r["checks"]["server active"] + r["checks"]["console"]
        for r in result["runs"]
        if "console" in r["checks"]
    ]
    attach = [
        r["checks"]["volume attached"] for r in result["runs"] if "volume attached" in r["checks"]
    ]
    floor_boot = statistics.median(f["booted"] for f in floors)
    floor_attach = statistics.median(f["attach"] for f in floors)
    result["ratios"] = {
        "server create to boot line / QEMU start to boot line": round(
            statistics.median(to_boot) / floor_boot, 1
        ),
        "volume attached / QMP hot-attach": round(statistics.median(attach) / floor_attach, 1),
    }
    result["median floor booted s"] = floor_boot
    result["median floor attach s"] = floor_attach
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cloud.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "floor")}, indent=2))


if __name__ == "__main__":
    main()
