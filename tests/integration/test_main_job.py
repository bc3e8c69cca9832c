"""The README's main job (`scripts/main-job`) on the example model (its core profile: the
whole cloud's is integration/cloud/test_cloud.py), for real: compile,
render every node, start a registry, build (images are shared with the other tests) and
push, list, bring the OpenStack stack up and pass smoke; then run again, which converges.

The job runs once per session, in its own state folder, registry port and stack name: it
is what brings up the example stack the other modules share (integration/example_cloud.py);
this module checks what it printed and wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.example_cloud import ExampleCloud
from tools import REPO, core

pytestmark = pytest.mark.integration

GOLDEN = REPO / "tests" / "data" / "golden" / "openstack"


def files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_main_job(example_cloud: ExampleCloud) -> None:
    expected = core()  # what the stack runs, from the formulas and the model
    images, services, tasks = len(expected.images), len(expected.instances), len(expected.tasks)
    done, again = example_cloud.main_job
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = example_cloud.out
    assert (out / "inventory.json").stat().st_size > 0
    # Every node's config files: exactly the golden trees' files (test_render.py checks
    # their content).
    assert files(out / "configs") == [
        f for f in files(GOLDEN) if f.parts[1] in expected.node_services.get(f.parts[0], ())
    ]
    assert f"{images} pushed" in done.stdout  # a fresh registry gets every image
    lines = done.stdout.split("== stack")[0].splitlines()[-len(expected.services) :]
    listed = [line.split()[0] for line in lines]
    assert listed == list(expected.services)
    # The stack is up on the example model and real OpenStack calls pass.
    assert (
        f"stack {example_cloud.stack} is up: {services} services healthy, "
        f"{tasks} bootstrap task(s) run"
    ) in done.stdout
    assert "smoke passed: " in done.stdout
    for check in ("image upload and download", "placement"):
        assert f"ok   {check} (" in done.stdout + done.stderr, check
    # A re-run converges: nothing built, pushed, restarted or run again.
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"0 built, {images} up to date, 0 pushed" in again.stdout
    assert f"{services} services healthy, 0 bootstrap task(s) run" in again.stdout
    assert "smoke passed" in again.stdout
