"""salt-ssh's host key verification: how its failures read (ssh 9.2's and salt-ssh 3008's
own words, as `saline host apply` met them), and what saline tells the user."""

from __future__ import annotations

import pytest

from saline.errors import SaltError
from saline.salt.runner import (
    HostKeyError,
    apply_ssh,
    host_key_failure,
    host_key_message,
    keyscan_hint,
    parse_target,
)

# salt-ssh --out=json, StrictHostKeyChecking=yes, a host not in known_hosts.
UNKNOWN = """{
    "ctl01": {
        "stdout": "",
        "stderr": "No ED25519 host key is known for [127.0.0.1]:34019 and you have requested \
strict checking.\\nHost key verification failed.",
        "retcode": 255
    }
}"""
# ... a host whose key is not the one known_hosts has.
CHANGED = """{
    "ctl01": {
        "stdout": "",
        "stderr": "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\\n@    WARNING: \
REMOTE HOST IDENTIFICATION HAS CHANGED!     @\\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\
@@@@@@@@@@\\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\\nHost key for \
[127.0.0.1]:34019 has changed and you have requested strict checking.\\nHost key verification \
failed.",
        "retcode": 255
    }
}"""
# ssh's default (ask): salt-ssh answers "no" to ssh's question itself.
ASKED = """{
    "ctl01": {
        "stdout": "The host key needs to be accepted, to auto accept run salt-ssh with the -i \
flag:\\n\\rThe authenticity of host '[127.0.0.1]:34019 ([127.0.0.1]:34019)' can't be \
established.\\nAre you sure you want to continue connecting (yes/no/[fingerprint])? ",
        "stderr": "",
        "retcode": 254
    }
}"""


def test_host_key_failures_are_recognised() -> None:
    assert host_key_failure(UNKNOWN) == "unknown"
    assert host_key_failure(ASKED) == "unknown"
    assert host_key_failure(CHANGED) == "changed"
    assert host_key_failure('{"ctl01": {"stderr": "Permission denied (publickey)."}}') is None


def test_the_message_names_the_option_and_how_to_add_the_key() -> None:
    unknown = host_key_message("ctl01", "10.0.0.5", 2222, None, "unknown")
    assert "host key of 10.0.0.5 (port 2222) is unknown (not in ~/.ssh/known_hosts)" in unknown
    assert "`ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts`" in unknown
    assert "--insecure-ignore-host-keys" in unknown
    changed = host_key_message("ctl01", "10.0.0.5", 22, "/etc/saline/known_hosts", "changed")
    assert "has CHANGED since it was recorded in /etc/saline/known_hosts" in changed
    assert "ssh-keygen -R '10.0.0.5' -f /etc/saline/known_hosts" in changed
    assert "`ssh-keyscan 10.0.0.5 >> /etc/saline/known_hosts`" in changed
    assert "--insecure-ignore-host-keys" in changed
    assert keyscan_hint("::1", 22, None) == "ssh-keyscan ::1 >> ~/.ssh/known_hosts"
    assert issubclass(HostKeyError, SaltError)


def test_targets() -> None:
    assert parse_target("10.0.0.5") == ("root", "10.0.0.5", 22)
    assert parse_target("ops@10.0.0.5:2222") == ("ops", "10.0.0.5", 2222)
    assert parse_target("ops@[::1]:2222") == ("ops", "::1", 2222)
    assert parse_target("[fe80::1]") == ("root", "fe80::1", 22)
    assert parse_target("root@::1:22") == ("root", "::1", 22)  # as `saline host apply` says it


def test_a_known_hosts_file_that_does_not_exist_is_an_error() -> None:
    # salt-ssh would quietly use ~/.ssh/known_hosts instead.
    with pytest.raises(SaltError, match="known_hosts file /nonexistent/known_hosts does not"):
        apply_ssh(
            "ctl01", "/m", [], "root@10.0.0.5", None, True, known_hosts="/nonexistent/known_hosts"
        )
