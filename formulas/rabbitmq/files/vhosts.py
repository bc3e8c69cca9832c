"""rabbitmq's vhosts task (formula.yml bootstrap `vhosts`): each enabled virtual host of
rabbitmq:server:host, its user and password, the user's permissions on it and the
host's policies, through the node's management HTTP API as the administrator
rabbitmq:server:admin (the node imports it at every boot: configure's definitions.json).

The node is at rabbitmq:server:admin:host (default: the bind address, or loopback when
the node binds them all), port rabbitmq:server:admin:port (default 15672). Over the
network, so the task runs the same in a container beside the node (compose) as in a pod
of its own (a Kubernetes Job). Every call is a PUT of the whole object: running it again
changes nothing.

Standard library only. rabbitmq:server (its secrets merged) comes as JSON on stdin
(`saline-entrypoint with-pillar rabbitmq:server`): no secret in argv or the environment;
nothing secret is printed.
"""

import base64
import contextlib
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 20
#: How long the API may take to answer once the task starts: on Kubernetes the Job only
#: waits for the node's AMQP port, and the management listener comes up after it.
READY_SECONDS = 180
WILDCARD = ("0.0.0.0", "::", "*")
ALL = {"configure": ".*", "write": ".*", "read": ".*"}


def api_url(server):
    """The management API's base URL, from rabbitmq:server:admin and :bind."""
    admin = server["admin"]
    host = str(admin.get("host") or server.get("bind", {}).get("address") or "127.0.0.1")
    if host in WILDCARD:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(admin.get('port', 15672))}/api"


class ApiError(Exception):
    """A call the API refused: the method, the path and RabbitMQ's reason (never a value
    sent)."""

    def __init__(self, method, path, code, reason):
        super().__init__(f"{method} /api/{path}: HTTP {code} {reason}")
        self.code = code


class Api:
    def __init__(self, base, user, password):
        self.base = base
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}/{path}", data=data, headers=self.headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            reason = e.reason
            with contextlib.suppress(OSError, ValueError, AttributeError):
                reason = json.loads(e.read()).get("reason") or reason
            raise ApiError(method, path, e.code, reason) from None
        return json.loads(raw) if raw else None


def wait_ready(api):
    """Until the API answers the administrator; at most READY_SECONDS. Refused
    credentials fail at once: no wait mends them."""
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            api.call("GET", "overview")
            return
        except ApiError as e:
            if e.code in (401, 403):
                raise
            why = str(e)
        except OSError as e:
            why = str(e)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the management API did not answer in {READY_SECONDS} s: {why}")
        time.sleep(2)


def quoted(name):
    return urllib.parse.quote(str(name), safe="")


def policy(spec):
    """A policy of the pillar as the API takes it (``definition``: JSON text or a map)."""
    definition = spec["definition"]
    if isinstance(definition, str):
        definition = json.loads(definition)
    return {
        "pattern": spec["pattern"],
        "definition": definition,
        "apply-to": spec.get("apply_to", "all"),
        "priority": int(spec.get("priority", 0)),
    }


def apply(api, server):
    """Every enabled virtual host of ``server`` (rabbitmq:server); a line per host."""
    admin = quoted(server["admin"]["name"])
    done = []
    for name, host in sorted((server.get("host") or {}).items()):
        if not host.get("enabled", True):
            continue
        vhost = quoted(name)
        user = quoted(host["user"])
        api.call("PUT", f"vhosts/{vhost}", {})
        # Setting a host's policies takes access to it.
        api.call("PUT", f"permissions/{vhost}/{admin}", ALL)
        api.call("PUT", f"users/{user}", {"password": host["password"], "tags": ""})
        api.call("PUT", f"permissions/{vhost}/{user}", ALL)
        policies = host.get("policies") or []
        for spec in policies:
            api.call("PUT", f"policies/{vhost}/{quoted(spec['name'])}", policy(spec))
        done.append(f"{name}: user {host['user']}, {len(policies)} policies")
    return done


def main():
    try:
        server = json.load(sys.stdin)
        base = api_url(server)
    except (OSError, ValueError, KeyError) as e:
        print(f"rabbitmq: no pillar: {type(e).__name__}: {e}")
        return 1
    admin = server["admin"]
    api = Api(base, admin["name"], admin["password"])
    started = time.monotonic()
    try:
        wait_ready(api)
        done = apply(api, server)
    except (ApiError, OSError, ValueError, KeyError) as e:
        print(f"rabbitmq at {base}: {type(e).__name__}: {e}")
        return 1
    took = time.monotonic() - started
    for line in done:
        print(f"rabbitmq at {base}: virtual host {line}")
    print(f"rabbitmq at {base}: {len(done)} virtual host(s) in place ({took:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
