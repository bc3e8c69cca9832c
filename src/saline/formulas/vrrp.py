"""Virtual addresses (``vrrp`` in formula.yml, keepalived): checked against the model
before anything starts. Pure.

A service with ``vrrp`` holds the VRRP instances of the pillar mapping its ``instances``
names (``keepalived:cluster:instance``: instance name -> the salt-formulas keepalived
keys ``address`` or ``addresses``, ``virtual_router_id``, ``unicast_src_ip``,
``unicast_peer``, ``enabled``). Nodes whose pillar has an instance of the same name are
its members: one VRRP router on the stack's network, whose addresses belong to the
member that is master. A mistake here gives an address nobody reaches, two routers that
fight over one address, or members that never hear each other: each is one message
naming the node's file, line and key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Location, ModelError

if TYPE_CHECKING:
    from . import ServiceInstance

#: Where in the model a node's parameter was set (file and line): ``(node, path)``.
Locate = Callable[[str, tuple[str, ...]], Location]


def _no_file(node: str, path: tuple[str, ...]) -> Location:
    return Location(node=node, key="parameters:" + ":".join(path))


@dataclass(frozen=True)
class Member:
    """One node's view of a VRRP instance."""

    node: str
    service: str
    name: str
    path: tuple[str, ...]  # the instance's pillar path
    addresses: tuple[str, ...]
    address_key: str  # address or addresses
    router_id: int
    #: The unicast peers it lists, without its own address; None: multicast.
    peers: frozenset[str] | None


def _value(pillar: Mapping[str, Any], path: Sequence[str]) -> Any:
    v: Any = pillar
    for k in path:
        if not isinstance(v, Mapping) or k not in v:
            return None
        v = v[k]
    return v


def _ipv4(value: Any) -> ipaddress.IPv4Address | None:
    if not isinstance(value, str):
        return None
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        return None


def check_virtual_addresses(
    services: Mapping[str, Sequence[ServiceInstance]],
    pillars: Mapping[str, Mapping[str, Any]],
    addresses: Mapping[str, str],
    subnet: ipaddress.IPv4Network,
    locate: Locate = _no_file,
) -> None:
    """Raise a :class:`ModelError` naming the file, line and key of the first mistake in
    the virtual addresses of the services with ``vrrp``. ``services``: each node's
    service instances; ``pillars``: each node's parameters; ``addresses``: each node's
    address on the stack's network ``subnet`` (whose first host is the gateway)."""
    members: list[Member] = []
    for node in sorted(services):
        for inst in services[node]:
            if inst.spec.vrrp is None:
                continue
            path = tuple(inst.spec.vrrp.instances.split(":"))
            members += _node_members(
                node, inst.name, path, pillars[node], addresses, subnet, locate
            )
    groups: dict[str, list[Member]] = {}
    for m in members:
        groups.setdefault(m.name, []).append(m)
    for group in groups.values():
        _check_group(group, addresses, locate)
    _check_distinct(groups, locate)


def _node_members(
    node: str,
    service: str,
    path: tuple[str, ...],
    pillar: Mapping[str, Any],
    addresses: Mapping[str, str],
    subnet: ipaddress.IPv4Network,
    locate: Locate,
) -> list[Member]:
    section = _value(pillar, path)
    if not isinstance(section, Mapping) or not section:
        raise ModelError(
            f"{service} on {node} holds no virtual address: {':'.join(path)} must map "
            "instance names to {address, virtual_router_id, ...}",
            locate(node, path),
        )
    gateway = subnet.network_address + 1
    owners = {ipaddress.IPv4Address(a): n for n, a in addresses.items()}
    own = addresses[node]
    out = []
    for name, inst in sorted(section.items()):
        here = (*path, str(name))
        if not isinstance(inst, Mapping):
            raise ModelError(
                f"VRRP instance {name} must be a mapping of address, virtual_router_id, ...",
                locate(node, here),
            )
        if inst.get("enabled", True) is False:
            continue
        key = "addresses" if inst.get("addresses") is not None else "address"
        raw = inst.get(key)
        if raw is None:
            raise ModelError(
                f"VRRP instance {name} has no address (give address, or addresses)",
                locate(node, here),
            )
        listed = raw if key == "addresses" and isinstance(raw, list) else [raw]
        if not listed:
            raise ModelError(f"VRRP instance {name} lists no address", locate(node, (*here, key)))
        ips = []
        for value in listed:
            ip = _ipv4(value)
            where = locate(node, (*here, key))
            if ip is None:
                raise ModelError(
                    f"{value!r} is not an IPv4 address (a virtual address is one, like "
                    f"{subnet.network_address + 50}, without a prefix length)",
                    where,
                )
            if ip not in subnet:
                raise ModelError(
                    f"virtual address {ip} is outside the stack's network {subnet} (the "
                    "smallest one holding every node): neither the nodes nor this machine "
                    "would reach it there",
                    where,
                )
            if ip == gateway:
                raise ModelError(
                    f"virtual address {ip} is the stack network's gateway ({subnet}): this "
                    "machine's own address there",
                    where,
                )
            if ip in (subnet.network_address, subnet.broadcast_address):
                raise ModelError(f"virtual address {ip} is not a host address of {subnet}", where)
            if ip in owners:
                who = owners[ip]
                raise ModelError(
                    f"virtual address {ip} is the address of node {who} (_param:single_address)"
                    ": a virtual address belongs to no node, it moves between them",
                    where,
                )
            ips.append(str(ip))
        vrid = inst.get("virtual_router_id")
        if isinstance(vrid, bool) or not isinstance(vrid, int) or not 1 <= vrid <= 255:
            raise ModelError(
                f"VRRP instance {name}: virtual_router_id must be a whole number from 1 to "
                f"255, not {vrid!r}",
                locate(node, (*here, "virtual_router_id")),
            )
        src = inst.get("unicast_src_ip")
        if src is not None and src != own:
            raise ModelError(
                f"VRRP instance {name}: unicast_src_ip {src!r} is not the node's address "
                f"{own}: its peers would drop its advertisements",
                locate(node, (*here, "unicast_src_ip")),
            )
        raw_peers = inst.get("unicast_peer")
        peers: frozenset[str] | None = None
        if raw_peers is not None:
            if not isinstance(raw_peers, list) or not raw_peers:
                raise ModelError(
                    f"VRRP instance {name}: unicast_peer must list the members' addresses",
                    locate(node, (*here, "unicast_peer")),
                )
            for peer in raw_peers:
                if _ipv4(peer) is None:
                    raise ModelError(
                        f"VRRP instance {name}: unicast peer {peer!r} is not an IPv4 address",
                        locate(node, (*here, "unicast_peer")),
                    )
            if own in raw_peers and src is None:
                raise ModelError(
                    f"VRRP instance {name}: unicast_peer lists the node's own address {own}: "
                    "set unicast_src_ip to it (the configuration leaves it out), or drop it",
                    locate(node, (*here, "unicast_peer")),
                )
            peers = frozenset(str(p) for p in raw_peers if p != own)
        out.append(Member(node, service, str(name), here, tuple(ips), key, vrid, peers))
    return out


def _where(locate: Locate, m: Member, key: str) -> str:
    there = locate(m.node, (*m.path, key))
    if there.file:
        return f"{there.file}:{there.line}" if there.line else there.file
    return m.node


def _check_group(group: list[Member], addresses: Mapping[str, str], locate: Locate) -> None:
    """The members of one instance agree: one router id, the same addresses, and each
    lists the others as unicast peers (or none does)."""
    first = group[0]
    for m in group[1:]:
        if m.router_id != first.router_id:
            raise ModelError(
                f"VRRP instance {m.name}: virtual_router_id is {first.router_id} on "
                f"{first.node} ({_where(locate, first, 'virtual_router_id')}) and "
                f"{m.router_id} on {m.node}: its members are one router, with one id",
                locate(m.node, (*m.path, "virtual_router_id")),
            )
        if sorted(m.addresses) != sorted(first.addresses):
            raise ModelError(
                f"VRRP instance {m.name}: its address is {', '.join(first.addresses)} on "
                f"{first.node} ({_where(locate, first, first.address_key)}) and "
                f"{', '.join(m.addresses)} on {m.node}: its members share one address",
                locate(m.node, (*m.path, m.address_key)),
            )
    unicast = [m for m in group if m.peers is not None]
    if unicast and len(unicast) != len(group):
        odd = next(m for m in group if m.peers is None)
        raise ModelError(
            f"VRRP instance {odd.name}: {unicast[0].node} sends its advertisements to "
            f"unicast peers, {odd.node} to the multicast group: they never hear each "
            "other. Give every member unicast_peer, or none",
            locate(odd.node, odd.path),
        )
    for m in unicast:
        assert m.peers is not None
        others = {addresses[o.node]: o.node for o in group if o.node != m.node}
        missing = sorted(set(others) - m.peers)
        if missing:
            raise ModelError(
                f"VRRP instance {m.name}: unicast_peer does not list {missing[0]}, the "
                f"address of {others[missing[0]]}, which is a member too",
                locate(m.node, (*m.path, "unicast_peer")),
            )
        extra = sorted(m.peers - set(others))
        if extra:
            raise ModelError(
                f"VRRP instance {m.name}: unicast peer {extra[0]} is no other node "
                f"holding instance {m.name} (members: "
                f"{', '.join(f'{o.node} {addresses[o.node]}' for o in group)})",
                locate(m.node, (*m.path, "unicast_peer")),
            )


def _check_distinct(groups: Mapping[str, list[Member]], locate: Locate) -> None:
    """Two instances are two routers on one network: distinct ids and addresses."""
    ids: dict[int, Member] = {}
    owned: dict[str, Member] = {}
    for name in sorted(groups):
        m = groups[name][0]
        other = ids.setdefault(m.router_id, m)
        if other is not m:
            raise ModelError(
                f"VRRP instances {other.name} and {m.name} both use virtual_router_id "
                f"{m.router_id} ({_where(locate, other, 'virtual_router_id')}): two "
                "routers on one network need two ids",
                locate(m.node, (*m.path, "virtual_router_id")),
            )
        for address in m.addresses:
            other = owned.setdefault(address, m)
            if other is not m:
                raise ModelError(
                    f"VRRP instances {other.name} and {m.name} both hold {address} "
                    f"({_where(locate, other, other.address_key)})",
                    locate(m.node, (*m.path, m.address_key)),
                )
