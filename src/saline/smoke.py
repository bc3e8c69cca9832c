"""``saline smoke``: a running cloud checked the way a user would, with openstacksdk.

Against the admin credentials of ``saline openrc``, through the public endpoints:

1. a token;
2. the service catalog has a public endpoint of every service type the model's services
   register (formula.yml ``endpoints``);
3. a new project and user, given the member role, gets a token of its own;
4. an image uploaded to glance becomes active and downloads back with the same checksums;
5. placement, where the model runs it, lists its resource providers;
6. where the model runs nova (a ``compute`` endpoint), what a user of the cloud does
   (:class:`Server`): saline's guest (:mod:`saline.guest`) uploaded as kernel, ramdisk
   and machine images, a network with a router to the external network and a floating
   address (where it runs neutron), a server booted and ACTIVE, its console log showing
   the guest's own lines, the guest reached at its floating address (``reach``: from
   where the external network is, the node holding its bridge), a volume attached
   (where it runs cinder) and seen by the guest as a new disk;
7. everything created is deleted again (also when a check fails), unless asked to keep
   it (``keep``: to look at the server in the dashboard or its console; everything smoke
   makes is named ``saline-smoke-*``, and :func:`clean_smoke` deletes what is left).
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .errors import SalineError

IMAGE_BYTES = 1024 * 1024
#: How long a public endpoint may answer 5xx (or nothing) after `saline up`.
ENDPOINT_TIMEOUT = 120.0
#: Bounds of the server checks: a boot under QEMU's TCG on 2 busy cores, a volume.
ACTIVE_TIMEOUT = 300.0
CONSOLE_TIMEOUT = 240.0
VOLUME_TIMEOUT = 180.0
DELETE_TIMEOUT = 120.0
#: The smoke network's subnet (inside the cloud: a vxlan network, nothing leaves it).
SMOKE_CIDR = "192.168.199.0/24"
#: What every resource smoke makes is named (a floating address: its description).
SMOKE_PREFIX = "saline-smoke-"


class SmokeError(SalineError):
    """A smoke check failed."""


@dataclass
class Check:
    name: str
    seconds: float
    detail: str


@dataclass
class SmokeReport:
    checks: list[Check] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": True,
            "checks": [
                {"name": c.name, "seconds": round(c.seconds, 2), "detail": c.detail}
                for c in self.checks
            ],
        }


def endpoint_overrides(env: dict[str, str]) -> dict[str, str]:
    """``OS_<TYPE>_ENDPOINT_OVERRIDE`` variables (``saline openrc --target kubernetes``
    gives them where the catalog names Services) as openstacksdk's settings
    (``image_endpoint_override``): what the openstack CLI reads from them too."""
    prefix, suffix = "OS_", "_ENDPOINT_OVERRIDE"
    return {
        f"{var[len(prefix) : -len(suffix)].lower()}_endpoint_override": url
        for var, url in sorted(env.items())
        if var.startswith(prefix) and var.endswith(suffix) and len(var) > len(prefix + suffix)
    }


def connect(env: dict[str, str], **override: str) -> Any:
    """An openstacksdk connection with ``env``'s credentials (``saline openrc``'s
    variables; ``override``: another username, password or project_name), and nothing
    else: no clouds.yaml, no OS_* of the caller's shell."""
    import openstack  # imported here: it takes ~0.5 s, and only smoke needs it

    auth = {
        "auth_url": env["OS_AUTH_URL"],
        "username": override.get("username", env["OS_USERNAME"]),
        "password": override.get("password", env["OS_PASSWORD"]),
        "project_name": override.get("project_name", env["OS_PROJECT_NAME"]),
        "user_domain_name": env.get("OS_USER_DOMAIN_NAME", "Default"),
        "project_domain_name": env.get("OS_PROJECT_DOMAIN_NAME", "Default"),
    }
    settings: dict[str, Any] = {
        "region_name": env.get("OS_REGION_NAME"),
        "interface": env.get("OS_INTERFACE", "public"),
        "identity_api_version": "3",
        **endpoint_overrides(env),
    }
    return openstack.connect(load_yaml_config=False, load_envvars=False, auth=auth, **settings)


@dataclass(frozen=True)
class Server:
    """What the server checks need beyond the credentials: the guest's files (kernel,
    ramdisk, disk: :class:`saline.guest.Guest`'s ``files``, and its ``guest.json``), the
    flavor, and how to reach an address of the external network (``reach(ip)``: a ping
    and the guest's page from where that network is, returning what it saw; None: not
    checked)."""

    files: dict[str, str]
    description: dict[str, Any]
    flavor: str = "m1.tiny"
    reach: Callable[[str], str] | None = None


def run_smoke(
    env: dict[str, str],
    progress: Callable[[str], None],
    catalog: Collection[str] = ("identity", "image"),
    server: Server | None = None,
    keep: bool = False,
) -> SmokeReport:
    """The checks above; ``catalog``: the service types the model's services register
    (:func:`saline.formulas.endpoint_types`), each of which must have a public endpoint;
    ``server``: what the server checks need (required where ``compute`` is); ``keep``:
    leave what was made (passed or not), listed in a last check, ``kept``."""
    report = SmokeReport()

    @contextmanager
    def check(name: str) -> Iterator[list[str]]:
        detail: list[str] = []
        start = time.monotonic()
        try:
            yield detail
        except SmokeError:
            raise
        except Exception as e:  # any client failure fails the check
            msg = " ".join(str(e).split()) or type(e).__name__
            raise SmokeError(f"smoke check {name!r} failed: {msg}") from None
        took = time.monotonic() - start
        report.checks.append(Check(name, took, "; ".join(detail)))
        progress(f"ok   {name} ({took:.1f} s){': ' + '; '.join(detail) if detail else ''}")

    suffix = uuid.uuid4().hex[:8]
    cleanup: list[tuple[str, Callable[[], Any]]] = []
    try:
        with check("token") as d:
            conn = connect(env)
            token = conn.session.get_token()
            if not token:
                raise SmokeError("smoke check 'token' failed: keystone returned no token")
            d.append(f"{env['OS_USERNAME']}@{env['OS_PROJECT_NAME']}")
        with check("catalog") as d:
            access = conn.session.auth.get_access(conn.session)
            endpoints = access.service_catalog.get_endpoints(interface="public")
            for kind in sorted(catalog):
                if not endpoints.get(kind):
                    have = ", ".join(sorted(endpoints)) or "nothing"
                    raise SmokeError(
                        f"smoke check 'catalog' failed: no public {kind} endpoint (has {have})"
                    )
                d.append(f"{kind} {endpoints[kind][0]['url']}")
            # Each answers (a balancer marks a new backend up seconds after it is healthy:
            # until then it says 503, and the clients' version discovery fails).
            # Where clients go: the catalog's URL, or the override openrc gives for it
            # (a Kubernetes catalog names Services this machine does not resolve).
            overrides = endpoint_overrides(env)
            for kind in sorted(catalog):
                url = overrides.get(
                    f"{kind.replace('-', '_')}_endpoint_override", endpoints[kind][0]["url"]
                ).split("%(")[0]
                _wait(
                    f"the {kind} endpoint {url}",
                    functools.partial(_answers, conn, url),
                    ENDPOINT_TIMEOUT,
                )
        with check("project and user") as d:
            project = conn.identity.create_project(
                name=f"{SMOKE_PREFIX}{suffix}", domain_id="default"
            )
            cleanup.append(("project", lambda: conn.identity.delete_project(project)))
            password = uuid.uuid4().hex
            user = conn.identity.create_user(
                name=f"{SMOKE_PREFIX}{suffix}",
                password=password,
                domain_id="default",
                default_project_id=project.id,
            )
            cleanup.append(("user", lambda: conn.identity.delete_user(user)))
            role = conn.identity.find_role("member", ignore_missing=False)
            conn.identity.assign_project_role_to_user(project, user, role)
            as_user = connect(env, username=user.name, password=password, project_name=project.name)
            if not as_user.session.get_token():
                raise SmokeError("smoke check 'project and user' failed: no token for the user")
            d.append(f"{user.name} in {project.name}, token as member")
        with check("image upload and download") as d:
            data = os.urandom(IMAGE_BYTES)
            image = conn.image.create_image(
                name=f"{SMOKE_PREFIX}{suffix}",
                data=data,
                disk_format="raw",
                container_format="bare",
                wait=True,
                timeout=120,
            )
            cleanup.append(("image", lambda: conn.image.delete_image(image)))
            image = conn.image.get_image(image)
            if image.status != "active":
                raise SmokeError(f"smoke check 'image' failed: image is {image.status}")
            if image.checksum != hashlib.md5(data).hexdigest():
                raise SmokeError("smoke check 'image' failed: glance's checksum differs")
            back = conn.image.download_image(image).content
            if hashlib.sha256(back).hexdigest() != hashlib.sha256(data).hexdigest():
                raise SmokeError(
                    f"smoke check 'image' failed: downloaded {len(back)} bytes that differ "
                    "from the uploaded ones"
                )
            d.append(f"{len(data)} bytes, active, same sha256 back")
        if "placement" in catalog:
            with check("placement") as d:
                providers = list(conn.placement.resource_providers())
                d.append(f"{len(providers)} resource providers")
        if "compute" in catalog:
            if server is None:
                raise SmokeError("smoke: the model runs nova, but no guest was given to boot")
            _server_checks(conn, server, catalog, suffix, check, cleanup)
    except SmokeError as failed:
        if keep:
            raise SmokeError(f"{failed}\n{_kept(cleanup)}") from None
        # Clean up anyway; the failed check is the message, a cleanup problem its tail.
        try:
            _clean(cleanup, report, progress)
        except SmokeError as also:
            raise SmokeError(f"{failed}\n{also}") from None
        raise
    if keep:
        report.checks.append(Check("kept", 0.0, _kept(cleanup)))
        progress(f"kept {_kept(cleanup)}")
    else:
        _clean(cleanup, report, progress)
    return report


def _kept(cleanup: list[tuple[str, Callable[[], Any]]]) -> str:
    what = ", ".join(sorted({w for w, _ in cleanup})) or "nothing"
    return f"left for inspection: {what} (`saline smoke --clean` deletes them)"


def clean_smoke(
    env: dict[str, str], progress: Callable[[str], None], catalog: Collection[str]
) -> SmokeReport:
    """Delete every resource an earlier smoke left (named ``saline-smoke-*``: kept, or
    a run killed before its cleanup), of any project: servers first (their volumes
    detach), then volumes, floating addresses, routers (their interfaces), security
    groups, networks (their subnets), images, users, projects. Nothing left is fine."""
    conn = connect(env)
    start = time.monotonic()
    gone: list[str] = []

    def mine(thing: Any) -> bool:
        return str(getattr(thing, "name", "") or "").startswith(SMOKE_PREFIX)

    def drop(kind: str, thing: Any, delete: Callable[..., Any], *args: Any) -> None:
        delete(*args)
        gone.append(f"{kind} {thing.name or thing.id}")
        progress(f"deleted {kind} {thing.name or thing.id}")

    if "compute" in catalog:
        for vm in [v for v in conn.compute.servers(all_projects=True) if mine(v)]:
            drop("server", vm, _delete_server, conn, vm)
    if "volumev3" in catalog:
        for vol in [v for v in conn.block_storage.volumes(all_projects=True) if mine(v)]:
            _wait(
                f"volume {vol.name} detached",
                functools.partial(_detached, conn, vol),
                VOLUME_TIMEOUT,
            )
            drop("volume", vol, _delete_volume, conn, vol)
    if "network" in catalog:
        net = conn.network
        for ip in net.ips():
            if str(ip.description or "").startswith(SMOKE_PREFIX):
                drop("floating address", ip, net.delete_ip, ip)
        for router in [r for r in net.routers() if mine(r)]:
            for port in net.ports(device_id=router.id, device_owner="network:router_interface"):
                net.remove_interface_from_router(router, port_id=port.id)
            drop("router", router, net.delete_router, router)
        for group in [g for g in net.security_groups() if mine(g)]:
            drop("security group", group, net.delete_security_group, group)
        for network in [n for n in net.networks() if mine(n)]:
            drop("network", network, net.delete_network, network)
    for image in [i for i in conn.image.images() if mine(i)]:
        drop("image", image, conn.image.delete_image, image)
    for user in [u for u in conn.identity.users() if mine(u)]:
        drop("user", user, conn.identity.delete_user, user)
    for project in [p for p in conn.identity.projects() if mine(p)]:
        drop("project", project, conn.identity.delete_project, project)
    report = SmokeReport()
    report.checks.append(
        Check(
            "clean",
            time.monotonic() - start,
            f"deleted {len(gone)}: {', '.join(gone)}" if gone else "nothing to delete",
        )
    )
    return report


def _detached(conn: Any, volume: Any) -> bool:
    return conn.block_storage.get_volume(volume).status not in ("in-use", "detaching")


def _clean(
    cleanup: list[tuple[str, Callable[[], Any]]],
    report: SmokeReport,
    progress: Callable[[str], None],
) -> None:
    start = time.monotonic()
    problems = []
    for what, delete in reversed(cleanup):
        try:
            delete()
        except Exception as e:  # keep cleaning the rest
            problems.append(f"{what}: {' '.join(str(e).split())}")
    if problems:
        raise SmokeError("smoke cleanup failed: " + "; ".join(problems))
    if cleanup:
        took = time.monotonic() - start
        report.checks.append(Check("cleanup", took, f"deleted {len(cleanup)} resources"))
        progress(f"ok   cleanup ({took:.1f} s)")


Checker = Callable[[str], Any]


def _wait(what: str, ready: Callable[[], Any], timeout: float, step: float = 2.0) -> Any:
    """``ready()``'s first true answer, polled every ``step`` s for at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = ready()
        if found:
            return found
        if time.monotonic() > deadline:
            raise SmokeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(step)


def _upload_guest(
    conn: Any,
    files: dict[str, str],
    description: dict[str, Any],
    name: str,
    cleanup: list[tuple[str, Callable[[], Any]]],
) -> dict[str, str]:
    """saline's guest (``files`` and ``description``: :class:`saline.guest.Guest`'s) as
    glance images NAME-kernel, NAME-ramdisk and NAME-disk, the disk's properties naming
    the other two; each one's deletion added to ``cleanup``. Role -> image id."""
    ids: dict[str, str] = {}
    for role in ("kernel", "ramdisk", "disk"):
        spec = description["images"][role]
        props = dict(spec.get("properties", {}))
        props |= {prop: ids[other] for prop, other in spec.get("id_properties", {}).items()}
        with open(files[role], "rb") as fh:
            image = conn.image.create_image(
                name=f"{name}-{role}",
                data=fh.read(),
                disk_format=spec["disk_format"],
                container_format=spec["container_format"],
                wait=True,
                timeout=120,
                **props,
            )
        cleanup.append((f"image {role}", functools.partial(conn.image.delete_image, image)))
        ids[role] = image.id
    return ids


def _server_checks(
    conn: Any,
    server: Server,
    catalog: Collection[str],
    suffix: str,
    check: Callable[[str], Any],
    cleanup: list[tuple[str, Callable[[], Any]]],
) -> None:
    """Steps 6 of the module's docstring, each a check; everything made is cleaned up."""
    from .guest import ADDRESS_LINE, BOOTED, DISK_LINE, PAGE_MARK

    name = f"{SMOKE_PREFIX}{suffix}"
    with check("guest images") as d:
        ids = _upload_guest(conn, server.files, server.description, name, cleanup)
        d.append(f"kernel, ramdisk and machine image ({server.description['kernel_release']})")
    networks: list[dict[str, str]] = []
    floating: Any = None
    if "network" in catalog:
        with check("network") as d:
            external = next(iter(conn.network.networks(is_router_external=True)), None)
            if external is None:
                raise SmokeError(
                    "smoke check 'network' failed: no external network (router:external)"
                )
            net = conn.network.create_network(name=name)
            cleanup.append(("network", lambda: conn.network.delete_network(net)))
            subnet = conn.network.create_subnet(
                network_id=net.id, name=name, ip_version=4, cidr=SMOKE_CIDR
            )
            cleanup.append(("subnet", lambda: conn.network.delete_subnet(subnet)))
            router = conn.network.create_router(
                name=name, external_gateway_info={"network_id": external.id}
            )
            cleanup.append(("router", lambda: conn.network.delete_router(router)))
            conn.network.add_interface_to_router(router, subnet_id=subnet.id)
            cleanup.append(
                (
                    "router interface",
                    lambda: conn.network.remove_interface_from_router(router, subnet_id=subnet.id),
                )
            )
            group = conn.network.create_security_group(name=name)
            cleanup.append(("security group", lambda: conn.network.delete_security_group(group)))
            for protocol, port in (("icmp", None), ("tcp", 80)):
                conn.network.create_security_group_rule(
                    security_group_id=group.id,
                    direction="ingress",
                    ethertype="IPv4",
                    protocol=protocol,
                    port_range_min=port,
                    port_range_max=port,
                )
            floating = conn.network.create_ip(floating_network_id=external.id, description=name)
            cleanup.append(("floating address", lambda: conn.network.delete_ip(floating)))
            networks = [{"uuid": net.id}]
            d.append(
                f"{SMOKE_CIDR} routed to {external.name}, floating {floating.floating_ip_address}"
            )
    with check("server active") as d:
        flavor = conn.compute.find_flavor(server.flavor, ignore_missing=False)
        create: dict[str, Any] = {
            "name": name,
            "image_id": ids["disk"],
            "flavor_id": flavor.id,
            "networks": networks or "none",
        }
        if networks:
            create["security_groups"] = [{"name": name}]
        vm = conn.compute.create_server(**create)
        cleanup.append(("server", lambda: _delete_server(conn, vm)))

        def active() -> Any:
            found = conn.compute.get_server(vm)
            if found.status == "ERROR":
                fault = (found.fault or {}).get("message", "no fault message")
                raise SmokeError(f"smoke check 'server active' failed: server ERROR: {fault}")
            return found if found.status == "ACTIVE" else None

        vm = _wait("server ACTIVE", active, ACTIVE_TIMEOUT)
        d.append(f"{vm.name} on {vm.hypervisor_hostname or 'its host'}")

    def console() -> str:
        return str(conn.compute.get_server_console_output(vm).get("output") or "")

    with check("console") as d:
        log = _wait(
            "the guest's boot line in the console log",
            lambda: BOOTED in console() and console(),
            CONSOLE_TIMEOUT,
        )
        d.append(BOOTED)
        if networks:
            log = _wait(
                "the guest's address line",
                lambda: ADDRESS_LINE.search(console()) and console(),
                CONSOLE_TIMEOUT,
            )
            found = ADDRESS_LINE.search(log)
            assert found is not None
            d.append(f"DHCP gave {found.group(1)}/{found.group(2)}")
    if floating is not None:
        with check("floating address") as d:
            # Through neutron: nova's addFloatingIp action is gone since microversion 2.44.
            port = next(iter(conn.network.ports(device_id=vm.id)), None)
            if port is None:
                raise SmokeError("smoke check 'floating address' failed: the server has no port")
            conn.network.update_ip(floating, port_id=port.id)
            reach = server.reach
            if reach is None:
                d.append(f"{floating.floating_ip_address} attached (reaching it: not asked)")
            else:
                seen = _wait(
                    f"the guest's page at {floating.floating_ip_address}",
                    lambda: PAGE_MARK in (got := _try(reach, floating.floating_ip_address)) and got,
                    CONSOLE_TIMEOUT,
                    step=3.0,
                )
                d.append(
                    f"{floating.floating_ip_address} answers: {seen.strip().splitlines()[-1][:80]}"
                )
    if "volumev3" in catalog:
        with check("volume attached") as d:
            volume = conn.block_storage.create_volume(name=name, size=1)
            cleanup.append(("volume", lambda: _delete_volume(conn, volume)))
            _wait(
                "volume available",
                lambda: conn.block_storage.get_volume(volume).status == "available",
                VOLUME_TIMEOUT,
            )
            conn.compute.create_volume_attachment(vm, volume_id=volume.id)
            cleanup.append(("volume attachment", lambda: _detach(conn, vm, volume)))
            _wait(
                "volume in-use",
                lambda: conn.block_storage.get_volume(volume).status == "in-use",
                VOLUME_TIMEOUT,
            )
            disks = _wait(
                "the guest's line for the new disk",
                lambda: [m for m in DISK_LINE.finditer(console()) if m.group(1) != "vda"],
                CONSOLE_TIMEOUT,
            )
            d.append(f"the guest sees {disks[0].group(1)} ({int(disks[0].group(2)) >> 20} MiB)")


def _answers(conn: Any, url: str) -> bool:
    """Whether ``url`` answers without a server error (no token: any 2xx-4xx will do)."""
    try:
        resp = conn.session.get(url, authenticated=False, raise_exc=False, timeout=10)
    except Exception:  # refused, reset, timed out: not yet
        return False
    return int(resp.status_code) < 500


def _try(reach: Callable[[str], str], address: str) -> str:
    """What ``reach`` saw, or '' when it failed (it is polled until it passes)."""
    try:
        return reach(address)
    except SalineError:
        return ""


def _delete_server(conn: Any, vm: Any) -> None:
    conn.compute.delete_server(vm)
    conn.compute.wait_for_delete(vm, wait=int(DELETE_TIMEOUT))


def _detach(conn: Any, vm: Any, volume: Any) -> None:
    if conn.block_storage.get_volume(volume).status == "in-use":
        conn.compute.delete_volume_attachment(volume.id, vm)
        _wait(
            "volume detached",
            lambda: conn.block_storage.get_volume(volume).status == "available",
            VOLUME_TIMEOUT,
        )


def _delete_volume(conn: Any, volume: Any) -> None:
    conn.block_storage.delete_volume(volume)
    conn.block_storage.wait_for_delete(volume, wait=int(DELETE_TIMEOUT))
