"""A health check for an OpenStack service that serves no HTTP (nova-conductor,
nova-scheduler, nova-compute, the neutron agents): one of the container's processes holds
an established connection to the message queue, so it can take RPC calls.

    python3 openstack-rpc-check.py NAME [PORT]      (PORT: RabbitMQ's, default 5672)

Why this and not a process check: a service whose connection to RabbitMQ is down is
alive but deaf, and nothing else it exposes tells (kolla's `healthcheck_port` checks
the same). The sockets are read from /proc: every process of the container (its own PID
namespace) and their socket inodes, against the network namespace's TCP tables (which the
node's other services share: hence the inodes, not the table alone). Standard library only.
"""

import os
import sys

ESTABLISHED = "01"


def socket_inodes():
    """The socket inodes of every process this container can see."""
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fds = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fds)
        except OSError:  # gone, or not ours to read
            continue
        for fd in names:
            try:
                target = os.readlink(f"{fds}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[len("socket:[") : -1])
    return found


def connections(port):
    """(inode, remote address) of the established TCP connections to ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                lines = fh.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if state == ESTABLISHED and int(remote.rsplit(":", 1)[1], 16) == port:
                out.append((inode, remote))
    return out


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: openstack-rpc-check.py NAME [PORT]")
        return 2
    name = argv[1]
    port = int(argv[2]) if len(argv) == 3 else 5672
    mine = socket_inodes()
    held = [remote for inode, remote in connections(port) if inode in mine]
    if not held:
        print(f"{name}: no connection to the message queue (port {port})")
        return 1
    print(f"{name}: {len(held)} connection(s) to the message queue (port {port})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
