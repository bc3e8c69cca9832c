"""Benchmark: saline's guest (saline guest build; docs/guest.md).

Measures, each `saline guest build` in a state folder of its own:

* cold: nothing there (apt reads the suites' lists, downloads the kernel and busybox,
  unpacks, indexes the modules, writes the files);
* rebuild: the lists and packages there, the build removed (unpack to files: the work the
  cache saves);
* cached: the build there (apt resolves the versions, the cache answers);
* the files' sizes;
* boots under QEMU TCG (the integration test's set-up: tests/integration/qemu_guest.py),
  --boots times: from QEMU's start to ``saline-guest: booted``, to the DHCP address, and
  from a QMP hot-attach to ``saline-guest: disk vdb``. Medians, and every run.

Usage: python bench/guest.py [--boots 5]
Results: printed, and bench/out/guest.json. It starts QEMU (ended by its pid); run it on
an otherwise idle machine for figures worth comparing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
SALINE = os.path.join(os.path.dirname(sys.executable), "saline")
sys.path.insert(0, os.path.join(REPO, "tests"))

from integration.qemu_guest import QemuGuest  # noqa: E402
from saline.guest import ADDRESS_LINE, BOOTED, DISK  # noqa: E402


def build(state: str) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "SALINE_STATE_DIR": state}
    t = time.perf_counter()
    done = subprocess.run(
        [SALINE, "guest", "build", "--format", "json"], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"saline guest build failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return seconds, report


def boot(folder: str, work: Path) -> dict[str, float]:
    with QemuGuest(folder, work) as vm:
        vm.wait_for(BOOTED, 300)
        booted = time.monotonic() - vm.started
        vm.wait_for(ADDRESS_LINE, 120)
        address = time.monotonic() - vm.started
        vm.wait_for(f"{DISK} vda", 120)
        volume = work / "volume.raw"
        with open(volume, "wb") as fh:
            fh.truncate(3 * 1024 * 1024)
        t = time.monotonic()
        vm.attach_disk(volume, "volume1")
        vm.wait_for(f"{DISK} vdb", 120)
        attach = time.monotonic() - t
    return {"booted": booted, "address": address, "attach": attach}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="saline-bench-guest-")
    try:
        state = os.path.join(root, "state")
        cold, report = build(state)
        print(f"cold build     {cold:6.1f} s  ({report['folder']})")
        shutil.rmtree(report["folder"])
        rebuild, _ = build(state)
        print(f"rebuild        {rebuild:6.1f} s  (lists and packages there)")
        cached, report = build(state)
        assert report["cached"]
        print(f"cached         {cached:6.1f} s")
        sizes = {i["file"]: i["size"] for i in report["guest"]["images"].values()}
        for name, size in sizes.items():
            print(f"  {name:<11} {size / 1e6:5.2f} MB")
        boots = []
        for n in range(args.boots):
            one = boot(report["folder"], Path(root) / f"boot{n}")
            boots.append(one)
            print(
                f"boot {n + 1}: booted {one['booted']:.2f} s, address {one['address']:.2f} s, "
                f"attach to vdb {one['attach']:.2f} s"
            )
        medians = {
            k: statistics.median(b[k] for b in boots) for k in ("booted", "address", "attach")
        }
        print(
            f"median of {len(boots)}: booted {medians['booted']:.2f} s, address "
            f"{medians['address']:.2f} s, attach {medians['attach']:.2f} s"
        )
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, "guest.json"), "w") as fh:
            json.dump(
                {
                    "build_seconds": {"cold": cold, "rebuild": rebuild, "cached": cached},
                    "sizes": sizes,
                    "packages": report["guest"]["packages"],
                    "boots": boots,
                    "median": medians,
                },
                fh,
                indent=1,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
