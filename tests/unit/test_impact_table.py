"""The impact table (formula.yml ``config_files``) against what the formulas really render.

Every file a service's configure states write must be in its table (a new template
without an entry fails here), and every entry must name a file they write. Entries may
be patterns (``/etc/keystone/fernet-keys/*``) for files whose names come from the pillar.
Plus the schema's rules: ``reload`` is required where the table says reload, per-section
and per-key entries name what the rendered INI file has.
"""

from __future__ import annotations

import configparser
import fnmatch
from collections import defaultdict
from typing import Any

import pytest
from pydantic import ValidationError

from neutron_model import neutron_model
from saline.configs import render_nodes
from saline.formulas import FormulaSet
from saline.formulas.schema import FileImpact, Reload, Service
from saline.model import load_model
from tools import EXAMPLE, FORMULAS, REPO

SHIPPED = FormulaSet([str(FORMULAS)])


def _covers(entry: str, path: str) -> bool:
    return entry == path or (any(c in entry for c in "*?[") and fnmatch.fnmatchcase(path, entry))


#: The models the shipped formulas are rendered for: the example, and the test model of
#: the services it does not run (keepalived, ceph); and the example with neutron only,
#: built at test time (tests/neutron_model.py).
MODELS = [EXAMPLE, REPO / "tests" / "data" / "vip", REPO / "tests" / "data" / "ceph"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """service -> rendered path -> content, over every node of :data:`MODELS` and the
    example with neutron only."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    built = [
        neutron_model(tmp_path_factory.mktemp("neutron")),
    ]
    for path in [*MODELS, *built]:
        for configs in render_nodes(load_model(str(path)), SHIPPED).values():
            for sc in configs:
                out[sc.service.name].update({f.path: f.content for f in sc.files})
                out.setdefault(sc.service.name, {})
    return dict(out)


def test_the_models_run_every_shipped_service(rendered: dict[str, dict[str, str]]) -> None:
    assert sorted(rendered) == sorted(SHIPPED.services)


@pytest.mark.parametrize("service", sorted(SHIPPED.services))
def test_every_rendered_file_has_an_impact_entry(
    service: str, rendered: dict[str, dict[str, str]]
) -> None:
    spec = SHIPPED.services[service][1]
    paths = sorted(rendered[service])
    assert paths, f"{service}: its configure states render no file"
    missing = [p for p in paths if not any(_covers(e, p) for e in spec.config_files)]
    assert not missing, f"{service}: no impact entry (formula.yml config_files) for {missing}"
    unused = [e for e in spec.config_files if not any(_covers(e, p) for p in paths)]
    assert not unused, f"{service}: impact entries for files it does not render: {unused}"


@pytest.mark.parametrize("service", sorted(SHIPPED.services))
def test_section_and_key_entries_name_what_the_file_has(
    service: str, rendered: dict[str, dict[str, str]]
) -> None:
    spec = SHIPPED.services[service][1]
    for entry, impact in spec.config_files.items():
        if not isinstance(impact, FileImpact) or not impact.keys:
            continue
        for path, text in rendered[service].items():
            if not _covers(entry, path):
                continue
            ini = configparser.ConfigParser(interpolation=None, strict=False)
            ini.read_string(text)
            for name in impact.keys:
                section, _, key = name.partition("/")
                assert ini.has_section(section), f"{path}: no section [{section}] ({name})"
                if key:
                    assert ini.has_option(section, key), f"{path}: no {name}"


@pytest.mark.parametrize("service", sorted(SHIPPED.services))
def test_every_shipped_service_has_an_api_check(service: str) -> None:
    spec = SHIPPED.services[service][1]
    assert spec.api_check is not None and spec.api_check.command


def test_the_reloads_the_shipped_formulas_declare() -> None:
    keystone = SHIPPED.services["keystone"][1]
    assert keystone.impact("/etc/keystone/keystone.conf").change == "reload"
    assert keystone.impact("/etc/keystone/keystone-uwsgi.ini").change == "restart"
    assert keystone.reload is not None and keystone.reload.command is not None
    assert keystone.reload.command[:2] == ["saline-entrypoint", "uwsgi-reload"]
    haproxy = SHIPPED.services["haproxy"][1]
    assert haproxy.impact("/etc/haproxy/haproxy.cfg").change == "reload"
    assert haproxy.reload == Reload(command=["saline-entrypoint", "haproxy-reload"])
    horizon = SHIPPED.services["horizon"][1]
    settings = "/etc/openstack-dashboard/local_settings.d/_9000_saline.py"
    assert horizon.impact(settings).change == "reload"
    assert horizon.impact("/etc/openstack-dashboard/horizon-uwsgi.ini").change == "restart"
    assert horizon.reload is not None and horizon.reload.command is not None
    assert horizon.reload.command[:3] == ["saline-entrypoint", "uwsgi-reload", "--graceful"]
    for name in (
        "glance-api",
        "mariadb",
        "memcached",
        "rabbitmq",
        "neutron-server",
        "neutron-dhcp-agent",
        "neutron-l3-agent",
        "neutron-linuxbridge-agent",
        "neutron-metadata-agent",
    ):
        spec = SHIPPED.services[name][1]
        assert {spec.impact(p).change for p in spec.config_files} == {"restart"}, name


# -- the schema --------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "pillar": "x:server",
    "install": ["x.install"],
    "command": ["x"],
    "health": {"tcp": {"port": 1}},
}


def service(**extra: Any) -> Service:
    return Service.model_validate({**BASE, **extra})


def test_a_reload_entry_needs_a_reload() -> None:
    with pytest.raises(ValidationError, match=r"/etc/x\.conf needs a reload, but the service"):
        service(config_files={"/etc/x.conf": "reload"})
    with pytest.raises(ValidationError, match="needs a reload"):
        service(config_files={"/etc/x.conf": {"change": "restart", "keys": {"log": "reload"}}})
    ok = service(config_files={"/etc/x.conf": "reload"}, reload={"signal": "SIGHUP"})
    assert ok.impact("/etc/x.conf") == FileImpact(change="reload")


def test_a_reload_is_a_signal_or_a_command() -> None:
    with pytest.raises(ValidationError, match="exactly one of signal or command"):
        Reload()
    with pytest.raises(ValidationError, match="exactly one of signal or command"):
        Reload(signal="SIGHUP", command=["x"])
    with pytest.raises(ValidationError, match="should match pattern"):
        Reload(signal="HUP")


def test_impact_of_files_sections_and_keys() -> None:
    spec = service(
        config_files={
            "/etc/x.conf": {"change": "restart", "keys": {"log": "none", "db/pool": "reload"}},
            "/etc/y.conf": "none",
        },
        reload={"command": ["x-reload"]},
    )
    assert spec.impact("/etc/x.conf").keys == {"log": "none", "db/pool": "reload"}
    assert spec.impact("/etc/y.conf") == FileImpact(change="none")
    # Unknown means restart.
    assert spec.impact("/etc/z.conf") == FileImpact(change="restart")
    with pytest.raises(ValidationError):
        service(config_files={"/etc/x.conf": {"change": "sometimes"}})
    with pytest.raises(ValidationError, match="config file paths are absolute"):
        service(config_files={"etc/x.conf": "none"})


def test_an_api_check_needs_a_command() -> None:
    with pytest.raises(ValidationError):
        service(api_check={"command": []})
    assert service(api_check={"command": ["true"]}).api_check is not None
