"""A service's cluster (``cluster`` in formula.yml, e.g. Galera): its members, checked
against the model before anything starts. Pure.

A node running the service is a member when one of the cluster's pillar sections
(``galera:master``, ``galera:slave``) has ``enabled: true``. That section's ``members``
lists every member, ``{name, host, port}``, ``name`` being the member's node (its Salt
minion id, which the formula's templates look itself up by). A mistake here gives a
cluster that never forms, or two clusters, or one that loses its majority when a member
stops: each is one message naming the node's file, line and key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Location, ModelError
from ..model import Model, pillar_value
from ..model.contributions import contributions
from .schema import Cluster
from .schema import Service as ServiceSpec

if TYPE_CHECKING:
    from . import ServiceInstance

#: Where in the model a node's parameter was set (file and line): ``(node, path)``.
Locate = Callable[[str, tuple[str, ...]], Location]


def model_locator(model: Model) -> Locate:
    """file:line where a node's parameter was set (the last file to set it), else the
    node's file."""

    def locate(node: str, path: tuple[str, ...]) -> Location:
        key = "parameters:" + ":".join(path)
        found = contributions(model, node, "parameters", path)
        if found:
            return Location(found[-1].file, found[-1].line, node, key)
        return Location(model.files.node(node).file, None, node, key)

    return locate


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    port: int | None

    def show(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.name} ({self.host}{port})"


def _members(raw: Any) -> tuple[list[Member], str]:
    """The member list, or an explanation of why it is none."""
    if not isinstance(raw, list) or not raw:
        return [], "is not a list of members ({name, host, port})"
    out = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, Mapping):
            return [], f"member {i} is not a mapping of name, host and port"
        name, host, port = item.get("name"), item.get("host"), item.get("port")
        for key, value in (("name", name), ("host", host)):
            if not isinstance(value, str) or not value:
                return [], f"member {i} has no {key}"
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            return [], f"member {i}: port {port!r} is not a number"
        out.append(Member(str(name), str(host), port))
    names = [m.name for m in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        return [], f"names {', '.join(twice)} more than once"
    return out, ""


def _difference(a: list[Member], b: list[Member]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False), 1):
        if x != y:
            return f"member {i} is {x.show()} there and {y.show()} here"
    return f"{len(a)} members there, {len(b)} here"


def check_clusters(
    services: Mapping[str, Sequence[ServiceInstance]],
    pillars: Mapping[str, Mapping[str, Any]],
    locate: Locate,
) -> None:
    """Raise a :class:`ModelError` naming the file, line and key of the first mistake in
    the members of a clustered service. ``services``: each node's service instances
    (:class:`~saline.formulas.ServiceInstance`); ``pillars``: each node's parameters."""
    specs: dict[str, ServiceSpec] = {}
    for insts in services.values():
        for inst in insts:
            if inst.spec.cluster is not None:
                specs.setdefault(inst.name, inst.spec)
    for service, spec in sorted(specs.items()):
        assert spec.cluster is not None
        _check(service, spec.cluster, services, pillars, locate)


def _check(
    service: str,
    cluster: Cluster,
    services: Mapping[str, Sequence[ServiceInstance]],
    pillars: Mapping[str, Mapping[str, Any]],
    locate: Locate,
) -> None:
    sections = " or ".join(cluster.pillar)
    runs = {n for n, insts in services.items() if any(i.name == service for i in insts)}
    # Which section makes each node a member.
    member_of: dict[str, str] = {}
    for node in sorted(runs):
        enabled = [p for p in cluster.pillar if pillar_value(pillars[node], f"{p}:enabled") is True]
        if len(enabled) > 1:
            raise ModelError(
                f"{service} on {node} enables both {enabled[0]} and {enabled[1]}: a member "
                "of its cluster enables one",
                locate(node, tuple(f"{enabled[1]}:enabled".split(":"))),
            )
        if enabled:
            member_of[node] = enabled[0]
    if not member_of:
        return
    # Each member's list: itself in it, a quorum.
    lists: dict[str, list[Member]] = {}
    for node, section in sorted(member_of.items()):
        path = tuple(f"{section}:members".split(":"))
        members, why = _members(pillar_value(pillars[node], f"{section}:members"))
        if why:
            raise ModelError(f"{service}'s cluster: {':'.join(path)} {why}", locate(node, path))
        names = [m.name for m in members]
        if node not in names:
            raise ModelError(
                f"{node} is not among the members of its {service} cluster "
                f"({', '.join(names)}): every member lists each member by its node name, "
                "itself included",
                locate(node, path),
            )
        if cluster.quorum and (len(members) < 3 or len(members) % 2 == 0):
            raise ModelError(
                f"{service}'s cluster has {len(members)} member{'s' * (len(members) != 1)} "
                f"({', '.join(names)}): it needs an odd number, at least 3, so that a "
                "majority still runs when one member stops",
                locate(node, path),
            )
        lists[node] = members
    # Every member lists the same members.
    first = min(lists)
    first_path = tuple(f"{member_of[first]}:members".split(":"))
    for node in sorted(lists):
        if lists[node] != lists[first]:
            there = locate(first, first_path)
            where = f"{there.file}:{there.line}" if there.line else (there.file or first)
            raise ModelError(
                f"the members of {service}'s cluster differ between {first} ({where}) and "
                f"{node}: {_difference(lists[first], lists[node])}",
                locate(node, tuple(f"{member_of[node]}:members".split(":"))),
            )
    # Each member is a node running the service as a member.
    for m in lists[first]:
        if m.name in member_of:
            continue
        if m.name not in pillars:
            why = "is not a node of the model"
        elif m.name not in runs:
            why = f"does not run {service}"
        else:
            why = f"does not enable {sections}"
        raise ModelError(f"member {m.name} of {service}'s cluster {why}", locate(first, first_path))
    if cluster.seed is not None:
        seeds = sorted(n for n, s in member_of.items() if s == cluster.seed)
        if len(seeds) != 1:
            who = " and ".join(seeds) if seeds else "none does"
            at = seeds[1] if seeds else first
            raise ModelError(
                f"exactly one member of {service}'s cluster enables {cluster.seed} (the "
                f"member that starts a new cluster): {who}",
                locate(at, tuple(f"{cluster.seed if seeds else member_of[at]}".split(":"))),
            )
