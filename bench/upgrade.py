"""Benchmark: patching and an OpenStack release upgrade on the example, each beside its
floor in the same run.

On a stack of its own (a temporary copy of examples/openstack, its own state and
registry; the example's subnet must be free):

* `saline outdated` on the example with fresh state (apt's lists downloaded) and again
  (lists kept), beside its floor: `apt-get update` of the same suites alone, in an
  empty folder (what `outdated` cannot do without);
* a small rollout for scale: one keystone value (a reload of keystone's two
  instances), applied with clients asking keystone (a token, then a new project) and
  glance (the image list) through haproxy every 0.3 s, each failed call retried once
  1.5 s later;
* a patch rollout: the model built and started from bookworm alone, then switched to
  bookworm with its updates and security suites: `saline build`, then `saline apply`
  under the same clients (every image whose packages moved is replaced);
* the release upgrade: keystone and glance-api from Zed (Debian 12) to 2025.1 (Debian 13)
  by `_param:openstack_version`: `saline build`, then `saline apply` under the clients
  (backup, expand, four instances replaced, migrate, contract), per instance beside the
  patch's plain replace of each instance (its floor).

For each rollout: seconds, client calls, failed calls (raw), calls that failed again
after their retry (target 0), projects lost (target 0). Images are built untimed.

Usage: python bench/upgrade.py
Results: printed, and bench/out/upgrade.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))
from ha import copy_model, environment, saline, timed  # noqa: E402
from integration.clients import ImageListLoop, WriteLoop, admin_auth, running  # noqa: E402
from saline.build.graph import debian_sources  # noqa: E402
from saline.build.packages import Suites  # noqa: E402
from saline.runtime.apt import AptArchive  # noqa: E402
from saline.runtime.registry import LocalRegistry  # noqa: E402
from saline.settings import DebianMirrors  # noqa: E402

OUT = REPO / "bench" / "out" / "upgrade.json"
PROXY = "10.10.0.40"
STACK = "saline-bench-upgrade"
IMAGES = Path("classes/system/saline/images.yml")
CLUSTER = Path("classes/cluster/openstack/init.yml")
KEYSTONE = Path("classes/system/keystone/server.yml")
BOOKWORM_ONLY = (
    "        - ${_param:debian_release}\n"
    "        - ${_param:debian_release}-updates\n"
    "        - ${_param:debian_release}-security\n",
    "        - ${_param:debian_release}\n",
)


def edit(model: Path, path: Path, old: str, new: str) -> None:
    target = model / path
    text = target.read_text()
    if old not in text:
        sys.exit(f"{old!r} not in {target}")
    target.write_text(text.replace(old, new, 1))


def under_clients(env: dict[str, str], label: str, action: Callable[[], object]) -> dict[str, Any]:
    rc = json.loads(saline(env, "openrc", "--format", "json").stdout)
    auth = admin_auth(rc)
    keystone = f"http://{PROXY}:5000/v3"
    writes = WriteLoop(keystone, auth, prefix=f"bench-{int(time.time())}")
    images = ImageListLoop(f"http://{PROXY}:9292", auth_url=keystone, auth=auth)
    start = time.monotonic()
    with running(writes), running(images):
        action()
    row = {
        "what": label,
        "seconds": round(time.monotonic() - start, 1),
        "calls": writes.outcome.requests + images.outcome.requests,
        "failed": len(writes.outcome.raw) + len(images.outcome.raw),
        "failed_after_retry": len(writes.outcome.after_retry) + len(images.outcome.after_retry),
        "lost_writes": len(writes.lost()),
        "first_failures": (writes.outcome.raw + images.outcome.raw)[:4],
    }
    print(
        f"{label:<40} {row['seconds']:>7.1f} s  {row['calls']:>5} calls  {row['failed']:>3} "
        f"failed  {row['failed_after_retry']:>3} after retry  {row['lost_writes']} lost",
        flush=True,
    )
    return row


def apply(env: dict[str, str]) -> Callable[[], object]:
    return lambda: saline(env, "apply", "--yes")


def apt_update_floor(root: Path) -> float:
    """apt-get update of the example's suites in an empty folder: what `outdated` must
    at least download and parse."""
    suites = Suites(("bookworm", "bookworm-updates", "bookworm-security"))
    archive = AptArchive(str(root / "apt-floor"), debian_sources(DebianMirrors(), suites))
    return timed(archive.update)


def main() -> None:
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="saline-bench-upgrade-") as tmp:
        root = Path(tmp)
        registry = LocalRegistry("127.0.0.1:5078", str(root / "registry"))
        registry.start()
        model = copy_model(REPO / "examples" / "openstack", root / "model")
        env = environment(root, model, STACK, registry.address)
        try:
            # `outdated` on fresh state, then again, beside apt-get update alone.
            results["outdated_first_seconds"] = timed(lambda: saline(env, "outdated", check=False))
            results["outdated_again_seconds"] = timed(lambda: saline(env, "outdated", check=False))
            results["apt_update_floor_seconds"] = apt_update_floor(root)
            print(
                f"outdated: first {results['outdated_first_seconds']} s, again "
                f"{results['outdated_again_seconds']} s; apt-get update alone "
                f"{results['apt_update_floor_seconds']} s",
                flush=True,
            )

            # Bookworm alone, running.
            edit(model, IMAGES, *BOOKWORM_ONLY)
            saline(env, "build")
            saline(env, "up")
            rows = []
            # The floor of a rollout: keystone's two instances restarted on a new value.
            edit(model, KEYSTONE, "expiration: 3600", "expiration: 3500")
            rows.append(
                under_clients(
                    env,
                    "keystone value (reload, 2 instances)",
                    apply(env),
                )
            )
            # Patching: the updates and security suites.
            edit(model, IMAGES, BOOKWORM_ONLY[1], BOOKWORM_ONLY[0])
            saline(env, "build")
            plan = json.loads(saline(env, "plan", "--format", "json").stdout)
            results["patch_instances"] = len(plan["changes"])
            results["patch_packages"] = sum(len(c.get("packages", [])) for c in plan["changes"])
            rows.append(
                under_clients(
                    env,
                    f"patch ({results['patch_instances']} instances)",
                    apply(env),
                )
            )
            # The release upgrade.
            edit(model, CLUSTER, "openstack_version: zed", 'openstack_version: "2025.1"')
            saline(env, "build")
            rows.append(
                under_clients(
                    env,
                    "release upgrade zed -> 2025.1 (4 instances)",
                    apply(env),
                )
            )
            results["smoke_after"] = "smoke passed" in saline(env, "smoke").stdout
            results["rollouts"] = rows
            # Per replaced instance, the upgrade beside the patch (a plain replace of each).
            patch, upgrade = rows[1], rows[2]
            per_patch = patch["seconds"] / max(results["patch_instances"], 1)
            results["upgrade_seconds_per_instance"] = round(upgrade["seconds"] / 4, 1)
            results["patch_seconds_per_instance"] = round(per_patch, 1)
            results["upgrade_to_patch_per_instance"] = round(upgrade["seconds"] / 4 / per_patch, 2)
        finally:
            saline(env, "down", "--volumes", check=False)
            registry.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    shutil.which("podman") or sys.exit("podman is needed")
    main()
