"""The openstack library's RPC check (formulas/openstack/files/rpc_check.py): a process of
the container holds an established connection to the message queue's port. Here the
"container" is this machine's processes, and the queue a listener of the test's."""

from __future__ import annotations

import socket
import subprocess
import sys

from tools import FORMULAS

SCRIPT = FORMULAS / "openstack" / "files" / "rpc_check.py"


def check(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "nova-conductor", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_held_connection_passes_and_none_fails() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        done = check(port)
        assert done.returncode == 1
        assert done.stdout == f"nova-conductor: no connection to the message queue (port {port})\n"
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            with accepted:
                done = check(port)
                assert done.returncode == 0, done.stdout + done.stderr
                assert "1 connection(s) to the message queue" in done.stdout
        assert client.fileno() == -1


def test_usage() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout.startswith("usage:")
