"""The process chokepoint with real processes: time limits stop whole process groups,
Ctrl-C (terminate_all) interrupts runs in other threads, errors carry what happened."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from saline.errors import SalineError
from saline.runtime import process
from saline.runtime.process import (
    CommandError,
    CommandTimeout,
    Interrupted,
    ToolMissingError,
    describe,
    run,
    spawn,
    terminate_all,
)


@pytest.fixture(autouse=True)
def _resumed() -> Iterator[None]:
    yield
    process.resume()  # a test that called terminate_all must not stop the next ones


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (reaped later by whoever adopted it)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def test_a_command_runs_and_reports_its_output_and_time() -> None:
    done = run(["sh", "-c", "echo out; echo err >&2; exit 0"], timeout=10)
    assert done.argv == ("sh", "-c", "echo out; echo err >&2; exit 0")
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert 0 <= done.seconds < 10


def test_input_is_passed_to_stdin() -> None:
    assert run(["cat"], timeout=10, input="s3cret\nline 2\n").stdout == "s3cret\nline 2\n"
    # Without input, stdin is /dev/null: nothing waits for a terminal.
    assert run(["cat"], timeout=10).stdout == ""


def test_env_and_cwd_are_the_childs(tmp_path: Path) -> None:
    done = run(
        ["sh", "-c", "echo $SALINE_X; pwd"], timeout=10, env={"SALINE_X": "1"}, cwd=str(tmp_path)
    )
    assert done.stdout.split() == ["1", str(tmp_path)]


def test_a_failure_carries_command_exit_code_and_output_and_shows_the_tail() -> None:
    script = "for i in $(seq 1 40); do echo line $i; done; echo 'real problem' >&2; exit 3"
    with pytest.raises(CommandError) as info:
        run(["sh", "-c", script], timeout=10)
    e = info.value
    assert isinstance(e, SalineError)
    assert e.argv == ("sh", "-c", script)
    assert e.returncode == 3
    assert e.stdout.splitlines()[0] == "line 1" and len(e.stdout.splitlines()) == 40
    assert e.stderr == "real problem\n"
    message = str(e)
    assert message.startswith("sh -c ")
    assert "failed (exit 3):" in message
    assert message.endswith("line 40\nreal problem")  # the tail: where programs say why
    assert "line 26\n" not in message  # only the last 15 lines


def test_without_check_the_caller_reads_the_exit_code() -> None:
    assert run(["sh", "-c", "exit 7"], timeout=10, check=False).returncode == 7


def test_a_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The child starts a grandchild (a sleep in the background) and waits itself.
    script = f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; echo started; wait"
    t = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        run(["sh", "-c", script], timeout=1)
    assert time.monotonic() - t < 10
    grandchild, child = (int(p) for p in pids.read_text().split())
    assert _wait_gone(child) and _wait_gone(grandchild)
    e = info.value
    assert isinstance(e, CommandError) and e.returncode is None and e.timeout == 1
    assert "did not finish within 1 s" in str(e) and str(e).startswith("sh -c ")
    assert "started" in str(e)  # what it wrote before it was stopped


def test_a_timeout_kills_what_ignores_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "GRACE_SECONDS", 0.5)  # then SIGKILL
    pids = tmp_path / "pids"
    script = f"trap '' TERM; sleep 300 & echo $! > {pids}; while true; do sleep 0.1; done"
    with pytest.raises(CommandTimeout):
        run(["sh", "-c", script], timeout=0.5)
    assert _wait_gone(int(pids.read_text()))


def test_a_missing_tool_is_named_with_its_debian_package() -> None:
    with pytest.raises(ToolMissingError) as info:
        run(["skopeo-not-installed-here"], timeout=5)
    assert "skopeo-not-installed-here is not installed" in str(info.value)
    assert "run scripts/install" in str(info.value)

    # The table, through a PATH without the tool.
    saved = os.environ["PATH"]
    os.environ["PATH"] = "/nonexistent"
    try:
        with pytest.raises(ToolMissingError) as info:
            run(["mmdebstrap", "--version"], timeout=5)
    finally:
        os.environ["PATH"] = saved
    assert info.value.tool == "mmdebstrap" and info.value.package == "mmdebstrap"
    assert str(info.value) == (
        "mmdebstrap is not installed (it comes with the Debian package mmdebstrap); "
        "run scripts/install"
    )
    salt = ToolMissingError("/venv/bin/salt-ssh")
    assert str(salt) == (
        "salt-ssh is not installed (it comes with saline's venv: scripts/install); "
        "run scripts/install"
    )
    assert ToolMissingError("strip").package == "binutils"
    assert ToolMissingError("htpasswd").package == "apache2-utils"
    assert ToolMissingError("ssh").package == "openssh-client"


def test_terminate_all_interrupts_a_run_in_another_thread(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            run(["sh", "-c", f"sleep 300 & echo $! > {pids}; wait"], timeout=600)
        except BaseException as e:
            caught.append(e)

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 10
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.live_children() == 1
    t = time.monotonic()
    terminate_all(grace=2)
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - t < 10
    assert len(caught) == 1 and isinstance(caught[0], Interrupted)
    assert isinstance(caught[0], CommandError) and "was interrupted" in str(caught[0])
    assert caught[0].exit_code == 130
    assert _wait_gone(int(pids.read_text()))
    assert process.live_children() == 0
    # Stopping: nothing new starts until resume().
    with pytest.raises(Interrupted):
        run(["true"], timeout=5)
    process.resume()
    assert run(["true"], timeout=5).returncode == 0


def test_ctrl_c_in_the_waiting_thread_stops_the_command(tmp_path: Path) -> None:
    pids = tmp_path / "pids"

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 10
        while len(pids.read_text().split() if pids.exists() else []) < 2:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # the main thread gets KeyboardInterrupt

    threading.Thread(target=press_ctrl_c).start()
    with pytest.raises(KeyboardInterrupt):
        run(["sh", "-c", f"sleep 300 & echo $! > {pids}; echo $$ >> {pids}; wait"], timeout=60)
    grandchild, child = (int(p) for p in pids.read_text().split())
    assert _wait_gone(child) and _wait_gone(grandchild)  # not left running in its session
    assert process.live_children() == 0


def test_spawn_starts_a_daemon_that_terminate_all_leaves_alone(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    daemon = spawn(["sh", "-c", "echo hello; exec sleep 300"], log_path=str(log))
    try:
        assert daemon.exited() is None
        assert os.getpgid(daemon.pid) == daemon.pid  # its own session: outlives saline
        terminate_all(grace=0.5)
        assert daemon.exited() is None
        deadline = time.monotonic() + 5
        while "hello" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text() == "hello\n"
    finally:
        os.kill(daemon.pid, 9)
    with pytest.raises(ToolMissingError):
        spawn(["docker-registry-not-here"], log_path=str(log))


def test_commands_are_shortened_for_messages() -> None:
    assert describe(["/usr/bin/podman", "image", "exists", "x"]) == "podman image exists x"
    compose = [sys.executable, "-m", "podman_compose", "-f", "c.yml", "-p", "s", "up"]
    assert describe(compose) == "podman-compose -f c.yml -p s up"
    long = describe(["podman", "build", "-f", "/" + "x" * 80, *["--layers"] * 20])
    assert len(long) < 130 and long.startswith("podman build -f /xxx") and "args)" in long
