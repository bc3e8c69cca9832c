"""`saline host apply` for real: Salt over SSH into a disposable Debian host (its SSH host
key verified), and masterless."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import SshHost
from saline.salt.runner import HostKeyError, StateResult, apply_ssh

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "openstack")
CTL = "ctl01.openstack.local"
SALINE = str(Path(sys.executable).parent / "saline")
FORMULAS = [str(REPO / "formulas")]


def saline(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SALINE, *args], capture_output=True, text=True)


def apply_on(host: SshHost, *args: str) -> subprocess.CompletedProcess[str]:
    """`saline host apply` of the example controller node on ``host``."""
    return saline(
        "host",
        "apply",
        CTL,
        "--host",
        host.target,
        "--ssh-key",
        host.key,
        "--known-hosts",
        host.known_hosts,
        "--model",
        EXAMPLE,
        *args,
    )


def test_apply_over_ssh_installs_configures_and_converges(
    ssh_host: SshHost, tmp_path: Path
) -> None:
    common = [
        CTL,
        "--host",
        ssh_host.target,
        "--ssh-key",
        ssh_host.key,
        "--known-hosts",
        ssh_host.known_hosts,
        "--model",
        EXAMPLE,
        "--states",
        "memcached",
        "--no-services",
    ]
    # --test first: says what would change, changes nothing.
    dry = saline("host", "apply", *common, "--test", "--format", "json")
    assert dry.returncode == 0, dry.stderr
    # The packages, the API check script (formula.yml api_check) and the config file.
    assert {r["id"] for r in json.loads(dry.stdout)} == {
        "memcached_packages",
        "memcached_api_check",
        "memcached_config",
    }
    assert "memcached" not in ssh_host.run("dpkg-query -W -f '${Package}\\n' 2>/dev/null || true")

    done = saline("host", "apply", *common)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 states: 3 changed, 0 failed" in done.stdout
    assert ssh_host.run("dpkg-query -W -f '${Status}' memcached") == "install ok installed"

    # What was applied is exactly what `saline render` renders.
    rendered = saline(
        "render", CTL, "--service", "memcached", "--model", EXAMPLE, "--out", str(tmp_path)
    )
    assert rendered.returncode == 0, rendered.stderr
    expected = (tmp_path / "memcached" / "etc" / "memcached.conf").read_text()
    assert ssh_host.run("cat /etc/memcached.conf") == expected

    # Running again converges: nothing left to change.
    again = saline("host", "apply", *common, "--format", "json")
    assert again.returncode == 0
    assert all(not r["changes"] for r in json.loads(again.stdout))


def test_apply_test_mode_shows_diffs_of_changed_config(ssh_host: SshHost) -> None:
    ssh_host.run("printf -- '-u memcache\\n-m 16\\n' > /etc/memcached.conf")
    out = apply_on(
        ssh_host,
        "--states",
        "memcached.configure",
        "--test",
    )
    assert out.returncode == 0, out.stderr
    assert "-m 16" in out.stdout and "+-m 64" in out.stdout
    assert "would change" in out.stdout
    assert ssh_host.run("cat /etc/memcached.conf") == "-u memcache\n-m 16\n"


def test_apply_local_test_mode_runs_the_highstate() -> None:
    out = saline(
        "host", "apply", CTL, "--host", "local", "--model", EXAMPLE, "--test", "--format", "json"
    )
    assert out.returncode == 0, out.stderr
    ids = {r["id"] for r in json.loads(out.stdout)}
    # The node's applications (memcached, keystone, glance, the cloud's nova and cinder
    # controllers with cinder-volume: one cinder.conf) make its highstate.
    assert {"memcached_config", "keystone_config", "glance_api_config"} <= ids
    assert {"nova_config", "nova-api_service", "cinder_config", "cinder-volume_service"} <= ids


def test_apply_reports_a_failing_state(ssh_host: SshHost, tmp_path: Path) -> None:
    formulas = tmp_path / "formulas"
    subprocess.run(["cp", "-r", str(REPO / "formulas"), str(formulas)], check=True)
    (formulas / "memcached" / "install.sls").write_text(
        "memcached_packages:\n  pkg.installed:\n    - pkgs: [no-such-package-saline]\n"
    )
    out = apply_on(
        ssh_host,
        "--formulas",
        str(formulas),
        "--states",
        "memcached.install",
    )
    assert out.returncode == 1
    assert "FAILED  pkg.installed memcached_packages" in out.stdout


def test_secrets_are_masked_in_diffs(ssh_host: SshHost) -> None:
    ssh_host.run(
        "groupadd glance && mkdir -p /etc/glance && echo '[DEFAULT]' > /etc/glance/glance-api.conf"
    )
    out = apply_on(
        ssh_host,
        "--states",
        "glance.configure",
        "--test",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "+connection = mysql+pymysql://glance:********@10.10.0.10:3306/glance" in out.stdout
    for secret in ("example-glance-db", "example-glance-service", "example-rabbit"):
        assert secret not in out.stdout


def test_the_host_key_is_verified(ssh_host: SshHost, tmp_path: Path) -> None:
    def apply(**options: Any) -> list[StateResult]:
        return apply_ssh(
            CTL,
            EXAMPLE,
            FORMULAS,
            f"root@127.0.0.1:{ssh_host.port}",
            ["memcached.configure"],
            True,
            ssh_host.key,
            **options,
        )

    # Its key in the known_hosts file (ssh-keyscan): verified, and the run goes ahead.
    assert [r.id for r in apply(known_hosts=ssh_host.known_hosts)] == ["memcached_config"]

    # Not there: refused before anything runs, with what to do about it.
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError) as info:
        apply(known_hosts=str(empty))
    message = str(info.value)
    assert f"the SSH host key of 127.0.0.1 (port {ssh_host.port}) is unknown" in message
    assert f"`ssh-keyscan -p {ssh_host.port} 127.0.0.1 >> {empty}`" in message
    assert "--insecure-ignore-host-keys" in message
    assert empty.read_text() == ""  # nothing was added behind the user's back

    # A different key than the one recorded: refused, and said so.
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[127.0.0.1]:{ssh_host.port} {kind} {key}\n")
    with pytest.raises(HostKeyError, match="has CHANGED since it was recorded"):
        apply(known_hosts=str(changed))

    # Verification off (a disposable host): it runs, and writes no known_hosts file.
    assert [r.id for r in apply(known_hosts=str(empty), ignore_host_keys=True)] == [
        "memcached_config"
    ]
    assert empty.read_text() == ""


def test_an_unknown_host_key_is_one_message_from_the_command_line(
    ssh_host: SshHost, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    common = ["--host", ssh_host.target, "--ssh-key", ssh_host.key, "--model", EXAMPLE]
    args = [*common, "--known-hosts", str(empty), "--states", "memcached.configure", "--test"]
    refused = saline("host", "apply", CTL, *args)
    assert refused.returncode == 1
    assert "is unknown" in refused.stderr and "--insecure-ignore-host-keys" in refused.stderr
    assert "Traceback" not in refused.stderr
    insecure = saline("host", "apply", CTL, *args, "--insecure-ignore-host-keys")
    assert insecure.returncode == 0, insecure.stdout + insecure.stderr
