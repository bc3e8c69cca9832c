"""The neutron formula on the example with neutron (tests/neutron_model.py: neutron-server
on the controllers, the four agents on cmp01): what it renders for each node (real Salt),
what the render refuses, the stack's order and what the agents get of their node, and
the agents' health check against a real connection. Pure but for Salt and a loopback
socket.

The services themselves run in tests/integration/cloud/test_neutron.py.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from neutron_model import CMP01, CMP01_ADDRESS, neutron_model
from release_tools import edit
from saline.configs import render_nodes
from saline.errors import FormulaError
from saline.formulas import FormulaSet
from saline.model import load_model
from tools import FORMULAS, STATE_PLACEHOLDER, example_stack

SHIPPED = FormulaSet([str(FORMULAS)])
CTL01 = "ctl01.openstack.local"
AGENTS = (
    "neutron-dhcp-agent",
    "neutron-l3-agent",
    "neutron-linuxbridge-agent",
    "neutron-metadata-agent",
)
AGENT_CHECK = FORMULAS / "neutron" / "files" / "agent_check.py"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return neutron_model(tmp_path_factory.mktemp("neutron"))


@pytest.fixture(scope="module")
def rendered(model: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(node, service) -> path -> content, for ctl01 and cmp01."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for node, configs in render_nodes(load_model(str(model)), SHIPPED, [CTL01, CMP01]).items():
        for sc in configs:
            out[(node, sc.service.name)] = {f.path: f.content for f in sc.files}
    return out


def ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(text)
    return parser


def test_the_services_of_the_nodes(rendered: dict[tuple[str, str], dict[str, str]]) -> None:
    assert sorted(s for n, s in rendered if n == CMP01) == sorted(AGENTS)
    assert (CTL01, "neutron-server") in rendered


def test_the_server_configures_ml2_with_linuxbridge_flat_and_vxlan(
    rendered: dict[tuple[str, str], dict[str, str]],
) -> None:
    files = rendered[(CTL01, "neutron-server")]
    assert sorted(files) == ["/etc/neutron/neutron.conf", "/etc/neutron/plugins/ml2/ml2_conf.ini"]
    ml2 = ini(files["/etc/neutron/plugins/ml2/ml2_conf.ini"])
    assert ml2["ml2"]["type_drivers"] == "flat,vxlan"
    assert ml2["ml2"]["tenant_network_types"] == "vxlan"
    assert ml2["ml2"]["mechanism_drivers"] == "linuxbridge,l2population"
    assert ml2["ml2"]["extension_drivers"] == "port_security"
    assert ml2["ml2_type_flat"]["flat_networks"] == "external"
    assert ml2["ml2_type_vxlan"]["vni_ranges"] == "1:1000"
    conf = ini(files["/etc/neutron/neutron.conf"])
    assert conf["DEFAULT"]["core_plugin"] == "ml2"
    assert conf["DEFAULT"]["service_plugins"] == "router"
    assert (conf["DEFAULT"]["api_workers"], conf["DEFAULT"]["rpc_workers"]) == ("1", "1")
    assert conf["DEFAULT"]["bind_port"] == "9696"
    # Without it neutron-server refuses the linuxbridge mechanism driver (Zed).
    assert conf["experimental"]["linuxbridge"] == "true"
    assert conf["DEFAULT"]["transport_url"] == (
        "rabbit://openstack:example-rabbit@10.10.0.20:5672/%2Fopenstack"
    )
    assert conf["database"]["connection"] == (
        "mysql+pymysql://neutron:example-neutron-db@10.10.0.10:3306/neutron"
    )
    assert conf["keystone_authtoken"]["username"] == "neutron"
    # This model runs no nova: no port events for it.
    assert conf["DEFAULT"]["notify_nova_on_port_status_changes"] == "false"
    assert conf["DEFAULT"]["notify_nova_on_port_data_changes"] == "false"
    assert not conf.has_section("nova")


def test_with_nova_the_server_tells_it_of_port_events(tmp_path: Path) -> None:
    model = neutron_model(tmp_path, nova=True)
    [configs] = render_nodes(load_model(str(model)), SHIPPED, [CTL01]).values()
    [server] = [sc for sc in configs if sc.service.name == "neutron-server"]
    conf = ini(next(f.content for f in server.files if f.path == "/etc/neutron/neutron.conf"))
    assert conf["DEFAULT"]["notify_nova_on_port_status_changes"] == "true"
    assert conf["DEFAULT"]["notify_nova_on_port_data_changes"] == "true"
    nova = conf["nova"]
    assert (nova["username"], nova["password"]) == ("nova", "example-nova-service")
    assert nova["auth_url"] == "http://10.10.0.40:5000/v3"
    assert (nova["project_name"], nova["region_name"]) == ("service", "RegionOne")


def test_the_linuxbridge_agent_tunnels_from_the_nodes_address_and_maps_br_ex(
    rendered: dict[tuple[str, str], dict[str, str]],
) -> None:
    files = rendered[(CMP01, "neutron-linuxbridge-agent")]
    agent = ini(files["/etc/neutron/plugins/ml2/linuxbridge_agent.ini"])
    assert agent["vxlan"]["local_ip"] == CMP01_ADDRESS
    assert agent["vxlan"]["enable_vxlan"] == "true"
    assert agent["vxlan"]["l2_population"] == "true"
    assert agent["linux_bridge"]["bridge_mappings"] == "external:br-ex"
    assert agent["securitygroup"]["firewall_driver"] == "iptables"
    # What its start wrapper makes: the bridge, with the external network's gateway.
    lines = [
        line
        for line in files["/etc/neutron/saline-bridges"].splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == ["br-ex 172.24.4.1/24"]


def test_the_agents_share_their_node_settings(
    rendered: dict[tuple[str, str], dict[str, str]],
) -> None:
    for service in AGENTS:
        conf = ini(rendered[(CMP01, service)]["/etc/neutron/neutron.conf"])
        assert conf["DEFAULT"]["host"] == "cmp01", service
        assert conf["DEFAULT"]["transport_url"].endswith("@10.10.0.20:5672/%2Fopenstack")
        assert conf["agent"]["root_helper"] == "sudo neutron-rootwrap /etc/neutron/rootwrap.conf"
        assert not conf.has_section("database"), service  # agents use RPC, not the database
        # The metadata agent's socket is in the folder the node's agents share.
        socket_path = conf["DEFAULT"]["metadata_proxy_socket"]
        for name in ("neutron-dhcp-agent", "neutron-l3-agent", "neutron-metadata-agent"):
            shared = SHIPPED.services[name][1].host.shared["neutron-metadata"]
            assert Path(socket_path).parent == Path(shared)


def test_the_dhcp_l3_and_metadata_agents(
    rendered: dict[tuple[str, str], dict[str, str]],
) -> None:
    dhcp = ini(rendered[(CMP01, "neutron-dhcp-agent")]["/etc/neutron/dhcp_agent.ini"])
    assert dhcp["DEFAULT"]["interface_driver"] == "linuxbridge"
    assert dhcp["DEFAULT"]["enable_isolated_metadata"] == "true"
    l3 = ini(rendered[(CMP01, "neutron-l3-agent")]["/etc/neutron/l3_agent.ini"])
    assert l3["DEFAULT"]["interface_driver"] == "linuxbridge"
    assert l3["DEFAULT"]["agent_mode"] == "legacy"
    metadata = ini(rendered[(CMP01, "neutron-metadata-agent")]["/etc/neutron/metadata_agent.ini"])
    assert metadata["DEFAULT"]["nova_metadata_host"] == "10.10.0.40"
    assert metadata["DEFAULT"]["nova_metadata_port"] == "8775"
    assert metadata["DEFAULT"]["metadata_proxy_shared_secret"] == "example-neutron-metadata"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "type_drivers: [flat, vxlan]",
            "type_drivers: [flat, vlan]",
            "neutron:server:backend:type_drivers has vlan: the neutron formula configures "
            "flat and vxlan networks only",
        ),
        (
            "tenant_network_types: [vxlan]",
            "tenant_network_types: [gre]",
            "neutron:server:backend:tenant_network_types has gre",
        ),
        (
            "mechanism_drivers: [linuxbridge, l2population]",
            "mechanism_drivers: [openvswitch]",
            "neutron:server:backend:mechanism_drivers has openvswitch",
        ),
    ],
)
def test_what_the_formula_does_not_configure_is_refused_before_anything_starts(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    model = neutron_model(tmp_path)
    edit(model / "classes" / "system" / "neutron" / "server.yml", old, new)
    with pytest.raises(FormulaError, match=message):
        render_nodes(load_model(str(model)), SHIPPED, [CTL01])


def test_the_stacks_order_and_what_the_agents_get_of_their_node(model: Path) -> None:
    stack = example_stack(STATE_PLACEHOLDER, model_dir=model)
    steps = {s.name: s for s in stack.plan.steps}
    order = [s.name for s in stack.plan.steps]

    # The database first, then the catalog entry, then the server.
    assert steps["neutron-server-db-sync"].scope == "service"
    assert "mariadb-databases" in steps["neutron-server-db-sync"].after
    assert "keystone" in " ".join(steps["neutron-server-register"].after)
    assert "neutron-server-db-sync" in steps["neutron-server-register"].after
    server = [s for s in order if s.startswith("neutron-server-ctl")]
    assert server == ["neutron-server-ctl01", "neutron-server-ctl02"]
    for instance in server:
        # The tasks in their order: the last one's, which waited for the first.
        assert "neutron-server-register" in steps[instance].after
        assert order.index("neutron-server-register") < order.index(instance)
    # Every agent once the servers and RabbitMQ run, in cmp01's network namespace.
    doc = stack.plan.document["services"]
    for agent in AGENTS:
        assert set(server) | {"rabbitmq", "cmp01"} <= set(steps[agent].after), agent
        assert doc[agent]["network_mode"] == "service:cmp01"
    for agent in ("neutron-dhcp-agent", "neutron-l3-agent", "neutron-linuxbridge-agent"):
        assert doc[agent]["privileged"] is True
    assert "privileged" not in doc["neutron-metadata-agent"]
    # One folder of cmp01 holds the metadata socket for the three that use it.
    for agent in ("neutron-dhcp-agent", "neutron-l3-agent", "neutron-metadata-agent"):
        assert "cmp01-neutron-metadata:/var/lib/neutron/metadata" in doc[agent]["volumes"]
    assert not any("neutron-metadata" in v for v in doc["neutron-linuxbridge-agent"]["volumes"])
    for instance in server:
        assert "privileged" not in doc[instance]


def _check(*args: str) -> list[str]:
    return [sys.executable, str(AGENT_CHECK), *args]


def test_the_agents_health_check_finds_its_processs_connection_to_the_queue(
    tmp_path: Path,
) -> None:
    """The health check (`connected`) against a real connection of a real process: what
    it reads of /proc is what the kernel says, for PID 1 in the container and for the
    process it is given here."""
    # The script itself (standard library only), as a module.
    spec = importlib.util.spec_from_file_location("agent_check", AGENT_CHECK)
    assert spec is not None and spec.loader is not None
    agent_check: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent_check)
    conf = tmp_path / "neutron.conf"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        conf.write_text(
            f"[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:{port},u:p@10.0.0.9:5673/%2Fx\n"
        )
        assert agent_check.queue_endpoints(str(conf)) == [
            ("127.0.0.1", port),
            ("10.0.0.9", 5673),
        ]
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import socket, sys, time; s = socket.create_connection(('127.0.0.1', {port}));"
                " print('up', flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdout is not None and client.stdout.readline() == "up\n"
            accepted, _ = listener.accept()
            with accepted:
                assert ("127.0.0.1", port) in agent_check.established_peers([client.pid])
                # This process holds only the server side: no connection to the port.
                assert ("127.0.0.1", port) not in agent_check.established_peers([os.getpid()])
                # The check as the container runs it, over every process it sees.
                done = subprocess.run(
                    _check("connected", str(conf)), capture_output=True, text=True, timeout=60
                )
                assert done.returncode == 0, done.stdout
                assert f"connected to the message queue (127.0.0.1:{port}, 1 in all)" in done.stdout
        finally:
            assert client.stdin is not None
            client.stdin.close()
            client.wait(timeout=30)


def test_the_health_check_fails_without_a_connection(tmp_path: Path) -> None:
    conf = tmp_path / "neutron.conf"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        conf.write_text(f"[DEFAULT]\ntransport_url = rabbit://u:secret@127.0.0.1:{port}/\n")
        done = subprocess.run(
            _check("connected", str(conf)), capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"the agent has no connection to the message queue (127.0.0.1:{port})" in done.stdout
    assert "secret" not in done.stdout
    conf.write_text("[DEFAULT]\n")
    done = subprocess.run(_check("connected", str(conf)), capture_output=True, text=True)
    assert done.returncode == 1 and "no transport_url" in done.stdout


def test_the_agents_checks_say_how_to_call_them() -> None:
    done = subprocess.run(_check("what"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: neutron-agent-check.py" in done.stdout
