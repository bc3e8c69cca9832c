"""The ceph formula's checks (formula.yml ``health``, ``api_check`` and ``status``), run in
a daemon's container. Which daemon (its id) comes from /etc/ceph/saline-DAEMON.env, the
cluster from /etc/ceph/ceph.conf: what configure wrote from the pillar.

  ceph-check.py health mon|mgr|osd
      cheap, every few seconds while a stack starts: the daemon's admin socket (no
      network): a monitor in the quorum (leader or peon), a manager initialized (its
      modules loaded), an OSD that is active (booted, up in the map it has);
  ceph-check.py api mon|mgr|osd
      a real client call through the cluster (librados, over the network): the monitor
      (asked alone, at its own address) is in the quorum; the manager is the active one
      or a standby in the manager map; the OSD is up and in, answers a command sent to
      it, and an object written to the first pool of ceph:setup:pool (the ceph pillar
      as JSON on stdin, ``saline-entrypoint with-pillar ceph``) reads back the same;
  ceph-check.py status
      for ``saline status``: the cluster as one JSON object: ``healthy`` (HEALTH_OK
      and every placement group active+clean), ``summary`` (one line: the health and
      its checks, the monitors in quorum, the active manager, OSDs up and in, placement
      groups by state, pools) and the facts.

One line out (``status``: the JSON object), exit 0 when the check holds, 1 when it does
not. Standard library and the Ceph Python bindings only; every call is bounded.
"""

import configparser
import json
import os
import socket
import struct
import sys
import time

CONF = "/etc/ceph/ceph.conf"
#: Where configure writes saline-DAEMON.env, and where the daemons' admin sockets are.
ENV_DIR = "/etc/ceph"
RUN_DIR = "/run/ceph"
TIMEOUT = 10


class Failed(Exception):
    pass


def daemon_id(daemon):
    """The id configure wrote for the launcher (CEPH_ID=...)."""
    path = os.path.join(ENV_DIR, f"saline-{daemon}.env")
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("CEPH_ID="):
                    return line.split("=", 1)[1].strip()
    except OSError as e:
        raise Failed(f"no {path}: {e}") from None
    raise Failed(f"{path} names no CEPH_ID")


def asok(daemon, ident, prefix):
    """A command to the daemon's admin socket, its JSON answer (Ceph's protocol: the
    command as JSON and a NUL; the answer's length, 4 bytes big-endian, then the
    answer)."""
    path = os.path.join(RUN_DIR, f"ceph-{daemon}.{ident}.asok")
    request = json.dumps({"prefix": prefix, "format": "json"}).encode() + b"\0"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(path)
            s.sendall(request)
            head = b""
            while len(head) < 4:
                chunk = s.recv(4 - len(head))
                if not chunk:
                    raise Failed(f"{path}: closed without an answer")
                head += chunk
            (size,) = struct.unpack(">I", head)
            body = b""
            while len(body) < size:
                chunk = s.recv(size - len(body))
                if not chunk:
                    break
                body += chunk
    except OSError as e:
        raise Failed(f"{daemon}.{ident}: admin socket {path}: {e}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise Failed(f"{daemon}.{ident}: {prefix}: {body[:200]!r}") from None


def health(daemon):
    ident = daemon_id(daemon)
    if daemon == "mon":
        st = asok("mon", ident, "mon_status")
        if st.get("state") not in ("leader", "peon"):
            raise Failed(f"mon.{ident}: {st.get('state')}, not in the quorum")
        return f"mon.{ident}: {st['state']}, quorum of {len(st.get('quorum', []))}"
    if daemon == "mgr":
        st = asok("mgr", ident, "mgr_status")
        if not st.get("initialized"):
            raise Failed(f"mgr.{ident}: not initialized yet")
        return f"mgr.{ident}: initialized, manager map epoch {st.get('mgrmap_epoch')}"
    st = asok("osd", ident, "status")
    if st.get("state") != "active":
        raise Failed(f"osd.{ident}: {st.get('state')}, not active")
    return f"osd.{ident}: active, {st.get('num_pgs', 0)} PGs, map epoch {st.get('newest_map')}"


def connect(mon_host=None):
    import rados

    conf = {
        "client_mount_timeout": str(TIMEOUT),
        "rados_mon_op_timeout": str(TIMEOUT),
        "rados_osd_op_timeout": str(TIMEOUT),
    }
    if mon_host:
        conf["mon_host"] = mon_host
    conn = rados.Rados(conffile=CONF, conf=conf)
    try:
        conn.connect(timeout=TIMEOUT)
    except rados.Error as e:
        raise Failed(f"the monitors{' at ' + mon_host if mon_host else ''}: {e}") from None
    return conn


def ask(conn, prefix, **args):
    """A monitor command's JSON answer."""
    import rados

    try:
        ret, out, status = conn.mon_command(
            json.dumps({"prefix": prefix, "format": "json", **args}), b"", timeout=TIMEOUT
        )
    except rados.Error as e:
        raise Failed(f"ceph {prefix}: {e}") from None
    if ret != 0:
        raise Failed(f"ceph {prefix}: {os.strerror(-ret)} ({status.strip()})")
    return json.loads(out or b"null")


def own_address(ident):
    """This monitor's address: public_addr of [mon.ID] in ceph.conf."""
    ini = configparser.ConfigParser(interpolation=None, strict=False)
    ini.read(CONF)
    section = f"mon.{ident}"
    if not ini.has_option(section, "public_addr"):
        raise Failed(f"{CONF} has no public_addr in [{section}]")
    return ini.get(section, "public_addr")


def api(daemon):
    ident = daemon_id(daemon)
    if daemon == "mon":
        # This monitor alone: a client that knows no other.
        address = own_address(ident)
        conn = connect(f"[v2:{address}:3300,v1:{address}:6789]")
        try:
            quorum = ask(conn, "quorum_status")
        finally:
            conn.shutdown()
        names = quorum.get("quorum_names", [])
        if ident not in names:
            raise Failed(f"mon.{ident} answers at {address} but is not in the quorum {names}")
        return f"mon.{ident} at {address}: in the quorum ({', '.join(names)})"
    conn = connect()
    try:
        if daemon == "mgr":
            mgrs = ask(conn, "mgr dump")
            standbys = [s.get("name") for s in mgrs.get("standbys", [])]
            if mgrs.get("active_name") == ident and mgrs.get("available"):
                return f"mgr.{ident}: active and available"
            if ident in standbys:
                return f"mgr.{ident}: standby (active: {mgrs.get('active_name')})"
            raise Failed(
                f"mgr.{ident} is neither the active manager ({mgrs.get('active_name')}, "
                f"available {mgrs.get('available')}) nor a standby ({standbys})"
            )
        return osd_api(conn, int(ident))
    finally:
        conn.shutdown()


def osd_api(conn, ident):
    import rados

    dump = ask(conn, "osd dump")
    me = [o for o in dump.get("osds", []) if o.get("osd") == ident]
    if not me or not (me[0].get("up") and me[0].get("in")):
        raise Failed(f"osd.{ident} is not up and in the OSD map (epoch {dump.get('epoch')})")
    try:
        ret, out, status = conn.osd_command(
            ident, json.dumps({"prefix": "version", "format": "json"}), b"", timeout=TIMEOUT
        )
    except rados.Error as e:
        raise Failed(f"osd.{ident}: tell version: {e}") from None
    if ret != 0:
        raise Failed(f"osd.{ident}: tell version: {os.strerror(-ret)} ({status.strip()})")
    version = json.loads(out or b"{}").get("version", "?")
    # The ceph pillar on stdin (saline-entrypoint with-pillar ceph), else nothing.
    text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    pillar = json.loads(text) if text.strip() else {}
    pools = sorted((pillar.get("setup") or {}).get("pool") or {})
    if not pools:
        return f"osd.{ident}: up and in, version {version} (no pool in ceph:setup:pool to write to)"
    pool = pools[0]
    name = f"saline-api-check.osd.{ident}"
    data = f"{time.time()}".encode()
    try:
        with conn.open_ioctx(pool) as ioctx:
            ioctx.write_full(name, data)
            back = ioctx.read(name, len(data) + 1)
            ioctx.remove_object(name)
    except rados.Error as e:
        raise Failed(f"osd.{ident}: pool {pool}, object {name}: {e}") from None
    if back != data:
        raise Failed(f"osd.{ident}: pool {pool}: read {back!r}, wrote {data!r}")
    return f"osd.{ident}: up and in, version {version}; wrote, read and removed an object in {pool}"


def status():
    conn = connect()
    try:
        st = ask(conn, "status")
        mgr = ask(conn, "mgr stat")
    finally:
        conn.shutdown()
    h = st.get("health", {})
    checks = sorted(h.get("checks", {}))
    osds = st.get("osdmap", {})
    osds = osds.get("osdmap", osds)  # older releases nest it once more
    pgmap = st.get("pgmap", {})
    states = {s["state_name"]: s["count"] for s in pgmap.get("pgs_by_state", [])}
    quorum = st.get("quorum_names", [])
    parts = [h.get("status", "?") + (f" ({', '.join(checks)})" if checks else "")]
    parts.append(f"{len(quorum)} mon(s) in quorum ({', '.join(quorum)})")
    active = mgr.get("active_name") if mgr.get("available") else None
    parts.append(f"mgr {active} active" if active else "no active mgr")
    parts.append(
        f"osds: {osds.get('num_osds', 0)}, {osds.get('num_up_osds', 0)} up, "
        f"{osds.get('num_in_osds', 0)} in"
    )
    parts.append(
        f"{pgmap.get('num_pgs', 0)} pgs "
        + (", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none")
        + f", {pgmap.get('num_pools', 0)} pools"
    )
    # Whole: nothing to warn about, and every placement group active and clean (just after
    # a pool is made its PGs are "unknown" for a while, and the health still OK).
    clean = states.get("active+clean", 0) == pgmap.get("num_pgs", 0)
    return {
        "healthy": h.get("status") == "HEALTH_OK" and clean,
        "summary": "; ".join(parts),
        "fsid": st.get("fsid"),
        "health": h.get("status"),
        "checks": {c: h["checks"][c].get("summary", {}).get("message", "") for c in checks},
        "quorum": quorum,
        "mgr": active,
        "osds": {k: osds.get(k, 0) for k in ("num_osds", "num_up_osds", "num_in_osds")},
        "pgs": states,
        "pools": pgmap.get("num_pools", 0),
    }


def main(argv):
    usage = "usage: ceph-check.py health|api mon|mgr|osd | status"
    if argv[:1] == ["status"] and len(argv) == 1:
        try:
            view = status()
        except Failed as e:
            view = {"healthy": False, "summary": str(e)}
        print(json.dumps(view, sort_keys=True))
        return 0 if view["healthy"] else 1
    if len(argv) != 2 or argv[0] not in ("health", "api") or argv[1] not in ("mon", "mgr", "osd"):
        print(usage, file=sys.stderr)
        return 2
    try:
        print((health if argv[0] == "health" else api)(argv[1]))
    except Failed as e:
        print(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
