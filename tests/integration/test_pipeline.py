"""The CI pipeline's steps (scripts/pipeline, as examples/ci/ run them) on a git
repository of the example with two commits, for real: the shared example stack is the
staging stack of the old revision (integration/example_cloud.py).

* review: the plan of the new commit against the old one as text, JSON and Markdown;
* build: nothing to build or push (a config change moves no image);
* upgrade: the running stack of the old revision changed to the new one by `saline
  apply`, then smoke;
* publish: the release record, the running release the new one;
* try: with the staging stack stopped, a throwaway stack of the new revision comes up,
  passes smoke and is gone again.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from integration.clients import TokenLoop, admin_auth
from integration.example_cloud import PROXY, ExampleCloud
from integration.test_stack import ok
from saline.runtime.podman import Podman
from tools import REPO

pytestmark = pytest.mark.integration

PIPELINE = REPO / "scripts" / "pipeline"
KEYSTONE_CLASS = "classes/system/keystone/server.yml"


def step(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(PIPELINE), *args], capture_output=True, text=True, env=env, timeout=1800
    )
    assert done.returncode == 0, f"pipeline {args[0]}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


# First of the tests that take the shared stack down: it keeps the volumes (the next
# `up` starts from them).
@pytest.mark.takes_the_example_down(order=1)
def test_the_pipeline_steps_on_two_commits(
    example_cloud: ExampleCloud, podman: Podman, tmp_path: Path
) -> None:
    cloud = example_cloud
    cloud.reset()  # the example as committed, running: staging at the old revision
    old = cloud.git("rev-parse", "HEAD").strip()
    cloud.edit(KEYSTONE_CLASS, "expiration: 3600", "expiration: 7200")
    cloud.commit("token expiration 7200")
    out = tmp_path / "out"
    env = {
        **cloud.env,
        "MODEL": str(cloud.model),
        "OUT": str(out),
        "STACK": cloud.stack,
        "TMPDIR": str(tmp_path),  # the revisions' checkouts: gone after each step
    }

    review = step(env, "review", old, "HEAD")
    plan = json.loads((out / "plan.json").read_text())
    assert {c["service"] for c in plan["changes"]} == {"keystone"}
    assert (out / "plan.txt").read_text() == review.stdout
    markdown = (out / "plan.md").read_text()
    assert markdown.startswith(f"### saline plan: revision HEAD against revision {old}")
    assert "`keystone:server:tokens:expiration`" in markdown

    built = step(env, "build", "HEAD")
    assert " 0 built, " in built.stdout and " 0 pushed" in built.stdout

    before = cloud.containers(podman)
    upgraded = step(env, "upgrade", old, "HEAD")
    assert "smoke passed" in upgraded.stdout
    after = cloud.containers(podman)
    # Staging ran already, so it was not brought up again; keystone reloads in place
    # (its container stays), nothing restarted, and the new value is what keystone says.
    assert after == before, upgraded.stdout[-4000:]
    rc = json.loads(ok(cloud.env, "openrc", "--format", "json").stdout)
    assert TokenLoop(f"http://{PROXY}:5000/v3", admin_auth(rc)).token_lifetime() == 7200

    step(env, "publish")
    history = json.loads((out / "releases.json").read_text())["releases"]
    current = json.loads((out / "release.json").read_text())
    assert current["id"] == history[-1]["id"] and current["outcome"] == "applied"
    assert current["source"]["head"] == cloud.git("rev-parse", "HEAD").strip()

    # The throwaway stack needs the subnet: staging stops first (the last users of the
    # shared stack take it down anyway).
    ok(cloud.env, "down")
    tried = step(env, "try", "HEAD")
    assert "smoke passed" in tried.stdout
    assert podman.containers(f"io.podman.compose.project={cloud.stack}-try") == []
    assert not [w for w in os.listdir(tmp_path) if w.startswith("saline-pipeline")]
    assert cloud.git("worktree", "list").count("\n") == 1  # the checkouts are gone
