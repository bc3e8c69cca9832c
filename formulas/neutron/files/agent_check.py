"""The neutron agents' checks (formula.yml health and api_check). Standard library only.

    python3 neutron-agent-check.py connected [NEUTRON-CONF]
        The health check, cheap: the agent (a process of this container: PID 1, or its
        child under an init) holds an established TCP connection to the message queue,
        a port of /etc/neutron/neutron.conf's transport_url: it is up and can report its
        state and take RPC. (Every agent of a node shares its network namespace, so the
        node's socket table alone would show the other agents' connections too: the
        sockets are matched to this container's processes' own file descriptors.)

    python3 neutron-agent-check.py alive BINARY   (the pillar section on stdin)
        The API check: a token for the section's identity (neutron's service user), the
        network endpoint from its catalog, and neutron-server's agent list: the agent
        BINARY of this node (the section's host) is there, alive (it reported within
        agent_down_time), administratively up, and started since this container did
        (its row's started_at: a restarted agent's row stays "alive" on the previous
        one's heartbeats for agent_down_time, 75 s, before the new one ever reported).

Prints one line, never a secret; exit 0 when the check passes.
"""

import configparser
import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 20
NEUTRON_CONF = "/etc/neutron/neutron.conf"
#: /proc/net/tcp's state of an established connection.
ESTABLISHED = "01"


def queue_endpoints(conf_path):
    """The (host, port) pairs of the transport_url in ``conf_path``."""
    conf = configparser.ConfigParser(interpolation=None, strict=False)
    conf.read(conf_path)
    url = conf.get("DEFAULT", "transport_url", fallback="")
    if "://" not in url:
        return []
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    found = []
    for member in netloc.split(","):
        hostport = member.rsplit("@", 1)[-1]
        host, _, port = hostport.rpartition(":")
        found.append((host.strip("[]"), int(port or 5672)))
    return found


def _hex_address(text):
    """An address of /proc/net/tcp (``0100007F:162E``) as (dotted IPv4 or hex, port)."""
    address, port = text.split(":")
    if len(address) == 8:  # IPv4, little-endian
        octets = [str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)]
        return ".".join(octets), int(port, 16)
    return address, int(port, 16)


def container_pids():
    """Every process this one sees: the container's own (its PID namespace)."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def established_peers(pids):
    """The remote (address, port) of every established TCP connection of ``pids``."""
    inodes = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone meanwhile
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    peers = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                lines = fh.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == ESTABLISHED and fields[9] in inodes:
                peers.append(_hex_address(fields[2]))
    return peers


def connected(conf_path=NEUTRON_CONF):
    try:
        wanted = queue_endpoints(conf_path)
    except (OSError, ValueError, configparser.Error) as e:
        print(f"{conf_path}: no transport_url: {type(e).__name__}: {e}")
        return 1
    if not wanted:
        print(f"{conf_path}: no transport_url")
        return 1
    ports = {port for _, port in wanted}
    try:
        peers = established_peers(container_pids())
    except OSError as e:
        print(f"cannot read the agent's sockets: {e}")
        return 1
    # By port: a host may be a name, the socket table holds addresses.
    to_queue = [p for p in peers if p[1] in ports]
    if not to_queue:
        where = ", ".join(f"{h}:{p}" for h, p in wanted)
        print(f"the agent has no connection to the message queue ({where})")
        return 1
    host, port = to_queue[0]
    print(f"the agent is connected to the message queue ({host}:{port}, {len(to_queue)} in all)")
    return 0


def token(identity):
    """A project-scoped token and its catalog."""
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
        return resp.headers["X-Subject-Token"], json.load(resp)["token"].get("catalog", [])


def network_endpoint(catalog, region):
    """The network service's internal endpoint in ``region`` (else its public one)."""
    for service in catalog:
        if service.get("type") != "network":
            continue
        for interface in ("internal", "public"):
            for e in service.get("endpoints", []):
                if e.get("interface") == interface and e.get("region_id", region) == region:
                    return e["url"].rstrip("/")
    return None


def alive(binary):
    try:
        section = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print(f"{binary}: no pillar: {e}")
        return 1
    identity, host = section["identity"], section["host"]
    started = time.monotonic()
    try:
        tok, catalog = token(identity)
    except urllib.error.HTTPError as e:
        print(f"keystone at {identity['auth_url']}: no token: HTTP {e.code} {e.reason}")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"keystone at {identity['auth_url']}: no token: {type(e).__name__}: {e}")
        return 1
    base = network_endpoint(catalog, identity.get("region", "RegionOne"))
    if base is None:
        print("the catalog has no network endpoint (neutron-server's register task?)")
        return 1
    query = urllib.parse.urlencode({"host": host, "binary": binary})
    url = f"{base}/v2.0/agents?{query}"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"X-Auth-Token": tok}), timeout=TIMEOUT
        ) as resp:
            agents = json.load(resp)["agents"]
    except urllib.error.HTTPError as e:
        print(f"neutron at {base}: HTTP {e.code} {e.reason}")
        return 1
    except (OSError, ValueError, KeyError) as e:
        print(f"neutron at {base}: {type(e).__name__}: {e}")
        return 1
    took = time.monotonic() - started
    if not agents:
        print(f"neutron at {base} knows no {binary} on {host} ({took:.2f} s)")
        return 1
    agent = agents[0]
    if not agent.get("alive"):
        print(f"{binary} on {host}: not alive (last report {agent.get('heartbeat_timestamp')})")
        return 1
    if not agent.get("admin_state_up", True):
        print(f"{binary} on {host}: alive but administratively down")
        return 1
    try:
        since = container_started()
        started = neutron_time(agent["started_at"])
    except (OSError, ValueError, KeyError, StopIteration, IndexError) as e:
        print(f"{binary} on {host}: when did it start? {type(e).__name__}: {e}")
        return 1
    # Seconds: neutron's timestamps have none below them.
    if started < since - datetime.timedelta(seconds=1):
        print(
            f"{binary} on {host}: has not reported since this container started"
            f" (agent started {started:%Y-%m-%d %H:%M:%S}, container {since:%H:%M:%S} UTC)"
        )
        return 1
    print(f"{binary} on {host}: alive in neutron's agent list ({took:.2f} s)")
    return 0


def container_started():
    """When this container's first process (PID 1) started, UTC, to the second below."""
    with open("/proc/stat") as fh:
        boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
    with open("/proc/1/stat") as fh:
        # Field 22 (starttime, clock ticks after boot), counted after the command's ")".
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    seconds = boot + ticks / os.sysconf("SC_CLK_TCK")
    return datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)


def neutron_time(text):
    """neutron's timestamps (``2026-12-01 03:35:01``, UTC) as an aware datetime."""
    parsed = datetime.datetime.fromisoformat(str(text).replace("T", " ").rstrip("Z"))
    return parsed.replace(tzinfo=datetime.UTC)


def main(argv):
    if len(argv) in (2, 3) and argv[1] == "connected":
        return connected(*argv[2:])
    if len(argv) == 3 and argv[1] == "alive":
        return alive(argv[2])
    print(
        "usage: neutron-agent-check.py connected [NEUTRON-CONF]"
        " | alive BINARY (the pillar section on stdin)"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
