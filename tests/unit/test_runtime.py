from __future__ import annotations

from saline.runtime.podman import _tls
from saline.runtime.registry import registry_config


def test_tls_is_verified_except_on_this_machine() -> None:
    assert _tls("127.0.0.1:5000/saline/base:1") == "false"
    assert _tls("localhost/saline/base:1") == "false"
    assert _tls("registry.example.com:5000/saline/base:1") == "true"
    assert _tls("10.0.0.5:5000/saline/base:1") == "true"


def test_registry_config_keeps_data_where_asked() -> None:
    text = registry_config("127.0.0.1:5050", "/srv/data")
    assert "rootdirectory: /srv/data" in text and "addr: 127.0.0.1:5050" in text
