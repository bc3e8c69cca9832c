"""Register an OpenStack service in keystone, idempotently: its service user (admin in
the service project), its service (type and name) and its public, internal and admin
endpoints (an endpoint whose URL changed in the model is updated). Keystone's REST API
through keystoneauth, in one process: the openstack CLI took about 2 s per call, 20 s
in all.

Everything comes from the environment (set by the formula's register state, see
openstack/register.jinja), so no secret is ever written to a file: SERVICE_USER,
SERVICE_PASSWORD, SERVICE_PROJECT, SERVICE_TYPE, SERVICE_NAME, SERVICE_URL,
SERVICE_REGION, SERVICE_ROLES (roles besides admin, comma-separated, created if
missing), and the admin's OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME.
"""

import os
import sys
import time
import urllib.error
import urllib.request

from keystoneauth1 import session
from keystoneauth1.identity import v3

env = os.environ


def wait_for(url, limit=180.0):
    """Until ``url`` answers without a server error. Keystone behind a load balancer:
    its instances are healthy before the balancer's own checks have marked them up (a
    few seconds), and meanwhile it answers 503."""
    deadline = time.monotonic() + limit
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
            why = f"HTTP {e.code}"
        except OSError as e:
            why = str(e)
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer within {limit:.0f} s: {why}")
        time.sleep(1)


wait_for(env["OS_AUTH_URL"])
auth = v3.Password(
    auth_url=env["OS_AUTH_URL"],
    username=env["OS_USERNAME"],
    password=env["OS_PASSWORD"],
    project_name=env["OS_PROJECT_NAME"],
    user_domain_name="Default",
    project_domain_name="Default",
)
api = session.Session(auth=auth)
base = env["OS_AUTH_URL"].rstrip("/")


def call(method, path, body=None, **params):
    resp = api.request(base + path, method, json=body, params=params, raise_exc=False)
    if resp.status_code >= 400:
        sys.exit(f"{method} {path}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


def one(kind, path, create, **query):
    """The one ``kind`` the query finds, else a new one. The services of a cloud register
    at the same time (their tasks run in parallel), and each finds-or-creates the shared
    service project and roles: the one that loses the race to create (409 Conflict) takes
    the winner's."""
    found = call("GET", path, **query)[kind + "s"]
    if found:
        return found[0]
    resp = api.request(base + path, "POST", json={kind: create}, raise_exc=False)
    if resp.status_code == 409:
        found = call("GET", path, **query)[kind + "s"]
        if found:
            return found[0]
    if resp.status_code >= 400:
        sys.exit(f"POST {path}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json()[kind]


user_name, project_name = env["SERVICE_USER"], env["SERVICE_PROJECT"]
user = one(
    "user",
    "/users",
    {"name": user_name, "password": env["SERVICE_PASSWORD"], "domain_id": "default"},
    name=user_name,
    domain_id="default",
)
call("PATCH", f"/users/{user['id']}", {"user": {"password": env["SERVICE_PASSWORD"]}})
project = one(
    "project",
    "/projects",
    {"name": project_name, "domain_id": "default"},
    name=project_name,
    domain_id="default",
)
extra = [r for r in env.get("SERVICE_ROLES", "").split(",") if r]
for role_name in ["admin", *extra]:
    role = one("role", "/roles", {"name": role_name}, name=role_name)
    call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
kind, name = env["SERVICE_TYPE"], env["SERVICE_NAME"]
service = one("service", "/services", {"type": kind, "name": name}, type=kind)
for interface in ("public", "internal", "admin"):
    endpoint = one(
        "endpoint",
        "/endpoints",
        {
            "service_id": service["id"],
            "interface": interface,
            "url": env["SERVICE_URL"],
            "region_id": env["SERVICE_REGION"],
        },
        service_id=service["id"],
        interface=interface,
    )
    if endpoint["url"] != env["SERVICE_URL"]:
        call("PATCH", f"/endpoints/{endpoint['id']}", {"endpoint": {"url": env["SERVICE_URL"]}})
print(f"{name} registered: user {user_name}, role, service {kind}, 3 endpoints")
