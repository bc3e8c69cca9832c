"""Services that need their node (formula.yml ``host``: libvirt, nova-compute, the
network agents, a Ceph OSD): the schema's checks, the compose rendering (privileged,
devices, init, folders shared per node) and the refusal on Kubernetes. Pure."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from release_tools import release_of
from saline.errors import ModelError
from saline.formulas import FormulaSet
from saline.formulas.schema import Host, Service
from saline.manifests.kubernetes import KubeOptions, kubernetes_manifests
from tools import FORMULAS, STATE_PLACEHOLDER, core_example, example_stack


def service(**extra: Any) -> dict[str, Any]:
    return {
        "pillar": "x:server",
        "install": ["x.install"],
        "command": ["x"],
        "health": {"tcp": {"port": 1}},
        **extra,
    }


def test_a_service_asks_nothing_of_its_node_by_default() -> None:
    spec = Service.model_validate(service())
    assert spec.host == Host() and not spec.host.needs_host()
    shipped = FormulaSet([str(FORMULAS)])
    # The shipped services that need their node: the hypervisor and its compute agent,
    # and neutron's agents (bridges, namespaces, iptables: privileged; the metadata agent
    # only the folder of its socket).
    needs = {n: s.host for n, (_, s) in shipped.services.items() if s.host.needs_host()}
    assert sorted(needs) == [
        "neutron-dhcp-agent",
        "neutron-l3-agent",
        "neutron-linuxbridge-agent",
        "neutron-metadata-agent",
        "nova-compute",
        "nova-libvirt",
    ]
    assert not needs["neutron-metadata-agent"].privileged
    assert needs["neutron-metadata-agent"].shared == {
        "neutron-metadata": "/var/lib/neutron/metadata"
    }


def test_host_needs_are_checked() -> None:
    ok = Service.model_validate(
        service(host={"devices": ["/dev/net/tun"], "init": True, "shared": {"run": "/run/x"}})
    )
    assert ok.host.needs_host() and ok.host.shared == {"run": "/run/x"}
    with pytest.raises(ValidationError, match="privileged already gives every device"):
        Service.model_validate(service(host={"privileged": True, "devices": ["/dev/net/tun"]}))
    with pytest.raises(ValidationError, match="privileged already gives every capability"):
        Service.model_validate(service(host={"privileged": True}, capabilities=["NET_ADMIN"]))
    with pytest.raises(ValidationError, match="'run/x' is not an absolute path"):
        Service.model_validate(service(host={"shared": {"run": "run/x"}}))
    with pytest.raises(ValidationError, match="shared run mounts /data, which is a volume"):
        Service.model_validate(service(host={"shared": {"run": "/data"}}, volumes={"d": "/data"}))
    with pytest.raises(ValidationError, match="String should match pattern"):
        Service.model_validate(service(host={"devices": ["/etc/passwd"]}))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Service.model_validate(service(host={"priviledged": True}))


def _formulas(tmp_path: Path) -> str:
    """The shipped formulas, with keystone and glance-api (both on ctl01 and ctl02)
    asking for host things and sharing one folder, as libvirt and nova-compute do."""
    formulas = tmp_path / "formulas"
    shutil.copytree(FORMULAS, formulas)
    for name, host in (
        ("keystone", "{privileged: true, host_network: true, shared: {run-x: /run/x}}"),
        ("glance", "{devices: [/dev/net/tun], init: true, shared: {run-x: /run/x}}"),
    ):
        meta = formulas / name / "formula.yml"
        text = meta.read_text()
        anchor = "\n    install: ["
        assert text.count(anchor) == 1, f"{name}'s formula.yml changed: update this test"
        meta.write_text(text.replace(anchor, f"\n    host: {host}{anchor}"))
    return str(formulas)


def test_compose_gives_each_service_what_it_needs_and_one_shared_folder_per_node(
    tmp_path: Path,
) -> None:
    stack = example_stack(STATE_PLACEHOLDER, formula_dirs=[_formulas(tmp_path)])
    doc = stack.plan.document
    svc = doc["services"]
    for node in ("ctl01", "ctl02"):
        keystone, glance = svc[f"keystone-{node}"], svc[f"glance-api-{node}"]
        assert keystone["privileged"] is True
        # host_network: the node's name, as on the node itself.
        assert keystone["hostname"] == node and "hostname" not in glance
        assert "devices" not in keystone and "init" not in keystone
        assert glance["devices"] == ["/dev/net/tun:/dev/net/tun"] and glance["init"] is True
        assert "privileged" not in glance
        # The same folder of the node in both, another node's elsewhere.
        assert f"{node}-run-x:/run/x" in keystone["volumes"]
        assert f"{node}-run-x:/run/x" in glance["volumes"]
        assert doc["volumes"][f"{node}-run-x"]["labels"]["saline.shared"] == "run-x"
        # A task of the service runs as its service does (it may talk to what it shares).
        assert svc["keystone-db-sync"]["privileged"] is True
    # A service that asks nothing gets nothing.
    assert not any(key in svc["memcached"] for key in ("privileged", "devices", "init"))
    # The definition is the container's input: a change of it recreates the container.
    plain = example_stack(STATE_PLACEHOLDER).plan.document["services"]
    assert (
        svc["keystone-ctl01"]["labels"]["saline.inputs"]
        != (plain["keystone-ctl01"]["labels"]["saline.inputs"])
    )


def test_kubernetes_refuses_a_service_that_needs_its_node(tmp_path: Path) -> None:
    # The release is the example's core profile (Kubernetes runs no compute yet); the
    # formulas' metadata asks for the node.
    release, pillars = release_of(core_example(tmp_path))
    formulas = FormulaSet([_formulas(tmp_path)])
    specs = {name: spec for name, (_, spec) in formulas.services.items()}
    with pytest.raises(ModelError) as caught:
        kubernetes_manifests(release, pillars, specs, KubeOptions())
    msg = str(caught.value)
    assert "service glance-api on ctl01.openstack.local, ctl02.openstack.local needs its" in msg
    assert "(init, device /dev/net/tun, shared /run/x)" in msg
    assert "glance:server:enabled: false" in msg
