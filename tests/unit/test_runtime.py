from __future__ import annotations

from saline.runtime.compose import _essentials
from saline.runtime.podman import _bytes, _tls
from saline.runtime.registry import registry_config


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
