"""Naming another registry: one with TLS and credentials (Debian's docker-registry with a
self-signed certificate and htpasswd auth). saline uses podman's own login
(REGISTRY_AUTH_FILE) for pushes and for its existence checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.conftest import free_port, saline_podman
from tools import require_tools

pytestmark = pytest.mark.integration

SALINE = str(Path(sys.executable).parent / "saline")


@pytest.fixture
def secure_registry(tmp_path: Path) -> Iterator[str]:
    require_tools("docker-registry", "htpasswd", "openssl", "podman", "skopeo")
    port = free_port()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    with open(tmp_path / "htpasswd", "w") as fh:
        subprocess.run(["htpasswd", "-Bbn", "saline", "s3cret-pass"], check=True, stdout=fh)
    (tmp_path / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {tmp_path / 'cert.pem'}\n"
        f"    key: {tmp_path / 'key.pem'}\n"
        f"auth:\n  htpasswd:\n    realm: saline\n    path: {tmp_path / 'htpasswd'}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(tmp_path / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def build_and_push(
    model: Path, registry: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SALINE,
            "build",
            "--model",
            str(model),
            "--registry",
            registry,
            "--push",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )


def test_push_to_a_registry_with_tls_and_credentials(secure_registry: str, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "classes").mkdir(parents=True)
    (model / "nodes").mkdir()
    (model / "nodes" / "cache01.yml").write_text(
        "applications: [memcached]\nparameters:\n  memcached:\n    server:\n      enabled: true\n"
    )
    auth = tmp_path / "auth.json"
    env = {**saline_podman().env(), "REGISTRY_AUTH_FILE": str(auth)}
    login = subprocess.run(
        [
            "podman",
            "login",
            "--tls-verify=false",
            "-u",
            "saline",
            "--password-stdin",
            secure_registry,
        ],
        input="s3cret-pass",
        capture_output=True,
        text=True,
        env=env,
    )
    assert login.returncode == 0, login.stderr

    done = build_and_push(model, secure_registry, env)
    assert done.returncode == 0, done.stderr[-2000:]
    results = {r["name"]: r for r in json.loads(done.stdout)}
    assert set(results) == {"base", "salt", "memcached"}
    assert all(r["pushed"] for r in results.values())

    ref = str(results["memcached"]["ref"])
    with_login = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, env=env
    )
    assert with_login.returncode == 0
    anonymous_env = {k: v for k, v in env.items() if k != "REGISTRY_AUTH_FILE"}
    anonymous_env["REGISTRY_AUTH_FILE"] = str(tmp_path / "empty-auth.json")
    anonymous = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        env=anonymous_env,
    )
    assert anonymous.returncode != 0  # the registry really wants credentials

    again = build_and_push(model, secure_registry, env)
    assert again.returncode == 0
    assert not any(r["pushed"] for r in json.loads(again.stdout))

    # Without credentials the registry cannot say whether it has the images: an error that
    # names the registry and the cure, never "absent, so build and push again".
    refused = build_and_push(model, secure_registry, anonymous_env)
    assert refused.returncode == 1, refused.stdout
    assert refused.stdout == ""
    login_hint = f"run `podman login {secure_registry}`"
    assert f"registry {secure_registry}: authentication required: {login_hint}" in refused.stderr
    assert "Traceback" not in refused.stderr
    os.remove(auth)
