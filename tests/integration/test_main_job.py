"""The README's main job (`scripts/main-job`) on the example model, for real: compile,
render every node, start a registry, build (images are shared with the other tests) and
push, list, bring the OpenStack stack up and pass smoke. Run in its own state folder,
registry port and stack name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from integration.conftest import free_port
from tools import example, require_tools

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SALINE = str(Path(sys.executable).parent / "saline")
GOLDEN = REPO / "tests" / "data" / "golden" / "openstack"


def files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_main_job(tmp_path: Path) -> None:
    require_tools("docker-registry", "podman")
    expected = example()  # what the example runs, from the formulas and the model
    images, services, tasks = len(expected.images), len(expected.instances), len(expected.tasks)
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(tmp_path / "state"),
        "SALINE_REGISTRY": f"127.0.0.1:{free_port()}",
        "SALINE_OUT": str(tmp_path / "out"),
        "SALINE_STACK": "saline-main-job",
    }
    try:
        done = subprocess.run(
            [str(REPO / "scripts" / "main-job")], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        out = tmp_path / "out"
        assert (out / "inventory.json").stat().st_size > 0
        # Every node's config files: exactly the golden trees' files (test_render.py
        # checks their content).
        assert files(out / "configs") == files(GOLDEN)
        assert f"{images} pushed" in done.stdout  # a fresh registry gets every image
        lines = done.stdout.split("== stack")[0].splitlines()[-len(expected.services) :]
        listed = [line.split()[0] for line in lines]
        assert listed == list(expected.services)
        # The stack is up on the example model and real OpenStack calls pass.
        assert (
            f"stack saline-main-job is up: {services} services healthy, "
            f"{tasks} bootstrap task(s) run"
        ) in done.stdout
        assert "smoke passed: 5 checks" in done.stdout
        again = subprocess.run(
            [str(REPO / "scripts" / "main-job")], capture_output=True, text=True, env=env
        )
        assert again.returncode == 0
        assert f"0 built, {images} up to date, 0 pushed" in again.stdout  # a re-run converges
        assert f"{services} services healthy, 0 bootstrap task(s) run" in again.stdout
        assert "smoke passed" in again.stdout
    finally:
        model = str(REPO / "examples" / "openstack")
        subprocess.run(
            [SALINE, "down", "--volumes", "--model", model], env=env, capture_output=True
        )
        subprocess.run([SALINE, "registry", "stop"], env=env, capture_output=True)
