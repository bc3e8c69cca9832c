"""The README's main job (`scripts/main-job`) on the example model, for real: compile,
render every node, start a registry, build (images are shared with the other tests) and
push, list, bring the OpenStack stack up and pass smoke. Run in its own state folder,
registry port and stack name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integration.conftest import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SALINE = str(Path(sys.executable).parent / "saline")


def test_main_job(tmp_path: Path) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (scripts/install installs it)")
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
        rendered = sorted(
            p.relative_to(out / "configs") for p in (out / "configs").rglob("*") if p.is_file()
        )
        assert len(rendered) == 8  # the golden trees' eight config files
        assert "8 pushed" in done.stdout  # a fresh registry gets every image
        images = done.stdout.split("== stack")[0].splitlines()[-6:]
        listed = [line.split()[0] for line in images]
        assert listed == ["glance-api", "haproxy", "keystone", "mariadb", "memcached", "rabbitmq"]
        # The stack is up on the example model and real OpenStack calls pass.
        assert "stack saline-main-job is up: 6 services healthy, 7 bootstrap task(s) run" in (
            done.stdout
        )
        assert "smoke passed: 5 checks" in done.stdout
        again = subprocess.run(
            [str(REPO / "scripts" / "main-job")], capture_output=True, text=True, env=env
        )
        assert again.returncode == 0
        assert "0 built, 8 up to date, 0 pushed" in again.stdout  # a re-run converges
        assert "6 services healthy, 0 bootstrap task(s) run" in again.stdout
        assert "smoke passed" in again.stdout
    finally:
        example = str(REPO / "examples" / "openstack")
        subprocess.run(
            [SALINE, "down", "--volumes", "--model", example], env=env, capture_output=True
        )
        subprocess.run([SALINE, "registry", "stop"], env=env, capture_output=True)
