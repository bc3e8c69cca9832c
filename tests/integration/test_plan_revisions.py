"""`saline plan --from REV` with real Salt renders: the revision's release is built once
and then read back, and the plan is the same either way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "openstack"
SALINE = str(Path(sys.executable).parent / "saline")
GIT = ["git", "-c", "user.email=t@saline", "-c", "user.name=t"]


def test_plan_from_a_revision_reads_its_release_back_the_second_time(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    model = root / "model"
    shutil.copytree(EXAMPLE, model)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", "model"], cwd=root, check=True)
    server = model / "classes/system/keystone/server.yml"
    server.write_text(server.read_text().replace("expiration: 3600", "expiration: 7200", 1))
    cache = tmp_path / "cache"
    env = {**os.environ, "SALINE_CACHE_DIR": str(cache), "SALINE_STATE_DIR": str(tmp_path)}
    argv = [SALINE, "plan", "--model", str(model), "--from", "HEAD", "--format", "json"]
    runs = [subprocess.run(argv, capture_output=True, text=True, env=env) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    first, second = (json.loads(d.stdout) for d in runs)
    assert first == second
    assert {c["service"] for c in first["changes"]} == {"keystone"}
    assert len(list((cache / "revisions").glob("*.json"))) == 1
    # What was kept is what the revision renders: no change planned against itself.
    server.write_text(server.read_text().replace("expiration: 7200", "expiration: 3600", 1))
    same = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["steps"] == []
