"""Benchmark: the image pipeline on the example model.

Measures, with a fresh registry and `saline build --push`:

* cold build: every saline image removed from the local store first (Debian packages
  still come from saline's shared apt cache unless --clear-apt-cache);
* no-op rebuild: nothing changed (target: under 5% of the cold build; nothing rebuilt,
  nothing pushed again);
* one formula changed (haproxy's template): only its image is rebuilt;
* image sizes, and the Salt layer's size (salt image minus base image; target 30 MB).

Usage: python bench/images.py [--clear-apt-cache]
Results: printed, and bench/out/images.json. It removes saline's local images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build(registry: str, *extra: str) -> tuple[float, list[dict[str, Any]]]:
    t = time.perf_counter()
    proc = subprocess.run(
        [
            SALINE,
            "build",
            "--model",
            EXAMPLE,
            "--registry",
            registry,
            "--push",
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"build failed:\n{proc.stderr[-3000:]}")
    results: list[dict[str, Any]] = json.loads(proc.stdout)
    return seconds, results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clear-apt-cache", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(REPO, "src"))
    from saline.runtime.podman import Podman
    from saline.runtime.registry import LocalRegistry
    from saline.settings import resolve

    state_dir = resolve({}, os.environ, os.getcwd()).state_dir  # as `saline build` finds it
    podman = Podman.for_state(state_dir)
    env = podman.env()
    images = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout.split()
    ours = [i for i in images if "/saline/" in i and "saline-test" not in i]
    if ours:
        subprocess.run(["podman", "rmi", "-f", *ours], capture_output=True, env=env)
    if args.clear_apt_cache:
        shutil.rmtree(os.path.join(state_dir, "apt-cache"), ignore_errors=True)

    work = tempfile.mkdtemp(prefix="saline-bench-")
    registry = LocalRegistry(f"127.0.0.1:{free_port()}", os.path.join(work, "registry"))
    registry.start()
    try:
        cold_s, cold = build(registry.address)
        noop_s, noop = build(registry.address)
        formulas = os.path.join(work, "formulas")
        shutil.copytree(os.path.join(REPO, "formulas"), formulas)
        with open(os.path.join(formulas, "haproxy", "files", "haproxy.cfg.j2"), "a") as fh:
            fh.write("# changed\n")
        change_s, change = build(registry.address, "--formulas", formulas)
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)

    sizes = {r["name"]: r["size_mb"] for r in cold}
    result = {
        "cold_build_s": cold_s,
        "noop_rebuild_s": noop_s,
        "noop_ratio": noop_s / cold_s,
        "noop_built": [r["name"] for r in noop if r["status"] != "cached"],
        "noop_pushed": [r["name"] for r in noop if r["pushed"]],
        "one_formula_change_s": change_s,
        "one_formula_change_built": [r["name"] for r in change if r["status"] == "built"],
        "per_image_cold_s": {r["name"]: r["seconds"] for r in cold},
        "sizes_mb": sizes,
        "salt_layer_mb": sizes["salt"] - sizes["base"],
        "apt_cache": "cleared" if args.clear_apt_cache else "kept",
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "images.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"cold build (all images, push):  {cold_s:7.1f} s  (apt cache {result['apt_cache']})")
    for name, s in result["per_image_cold_s"].items():
        print(f"    {name:<12} {s:6.1f} s  {sizes[name]:7.1f} MB")
    print(
        f"no-op rebuild:                  {noop_s:7.1f} s  = {100 * noop_s / cold_s:.1f}% of cold "
        f"(built: {result['noop_built'] or 'none'}, pushed: {result['noop_pushed'] or 'none'})"
    )
    built = result["one_formula_change_built"]
    print(f"one formula changed (haproxy):  {change_s:7.1f} s  (built: {built})")
    print(f"salt layer:                     {result['salt_layer_mb']:7.1f} MB (target 30 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
