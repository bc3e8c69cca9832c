"""neutron for real: ML2/linuxbridge on the whole example cloud (the package's stack,
integration/cloud/conftest.py: neutron-server on both controllers, cmp01 with the four
agents beside nova-compute), through the API with openstacksdk, as a user would:

* the four agents of cmp01 alive in neutron's agent list; `saline smoke`
  finds the network endpoint in the catalog;
* the external flat network `public` as neutron-server's `networks` task made it from
  the model (172.24.4.0/24 on br-ex, no DHCP, gateway 172.24.4.1); a tenant vxlan
  network with a DHCP subnet, a router with its gateway on `public` and an interface on
  the tenant subnet;
* the DHCP port goes ACTIVE and dnsmasq runs in the network's qdhcp namespace; the
  router's gateway address (172.24.4.x) answers ping from cmp01's network namespace (a
  `podman exec` in its node container); the metadata agent answers on its socket from
  the L3 agent's container (the folder they share); a floating address is allocated;
* the node netns's rules are in nf_tables (the host's backend), none in legacy tables;
* what the test made deleted again; then cmp01's node container killed (its network namespace,
  br-ex with it, gone): `saline up` brings the node and its agents back, br-ex with them
  (and nova-compute with libvirt, which shared the namespace). It runs last in the
  package.

Every wait is bounded; each step prints its time (run with -s to see them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from integration.cloud.conftest import PROXY, CloudStack
from integration.conftest import until
from integration.test_stack import ok

pytestmark = pytest.mark.integration

NODE = "cmp01"
AGENTS = (
    "neutron-dhcp-agent",
    "neutron-l3-agent",
    "neutron-linuxbridge-agent",
    "neutron-metadata-agent",
)
EXTERNAL = "172.24.4"

#: ICMP echo from a container (python3 only: the node container has no ping). An
#: unprivileged ICMP socket where the namespace allows it (podman's ping_group_range),
#: else a raw one. Prints "GOT/SENT".
PING = r"""
import socket, struct, sys, time
addr, count = sys.argv[1], int(sys.argv[2])
def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
try:
    s, raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP), False
except PermissionError:
    s, raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), True
s.settimeout(1)
got = 0
for seq in range(count):
    body = b"saline-ping!"
    head = struct.pack("!BBHHH", 8, 0, 0, 0x5A5A, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, checksum(head + body), 0x5A5A, seq) + body, (addr, 0))
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            break
        if raw:
            data = data[(data[0] & 0x0F) * 4 :]
        if peer[0] == addr and data[0] == 0 and struct.unpack("!H", data[6:8])[0] == seq:
            got += 1
            break
    time.sleep(0.2)
print(f"{got}/{count}")
"""


#: A metadata request as a router's proxy sends it, on the metadata agent's socket.
METADATA = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(
    b"GET /latest/meta-data/ HTTP/1.0\r\nHost: 169.254.169.254\r\n"
    b"X-Forwarded-For: 192.168.77.250\r\nX-Neutron-Router-ID: " + sys.argv[2].encode()
    + b"\r\n\r\n"
)
print(s.recv(4096).decode(errors="replace").splitlines()[0])
"""


def timed(label: str, action: Callable[[], Any]) -> Any:
    start = time.monotonic()
    result = action()
    print(f"\nneutron: {label}: {time.monotonic() - start:.1f} s")
    return result


class Cloud:
    def __init__(self, stack: CloudStack) -> None:
        self.stack = stack
        self.env = stack.env
        self.podman = stack.podman
        self.conn = stack.connect()

    def container(self, service: str) -> str:
        return self.stack.container(service)

    def run(self, service: str, command: list[str]) -> str:
        return self.stack.run(service, command)

    def agents_alive(self) -> dict[str, bool]:
        return {a.binary: bool(a.is_alive) for a in self.conn.network.agents() if a.host == NODE}

    def api_checks(self) -> list[str]:
        """Each agent's API check, run in its container: alive in neutron's agent list,
        and started since its container did: each one's line, passed or not."""
        lines = []
        for service in AGENTS:
            pillar = (
                "neutron:compute" if service == "neutron-linuxbridge-agent" else "neutron:gateway"
            )
            done = self.podman.run_in(
                self.container(service),
                [
                    "saline-entrypoint",
                    "with-pillar",
                    pillar,
                    "python3",
                    "/usr/local/lib/saline/neutron-agent-check.py",
                    "alive",
                    service,
                ],
                timeout=60,
            )
            lines.append(done.stdout.strip() or done.output.strip())
        return lines

    def ping(self, address: str, count: int = 3) -> str:
        """From cmp01's network namespace: its node container."""
        return self.run(NODE, ["python3", "-c", PING, address, str(count)]).strip()


@pytest.fixture(scope="module")
def neutron(cloud: CloudStack) -> Cloud:
    return Cloud(cloud)


def test_the_agents_report_alive_and_the_catalog_has_the_network_endpoint(
    neutron: Cloud,
) -> None:
    timed(
        "every agent alive",
        lambda: until(
            "cmp01's agents alive",
            lambda: neutron.agents_alive() == dict.fromkeys(AGENTS, True),
            120,
            2,
        ),
    )
    # The catalog's public network endpoint: the proxy's (test_cloud's smoke uses it).
    found = neutron.conn.endpoint_for("network", interface="public")
    assert str(found).rstrip("/") == f"http://{PROXY}:9696", found
    # Each agent's own API check: what `saline apply` gates a change of it on.
    for line in neutron.api_checks():
        assert ": alive in neutron's agent list" in line, line


def test_networks_a_router_and_a_floating_address(neutron: Cloud) -> None:
    net = neutron.conn.network
    created: list[tuple[str, Callable[[], Any]]] = []
    try:
        # The external network is the model's (neutron:server:networks), made by
        # neutron-server's `networks` task: flat on the physical network of br-ex.
        [public] = list(net.networks(name="public"))
        assert public.is_router_external and public.provider_network_type == "flat"
        assert public.provider_physical_network == "external"
        [external] = list(net.subnets(network_id=public.id))
        assert (external.cidr, external.gateway_ip) == (f"{EXTERNAL}.0/24", f"{EXTERNAL}.1")
        assert not external.is_dhcp_enabled
        tenant = net.create_network(name="saline-tenant")
        created.append(("tenant", lambda: net.delete_network(tenant)))
        assert tenant.provider_network_type == "vxlan"
        subnet = net.create_subnet(
            network_id=tenant.id,
            name="saline-tenant-subnet",
            ip_version=4,
            cidr="192.168.77.0/24",
            is_dhcp_enabled=True,
        )
        router = net.create_router(
            name="saline-router", external_gateway_info={"network_id": public.id}
        )
        created.append(("router", lambda: net.delete_router(router)))
        net.add_interface_to_router(router, subnet=subnet.id)
        created.append(
            ("interface", lambda: net.remove_interface_from_router(router, subnet=subnet.id))
        )

        def dhcp_port() -> Any:
            ports = list(net.ports(network_id=tenant.id, device_owner="network:dhcp"))
            return ports[0] if ports else None

        timed(
            "the DHCP port ACTIVE",
            lambda: until(
                "the DHCP port ACTIVE",
                lambda: (p := dhcp_port()) is not None and p.status == "ACTIVE",
                120,
                2,
            ),
        )
        # dnsmasq serves the network from its namespace, in the DHCP agent's container.
        namespace = f"qdhcp-{tenant.id}"

        def dnsmasq() -> bool:
            pids = neutron.run("neutron-dhcp-agent", ["ip", "netns", "pids", namespace]).split()
            names = [
                neutron.run("neutron-dhcp-agent", ["cat", f"/proc/{pid}/comm"]).strip()
                for pid in pids
            ]
            return "dnsmasq" in names

        timed("dnsmasq in its namespace", lambda: until("dnsmasq runs", dnsmasq, 60, 2))

        # The router's gateway on public: it answers from cmp01's namespace, over br-ex.
        router = net.get_router(router)
        [gateway] = [ip["ip_address"] for ip in router.external_gateway_info["external_fixed_ips"]]
        assert gateway.startswith(f"{EXTERNAL}."), gateway
        timed(
            f"ping {gateway} from cmp01",
            lambda: until(
                f"{gateway} answers ping from cmp01",
                lambda: neutron.ping(gateway).split("/")[0] != "0",
                90,
                3,
            ),
        )
        print(f"neutron: ping {gateway} from cmp01: {neutron.ping(gateway, 5)} answered")

        # The metadata proxies (haproxy in the router's namespace, in the L3 agent's
        # container) reach the metadata agent at its socket, in the folder the node's
        # agents share: it answers, having asked neutron-server for the port of the
        # address (none: 404).
        asked = neutron.run(
            "neutron-l3-agent",
            ["python3", "-c", METADATA, "/var/lib/neutron/metadata/metadata_proxy", router.id],
        )
        assert asked.startswith("HTTP/1.1 404"), asked

        fip = net.create_ip(floating_network_id=public.id)
        created.append(("floating ip", lambda: net.delete_ip(fip)))
        assert fip.floating_ip_address.startswith(f"{EXTERNAL}."), fip.floating_ip_address

        # The namespace's rules: nf_tables (the host's backend and the image's), none in
        # legacy tables (a mix would filter twice, or not at all).
        nft = neutron.run("neutron-linuxbridge-agent", ["iptables-nft-save"])
        assert "neutron-linuxbri" in nft and "-i br-ex ! -o br-ex -j DROP" in nft
        legacy = neutron.run("neutron-linuxbridge-agent", ["iptables-legacy-save"])
        assert "-A " not in legacy, legacy
    finally:
        problems = []
        for what, delete in reversed(created):
            try:
                delete()
            except Exception as e:  # keep deleting the rest
                problems.append(f"{what}: {e}")
        assert not problems, problems
    assert not list(net.networks(name="saline-tenant"))
    assert not list(net.routers(name="saline-router"))


def test_a_new_network_namespace_gets_its_bridge_back(neutron: Cloud) -> None:
    """cmp01's node container killed: its namespace (and br-ex) goes with it; `saline up`
    starts the node anew and recreates its services (they joined the old namespace),
    and the agent's start wrapper makes the bridge again."""
    node = neutron.container(NODE)
    neutron.podman.cli(["kill", node])
    timed("saline up after cmp01's namespace went", lambda: ok(neutron.env, "up"))
    # The node's own view (its new namespace), and the agent's: the same.
    links = neutron.run(NODE, ["python3", "-c", "import os; print(os.listdir('/sys/class/net'))"])
    assert "'br-ex'" in links, links
    shown = neutron.run("neutron-linuxbridge-agent", ["ip", "-o", "-4", "addr", "show", "br-ex"])
    assert f" inet {EXTERNAL}.1/24 " in shown, shown
    # Not only alive (their rows stay so on the old agents' heartbeats for 75 s): each
    # started since its new container did.
    timed(
        "every agent reported from its new container",
        lambda: until(
            "cmp01's agents started anew",
            lambda: all(": alive in neutron's agent list" in line for line in neutron.api_checks()),
            150,
            3,
        ),
    )
