"""An OpenStack API's check (formula.yml `api_check`), two kinds, exit 0 when it passed:

    python3 openstack-api-check.py NAME PATH KEY
        a token from keystone (the pillar's auth URL, the service's own user), then a list
        from this instance itself (glance-api /v2/images?limit=1 images; placement-api
        /resource_providers resource_providers; {project_id} in PATH is the token's
        project: cinder-api /v3/{project_id}/volumes volumes);
    python3 openstack-api-check.py --get NAME PORT PATH STATUS
        no token: this instance answers PATH on PORT with the HTTP status STATUS (nova's metadata
        API lists its versions at /; the serial console proxy, a websocket server, answers
        a plain GET with 405);
    python3 openstack-api-check.py --service BINARY
        for a service that serves no HTTP: the API (the pillar's api_url) lists this host's
        service BINARY as up and enabled (nova-conductor, nova-scheduler, nova-compute; a
        neutron agent: alive), and for nova-compute its hypervisor as up too. That is what
        a rolling change must wait for: nothing is sent to a service the API reports down.

Run in the instance's container. Standard library only. Credentials come from the pillar
the container runs with: the service's pillar section (identity: auth_url, user,
password, tenant; bind: address, port; or api_url and host), its secrets merged, as JSON
on stdin (`saline-entrypoint with-pillar glance:server`); nothing secret is printed.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 20


def local_url(bind):
    """The instance's own address: its bind address, or loopback when it binds them all."""
    host = str(bind.get("address") or "0.0.0.0")
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{bind['port']}"


def token(identity):
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": identity["user"],
                        "domain": {"id": "default"},
                        "password": identity["password"],
                    }
                },
            },
            "scope": {"project": {"name": identity["tenant"], "domain": {"id": "default"}}},
        }
    }
    request = urllib.request.Request(
        identity["auth_url"].rstrip("/") + "/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
        body = json.load(resp)
        # The token, and its project for URLs that name it ({project_id}: cinder's).
        return resp.headers["X-Subject-Token"], body["token"]["project"]["id"]


def get(url, tok, version=None):
    headers = {"X-Auth-Token": tok}
    if version:
        headers["OpenStack-API-Version"] = version
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT) as r:
        return json.load(r)


def list_check(name, path, key, server, tok):
    """The list at ``path`` of this instance."""
    tok, project = tok
    url = local_url(server["bind"]) + path.format(project_id=project)
    found = get(url, tok)[key]
    return f"{name} at {url}: {key} ({len(found)} shown)"


def service_check(binary, section, tok):
    """This host's ``binary`` up in the API that knows it (nova's or cinder's services, or
    neutron's agents); else :class:`CheckFailed`."""
    tok, project = tok
    api = section["api_url"].rstrip("/").replace("%(project_id)s", project)
    host = section["host"]
    version = "compute 2.53" if binary.startswith("nova-") else None
    if binary.startswith("neutron-"):
        query = urllib.parse.urlencode({"binary": binary, "host": host})
        agents = get(f"{api}/v2.0/agents?{query}", tok)["agents"]
        if not agents or not agents[0]["alive"] or not agents[0]["admin_state_up"]:
            raise CheckFailed(f"{binary} on {host}: not alive in {api}'s agent list")
        return f"{binary} on {host}: alive"
    query = urllib.parse.urlencode({"binary": binary, "host": host})
    services = get(f"{api}/os-services?{query}", tok, version)["services"]
    if not services:
        raise CheckFailed(f"{binary} on {host}: not known to the API at {api}")
    service = services[0]
    if service["state"] != "up" or service["status"] != "enabled":
        raise CheckFailed(f"{binary} on {host}: {service['state']}, {service['status']}")
    if binary != "nova-compute":
        return f"{binary} on {host}: up and enabled"
    query = urllib.parse.urlencode({"hypervisor_hostname_pattern": host})
    try:
        found = get(f"{api}/os-hypervisors?{query}", tok, version)["hypervisors"]
    except urllib.error.HTTPError as e:
        if e.code != 404:  # 404: no hypervisor matches yet
            raise
        found = []
    up = [h for h in found if h.get("state") == "up"]
    if not up:
        raise CheckFailed(f"{binary} on {host}: up, but no hypervisor {host} is up yet")
    return f"{binary} on {host}: up and enabled, hypervisor {up[0]['hypervisor_hostname']} up"


class CheckFailed(Exception):
    pass


def plain_get(name, port, path, status, section):
    """This instance's answer to a GET of ``path`` on ``port`` without a token."""
    url = local_url({**section["bind"], "port": port}) + path
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            code = resp.status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError as e:
        print(f"{name} at {url}: {type(e).__name__}: {e}")
        return 1
    if code != int(status):
        print(f"{name} at {url}: HTTP {code}, not {status}")
        return 1
    print(f"{name} at {url}: HTTP {code} ({time.monotonic() - started:.2f} s)")
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "--get":
        try:
            section = json.load(sys.stdin)
        except (OSError, ValueError) as e:
            print(f"{argv[2]}: no pillar: {e}")
            return 1
        return plain_get(argv[2], argv[3], argv[4], argv[5], section)
    if len(argv) == 3 and argv[1] == "--service":
        name, run = argv[2], lambda section, tok: service_check(argv[2], section, tok)
    elif len(argv) == 4:
        name = argv[1]

        def run(section, tok):
            return list_check(name, argv[2], argv[3], section, tok)

    else:
        print(
            "usage: openstack-api-check.py NAME PATH KEY | --get NAME PORT PATH STATUS | "
            "--service BINARY (the pillar section on stdin)"
        )
        return 2
    try:
        section = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print(f"{name}: no pillar: {e}")
        return 1
    identity = section["identity"]
    started = time.monotonic()
    try:
        tok = token(identity)
    except urllib.error.HTTPError as e:
        print(f"keystone at {identity['auth_url']}: no token: HTTP {e.code} {e.reason}")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"keystone at {identity['auth_url']}: no token: {type(e).__name__}: {e}")
        return 1
    try:
        done = run(section, tok)
    except CheckFailed as e:
        print(e)
        return 1
    except urllib.error.HTTPError as e:
        print(f"{name}: HTTP {e.code} {e.reason} ({e.url})")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"{name}: {type(e).__name__}: {e}")
        return 1
    took = time.monotonic() - started
    print(f"{done} with a token ({took:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
