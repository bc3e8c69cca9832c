"""memcached's API check (formula.yml `api_check`): `stats` over memcached's protocol
from this instance itself; exit 0 when it answers. Standard library only; the port comes
from the pillar the container runs with: memcached:server:bind as JSON on stdin
(`saline-entrypoint with-pillar memcached:server:bind`).
"""

import json
import socket
import sys


def main():
    try:
        bind = json.load(sys.stdin)
    except (OSError, ValueError) as e:
        print(f"memcached: no pillar: {e}")
        return 1
    host = str(bind.get("address") or "0.0.0.0")
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    port = int(bind["port"])
    answer = b""
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"stats\r\n")
            while not answer.endswith(b"END\r\n"):
                data = s.recv(65536)
                if not data:
                    break
                answer += data
    except OSError as e:
        print(f"memcached at {host}:{port}: {e}")
        return 1
    stats = dict(
        line.split(" ", 2)[1:] for line in answer.decode().splitlines() if line.startswith("STAT ")
    )
    if "uptime" not in stats:
        print(f"memcached at {host}:{port}: no stats in its answer {answer[:100]!r}")
        return 1
    print(f"memcached at {host}:{port}: up {stats['uptime']} s, {stats.get('curr_items')} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
