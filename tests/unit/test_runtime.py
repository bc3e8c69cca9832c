from __future__ import annotations

import http.server
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from saline.build.graph import mmdebstrap_command, rootfs_digest
from saline.errors import SalineError
from saline.runtime.compose import _essentials
from saline.runtime.podman import (
    CONTAINERS_CONF,
    Podman,
    PodmanError,
    _bytes,
    _tls,
    classify_inspect_failure,
    is_loopback,
    split_host_port,
    tls_verify,
)
from saline.runtime.process import CommandError
from saline.runtime.registry import (
    LocalRegistry,
    RegistryError,
    is_registry_command,
    registry_config,
)
from saline.settings import DebianMirrors


def test_tls_is_verified_except_on_this_machine() -> None:
    assert _tls("127.0.0.1:5000/saline/base:1") == "false"
    assert _tls("localhost/saline/base:1") == "false"
    assert _tls("registry.example.com:5000/saline/base:1") == "true"
    assert _tls("10.0.0.5:5000/saline/base:1") == "true"


def test_registry_config_keeps_data_where_asked() -> None:
    text = registry_config("127.0.0.1:5050", "/srv/data")
    assert "rootdirectory: /srv/data" in text and "addr: 127.0.0.1:5050" in text


def test_podman_compose_failures_keep_podmans_words_not_the_stack_frames() -> None:
    output = (
        "Traceback (most recent call last):\n"
        '  File "/x/podman_compose.py", line 1798, in output\n'
        "    raise subprocess.CalledProcessError(p.returncode, cmd)\n"
        "               ^^^^^^^^^^^^^^^^^^^^^^^^\n"
        "Error: volume with name s_tasks already exists: volume already exists\n"
        "subprocess.CalledProcessError: Command 'podman volume create s_tasks' returned "
        "non-zero exit status 125.\n"
    )
    kept = _essentials(output).splitlines()
    assert kept == [
        "Error: volume with name s_tasks already exists: volume already exists",
        "subprocess.CalledProcessError: Command 'podman volume create s_tasks' returned "
        "non-zero exit status 125.",
    ]


def test_podman_stats_sizes() -> None:
    assert _bytes("281.5MB / 25.2GB") == 281_500_000
    assert _bytes("2.1kB") == 2100
    assert _bytes("1.5GiB") == int(1.5 * 1024**3)
    assert _bytes("--") == 0


def test_tls_is_off_only_for_loopback_addresses() -> None:
    for ref in (
        "127.0.0.1:5000/saline/base:1",
        "127.1.2.3:5000/saline/base:1",
        "localhost:5000/saline/base:1",
        "LOCALHOST/saline/base:1",
        "[::1]:5000/saline/base:1",
        "[::1]/saline/base:1",
        "docker://127.0.0.1:5000/saline/base:1",
    ):
        assert _tls(ref) == "false", ref
        assert not tls_verify(ref), ref
    for ref in (
        "localhost.evil.com/saline/base:1",
        "localhost.evil.com:5000/saline/base:1",
        "127.evil.com:5000/saline/base:1",
        "127.0.0.1.nip.io:5000/saline/base:1",
        "localhostx:5000/saline/base:1",
        "[::1].evil.com:5000/saline/base:1",
        "[::2]:5000/saline/base:1",
        "128.0.0.1:5000/saline/base:1",
        "127.0.0.1:notaport/saline/base:1",
        "127.0.0.1:99999/saline/base:1",
        "[::1:5000/saline/base:1",
        "registry.example.com/saline/base:1",
    ):
        assert _tls(ref) == "true", ref
    assert is_loopback("127.0.0.1") and is_loopback("localhost:1") and is_loopback("[::1]:80")
    assert split_host_port("[fe80::1]:5000") == ("fe80::1", 5000)
    assert split_host_port("::1") == ("::1", None)
    assert split_host_port("host:") is None and split_host_port(":5000") is None


# skopeo 1.9.3's own words (`skopeo inspect --raw`), against Debian's docker-registry.
_SKOPEO = (
    'time="2026-11-29T23:21:22Z" level=fatal '
    'msg="Error parsing image name \\"docker://{ref}\\": {why}"'
)
_REF = "10.0.0.5:5000/saline/keystone:0123"


def _skopeo(why: str, ref: str = _REF) -> str:
    return _SKOPEO.format(ref=ref, why=why.replace('"', '\\"'))


def test_an_image_the_registry_does_not_have_is_absent() -> None:
    for why in (
        "reading manifest 0123 in 10.0.0.5:5000/saline/keystone: manifest unknown: "
        "manifest unknown",
        "reading manifest 0123 in 10.0.0.5:5000/saline/keystone: name unknown: repository name "
        "not known to registry",
        "reading manifest 0123 in 10.0.0.5:5000/saline/keystone: not found",
    ):
        assert classify_inspect_failure(_REF, _skopeo(why)) is None, why


def test_a_registry_that_cannot_be_used_is_an_error_not_an_absent_image() -> None:
    cases = {
        "reading manifest 0123 in 10.0.0.5:5000/saline/keystone: unauthorized: authentication "
        "required": "registry 10.0.0.5:5000: authentication required: "
        "run `podman login 10.0.0.5:5000`",
        "reading manifest 0123 in 10.0.0.5:5000/saline/keystone: requested access to the "
        "resource is denied": "registry 10.0.0.5:5000: authentication required: "
        "run `podman login 10.0.0.5:5000`",
        'pinging container registry 10.0.0.5:5000: Get "https://10.0.0.5:5000/v2/": x509: '
        "certificate signed by unknown authority": "registry 10.0.0.5:5000: TLS failed "
        "(x509: certificate signed by unknown authority); give podman the registry's CA "
        "certificate",
        'pinging container registry 10.0.0.5:5000: Get "https://10.0.0.5:5000/v2/": http: '
        "server gave HTTP response to HTTPS client": "registry 10.0.0.5:5000: TLS failed "
        "(http: server gave HTTP response to HTTPS client); give podman the registry's CA "
        "certificate",
        'pinging container registry 10.0.0.5:5000: Get "https://10.0.0.5:5000/v2/": dial tcp '
        "10.0.0.5:5000: connect: connection refused": "registry 10.0.0.5:5000: not reachable "
        "(dial tcp 10.0.0.5:5000: connect: connection refused)",
        'pinging container registry 10.0.0.5:5000: Get "https://10.0.0.5:5000/v2/": dial tcp '
        "10.0.0.5:5000: i/o timeout": "registry 10.0.0.5:5000: not reachable "
        "(dial tcp 10.0.0.5:5000: i/o timeout)",
    }
    for why, message in cases.items():
        error = classify_inspect_failure(_REF, _skopeo(why))
        assert isinstance(error, RegistryError) and isinstance(error, SalineError), why
        assert str(error) == message
    host = "no-such-host.invalid:5000/saline/x:1"
    error = classify_inspect_failure(
        host,
        _skopeo(
            'pinging container registry no-such-host.invalid:5000: Get "https://no-such-host'
            '.invalid:5000/v2/": dial tcp: lookup no-such-host.invalid on 10.255.255.53:53: '
            "no such host",
            host,
        ),
    )
    assert str(error) == (
        "registry no-such-host.invalid:5000: not reachable "
        "(dial tcp: lookup no-such-host.invalid on 10.255.255.53:53: no such host)"
    )
    # Anything it does not recognise is not "absent" either.
    odd = classify_inspect_failure(_REF, _skopeo("something new went wrong"))
    assert str(odd) == (
        f"registry 10.0.0.5:5000: cannot tell whether it has {_REF}: something new went wrong"
    )


def test_podman_failures_are_command_errors() -> None:
    e = PodmanError(["podman", "rm", "x"], 125, "", "Error: no container with name x\n")
    assert isinstance(e, CommandError)
    assert str(e) == "podman rm x failed (exit 125):\nError: no container with name x"


def test_podman_settings_are_written_where_the_caller_says(tmp_path: Path) -> None:
    podman = Podman.for_state(str(tmp_path / "state"))
    assert podman.conf == str(tmp_path / "state" / "containers.conf")
    assert Path(podman.conf).read_text() == CONTAINERS_CONF
    assert podman.env()["CONTAINERS_CONF"] == podman.conf


def test_the_registry_process_is_recognised_by_its_command_line() -> None:
    config = "/state/registry/config.yml"
    assert is_registry_command(["docker-registry", "serve", config], config)
    assert is_registry_command(["/usr/bin/docker-registry", "serve", config], config)
    assert not is_registry_command(["docker-registry", "serve", "/other/config.yml"], config)
    assert not is_registry_command(["sleep", "300"], config)
    assert not is_registry_command(["docker-registry", "serve", config, "x"], config)


def test_a_stale_pid_file_never_kills_another_process(tmp_path: Path) -> None:
    reg = LocalRegistry(f"127.0.0.1:{_free_port()}", str(tmp_path / "registry"))
    os.makedirs(reg.folder)
    other = subprocess.Popen(["sleep", "300"])  # the pid file's pid, reused by something else
    try:
        Path(reg.pid_file).write_text(str(other.pid))
        assert reg.status()["pid"] is None and not reg.status()["running"]
        reg.stop()
        assert other.poll() is None  # still running
        assert not os.path.exists(reg.pid_file)  # the stale pid file is gone
    finally:
        other.kill()
        other.wait()


def test_stop_says_so_when_something_else_answers(tmp_path: Path) -> None:
    class Catalog(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"repositories": []}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Catalog)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        reg = LocalRegistry(address, str(tmp_path / "registry"))
        os.makedirs(reg.folder)
        Path(reg.pid_file).write_text("999999999")
        with pytest.raises(RegistryError) as info:
            reg.stop()
        assert str(info.value).startswith(f"something else answers on {address}")
        assert "process 999999999, which is not this registry" in str(info.value)
        assert not os.path.exists(reg.pid_file)
        with pytest.raises(RegistryError, match="something else already answers"):
            reg.start()
    finally:
        server.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_mirrors_are_where_packages_come_from_not_what_goes_in() -> None:
    include, hooks = ["python3"], ["true"]
    local = DebianMirrors("http://mirror.local/debian", "http://mirror.local/security")
    cmd = mmdebstrap_command("out.tar", include, hooks, local)
    assert cmd[-3:] == [
        "deb http://mirror.local/debian bookworm main",
        "deb http://mirror.local/debian bookworm-updates main",
        "deb http://mirror.local/security bookworm-security main",
    ]
    assert mmdebstrap_command("out.tar", include, hooks, DebianMirrors())[-1] == (
        "deb http://deb.debian.org/debian-security bookworm-security main"
    )
    # The digest (and so every image tag) does not depend on the mirror...
    digest = rootfs_digest(include, hooks)
    assert digest == rootfs_digest(include, hooks)
    # ... but does on what goes in.
    assert rootfs_digest(["python3", "curl"], hooks) != digest
    assert rootfs_digest(include, ["false"]) != digest
    assert rootfs_digest(include, hooks, {"/etc/x": ("x", 0o644)}) != digest
