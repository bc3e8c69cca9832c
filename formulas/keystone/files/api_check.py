"""keystone's API check (formula.yml `api_check`): a project-scoped token from this
instance itself, then that token validated by it; exit 0 when both succeed.

Run in the instance's container. Standard library only. The admin's credentials come from
the pillar the container runs with: keystone:server, its secrets merged, as JSON on stdin
(`saline-entrypoint with-pillar keystone:server`); nothing secret is printed.
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


def main():
    try:
        server = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print(f"keystone: no pillar: {e}")
        return 1
    base = local_url(server["bind"]) + "/v3"
    project = server["admin_project"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": server["admin_name"],
                        "domain": {"id": "default"},
                        "password": server["admin_password"],
                    }
                },
            },
            "scope": {"project": {"name": project, "domain": {"id": "default"}}},
        }
    }
    started = time.monotonic()
    request = urllib.request.Request(
        base + "/auth/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            token = resp.headers["X-Subject-Token"]
            issued = json.load(resp)["token"]
        scoped = issued.get("project", {}).get("name")
        if not token or scoped != project:
            print(f"keystone at {base}: the token is not scoped to project {project}")
            return 1
        check = urllib.request.Request(
            base + "/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token},
        )
        with urllib.request.urlopen(check, timeout=TIMEOUT) as resp:
            json.load(resp)
    except urllib.error.HTTPError as e:
        print(f"keystone at {base}: HTTP {e.code} {e.reason}")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"keystone at {base}: {type(e).__name__}: {e}")
        return 1
    took = time.monotonic() - started
    print(f"keystone at {base}: token scoped to {project}, validated ({took:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
