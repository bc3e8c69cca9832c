"""``saline smoke``: a running cloud checked the way a user would, with openstacksdk.

Against the admin credentials of ``saline openrc``, through the public endpoints:

1. a token;
2. the service catalog has a public endpoint of every service type the model's services
   register (formula.yml ``endpoints``);
3. a new project and user, given the member role, gets a token of its own;
4. an image uploaded to glance becomes active and downloads back with the same checksums;
5. placement, where the model runs it, lists its resource providers;
6. everything created is deleted again (also when a check fails).
"""

from __future__ import annotations

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


def _connect(env: dict[str, str], **override: str) -> Any:
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
    # Only these credentials: no clouds.yaml, no OS_* of the caller's shell.
    return openstack.connect(load_yaml_config=False, load_envvars=False, auth=auth, **settings)


def run_smoke(
    env: dict[str, str],
    progress: Callable[[str], None],
    catalog: Collection[str] = ("identity", "image"),
) -> SmokeReport:
    """The checks above; ``catalog``: the service types the model's services register
    (:func:`saline.formulas.endpoint_types`), each of which must have a public endpoint."""
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
            conn = _connect(env)
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
        with check("project and user") as d:
            project = conn.identity.create_project(
                name=f"saline-smoke-{suffix}", domain_id="default"
            )
            cleanup.append(("project", lambda: conn.identity.delete_project(project)))
            password = uuid.uuid4().hex
            user = conn.identity.create_user(
                name=f"saline-smoke-{suffix}",
                password=password,
                domain_id="default",
                default_project_id=project.id,
            )
            cleanup.append(("user", lambda: conn.identity.delete_user(user)))
            role = conn.identity.find_role("member", ignore_missing=False)
            conn.identity.assign_project_role_to_user(project, user, role)
            as_user = _connect(
                env, username=user.name, password=password, project_name=project.name
            )
            if not as_user.session.get_token():
                raise SmokeError("smoke check 'project and user' failed: no token for the user")
            d.append(f"{user.name} in {project.name}, token as member")
        with check("image upload and download") as d:
            data = os.urandom(IMAGE_BYTES)
            image = conn.image.create_image(
                name=f"saline-smoke-{suffix}",
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
    except SmokeError as failed:
        # Clean up anyway; the failed check is the message, a cleanup problem its tail.
        try:
            _clean(cleanup, report, progress)
        except SmokeError as also:
            raise SmokeError(f"{failed}\n{also}") from None
        raise
    _clean(cleanup, report, progress)
    return report


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
