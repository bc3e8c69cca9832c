"""An OpenStack API's check (formula.yml `api_check`): a token from keystone (the
pillar's auth URL, the service's own user), then a list from this instance itself;
exit 0 when both succeed.

    python3 openstack-api-check.py NAME PATH KEY
    (glance-api /v2/images?limit=1 images; placement-api /resource_providers
    resource_providers)

Run in the instance's container. Standard library only. Credentials come from the pillar
the container runs with: the service's pillar section (identity: auth_url, user,
password, tenant; bind: address, port), its secrets merged, as JSON on stdin
(`saline-entrypoint with-pillar glance:server`); nothing secret is printed.
"""

import json
import sys
import time
import urllib.error
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
        return resp.headers["X-Subject-Token"]


def main(argv):
    if len(argv) != 4:
        print("usage: openstack-api-check.py NAME PATH KEY (the pillar section on stdin)")
        return 2
    name, path, key = argv[1:]
    try:
        server = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print(f"{name}: no pillar: {e}")
        return 1
    identity = server["identity"]
    started = time.monotonic()
    try:
        tok = token(identity)
    except urllib.error.HTTPError as e:
        print(f"keystone at {identity['auth_url']}: no token: HTTP {e.code} {e.reason}")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"keystone at {identity['auth_url']}: no token: {type(e).__name__}: {e}")
        return 1
    url = local_url(server["bind"]) + path
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"X-Auth-Token": tok}), timeout=TIMEOUT
        ) as resp:
            found = json.load(resp)[key]
    except urllib.error.HTTPError as e:
        print(f"{name} at {url}: HTTP {e.code} {e.reason}")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"{name} at {url}: {type(e).__name__}: {e}")
        return 1
    took = time.monotonic() - started
    print(f"{name} at {url}: {key} ({len(found)} shown) with a token ({took:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
