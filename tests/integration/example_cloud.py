"""The example model's stack (its core profile: identity and images, tests/tools.py
core_example), shared by the modules that need it running (test_main_job, test_day2,
test_stack...).

Bringing the example up is the slowest step of the suite (minutes on 2 cores), and those
modules each did it: now the README's main job (`scripts/main-job`) brings it up once per
session, twice in a row (the second run must converge), and its output is what
test_main_job checks. Each module starts with :meth:`ExampleCloud.reset`: the model as
first committed and the stack converged to it, whatever an earlier module left, so no test
depends on the order the modules run in; the order only saves time (conftest.py runs the
users of the stack one after the other, the one that takes it down last).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from integration.conftest import free_port
from saline.runtime.podman import Podman
from tools import REPO, core_example, require_tools

STACK = "saline-example"
#: The example's proxy node: its haproxy serves the OpenStack APIs.
PROXY = "10.10.0.40"
MAIN_JOB = REPO / "scripts" / "main-job"
SALINE = str(Path(sys.executable).parent / "saline")


@dataclass
class ExampleCloud:
    #: What the `saline` commands of the tests get: state folder, model, stack, registry.
    env: dict[str, str]
    #: A git repository: the example model, committed as "the example".
    model: Path
    #: The main job's output folder (inventory, each node's config files).
    out: Path
    #: The main job's first run (fresh state and registry) and its re-run.
    main_job: tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]
    stack: str = STACK

    def git(self, *args: str) -> str:
        git = ["git", "-c", "user.email=t@saline", "-c", "user.name=t"]
        done = subprocess.run(
            [*git, *args], cwd=self.model, capture_output=True, text=True, check=True
        )
        return done.stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-qm", message)

    def edit(self, path: Path | str, old: str, new: str) -> None:
        target = self.model / path
        text = target.read_text()
        assert old in text, f"{old!r} not in {target}"
        target.write_text(text.replace(old, new, 1))

    def restore_model(self) -> None:
        """The model back to its first commit (the example as shipped)."""
        first = self.git("rev-list", "--max-parents=0", "HEAD").split()[0]
        self.git("reset", "-q", "--hard", first)
        self.git("clean", "-qfdx")

    def reset(self) -> None:
        """The model back to its first commit and the stack converged to it (`saline up`:
        nothing to do when it already runs that; everything, when a module took it
        down)."""
        self.restore_model()
        up = run_saline(self.env, "up")
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        # What runs is the model, as day 2 sees it too (a container an earlier module
        # reloaded in place to other files is no longer what the model says).
        plan = run_saline(self.env, "plan", "--detailed-exitcode")
        assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-2000:]

    def containers(self, podman: Podman) -> dict[str, str]:
        """Running containers of the stack: compose service -> container id and start
        time (a restart in place keeps the id, not the start time)."""
        out = {}
        for c in podman.containers(f"io.podman.compose.project={self.stack}"):
            if c.get("State") == "running":
                out[c["Labels"]["io.podman.compose.service"]] = f"{c['Id']}@{c['StartedAt']}"
        return out


def run_saline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`saline ARGS` (the one beside this Python, as test_stack.saline)."""
    return subprocess.run([SALINE, *args], capture_output=True, text=True, env=env)


def main_job(env: dict[str, str], model: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAIN_JOB), str(model)], capture_output=True, text=True, env=env)


def example_cloud(root: Path) -> Iterator[ExampleCloud]:
    """The session fixture's body (conftest.py): a copy of the example under ``root`` in
    a git repository, its own state folder, registry port and stack name; the main job
    run twice; at the end the stack and its volumes removed and the registry stopped."""
    require_tools("podman", "git", "docker-registry")
    model = root / "model"
    # The core profile (identity and images): the day-2 modules' stack. The whole cloud
    # (nova, neutron: a server booted) is the integration/cloud package's, on its own.
    shutil.copytree(core_example(root / "source"), model)
    env = {
        **os.environ,
        "SALINE_STATE_DIR": str(root / "state"),
        "SALINE_MODEL": str(model),
        "SALINE_STACK": STACK,
        "SALINE_REGISTRY": f"127.0.0.1:{free_port()}",
        "SALINE_OUT": str(root / "out"),
        "NO_COLOR": "1",
    }
    subprocess.run(["git", "init", "-q"], cwd=model, check=True)
    try:
        first = main_job(env, model)
        # The re-run only when the first passed (test_main_job reports a failed one).
        again = main_job(env, model) if first.returncode == 0 else first
        cloud = ExampleCloud(env, model, root / "out", (first, again))
        cloud.commit("the example")
        yield cloud
    finally:
        run_saline(env, "down", "--volumes")
        run_saline(env, "registry", "stop")
