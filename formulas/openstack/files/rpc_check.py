"""A health check for an OpenStack service that serves no HTTP (nova-conductor,
nova-scheduler, nova-compute, the neutron agents): one of the container's processes holds
an established connection to the message queue, so it can take RPC calls.

    python3 openstack-rpc-check.py NAME [PORT]      (PORT: RabbitMQ's, default 5672)

Why this and not a process check: a service whose connection to RabbitMQ is down is
alive but deaf, and nothing else it exposes tells (kolla's `healthcheck_port` checks
the same). The sockets are read from /proc: every process of the container (its own PID
namespace) and their socket inodes, against the network namespace's TCP tables (which the
node's other services share: hence the inodes, not the table alone). Run as root (the
health check's user). Standard library only.
"""

import os
import sys

ESTABLISHED = "01"


def _own_inodes(pids):
    """The socket inodes of ``pids`` (ours to read: the same user, or root with the
    right to trace)."""
    found = set()
    for pid in pids:
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


def _owner(pid):
    """(uid, gid) of a process (both must match to read its descriptors), or None."""
    ids = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("Uid:", "Gid:")):
                    ids[line[:3]] = int(line.split()[1])
    except OSError:
        return None
    return (ids["Uid"], ids["Gid"]) if len(ids) == 2 else None


def socket_inodes():
    """The socket inodes of every process this container can see. A process of another
    user (the service runs as its own, the check as root) hides its descriptors from a
    root without CAP_SYS_PTRACE, which a container does not get: they are read in a
    child that takes that user's identity."""
    by_user = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            by_user.setdefault(_owner(pid), []).append(pid)
    found = set()
    for owner, pids in by_user.items():
        if owner is None or owner == (os.getuid(), os.getgid()):
            found |= _own_inodes(pids)
            continue
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: that user, its processes' sockets, one per line
            os.close(read)
            try:
                os.setgroups([])
                os.setgid(owner[1])
                os.setuid(owner[0])
                os.write(write, "\n".join(_own_inodes(pids)).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as fh:
            found |= set(fh.read().split())
        os.waitpid(child, 0)
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
