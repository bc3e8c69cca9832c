"""The ceph formula's bootstrap tasks (formula.yml ``bootstrap``), each idempotent:

  ceph-bootstrap.py mon-mkfs --id ID --fsid FSID --member NAME=ADDRESS...
      a monitor's store, before it first starts: the initial monitor map (every member
      at its v2 and v1 address, the cluster's fsid) and ``ceph-mon --mkfs``. A monitor
      that has a store is left alone, unless it is another cluster's (another fsid):
      then it fails, naming both.
  ceph-bootstrap.py osd-mkfs --id ID --uuid UUID --fsid FSID
      an OSD, once the monitors run: ``osd new`` (the OSD ``ID`` with ``UUID``: the same
      pair again is no change; an ``ID`` taken by another uuid fails), then, unless its
      data folder holds that OSD already, ``ceph-osd --mkfs`` (BlueStore in a file, as
      ceph.conf's [osd.ID] says) with the monitors' current map.
  ceph-bootstrap.py pools     (the ceph:setup:pool pillar as JSON on stdin)
      each enabled pool: created with its pg_num (an existing one is kept), its size
      set where the pillar gives one, its application enabled (``rbd``: ``rbd pool
      init``), once the OSDs run.

Standard library, the Ceph tools and their Python bindings (python3-rados, python3-rbd)
only; every call to the cluster and every command is bounded in time. Nothing secret.
Runs as root in a bootstrap task's container, after configure wrote /etc/ceph/ceph.conf;
the daemons' files are made as the ceph user (``--setuser ceph``).
"""

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

CONF = "/etc/ceph/ceph.conf"
#: Where the monitors' and the OSDs' data folders are (ceph-ID in each).
MON_ROOT = "/var/lib/ceph/mon"
OSD_ROOT = "/var/lib/ceph/osd"
#: Seconds a command (mkfs) or a cluster call may take.
COMMAND_TIMEOUT = 300
CALL_TIMEOUT = 60
#: Seconds to wait for the monitors to answer at all (the task starts once their port
#: accepts connections; a monitor may still be electing itself).
CONNECT_TIMEOUT = 120
AS_CEPH = ["--setuser", "ceph", "--setgroup", "ceph"]


class Failed(Exception):
    """A step that failed: the message says which and why."""


def run(argv):
    """Run a command (bounded); its output, or Failed naming it and its last lines."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Failed(f"{' '.join(argv)}: no end within {COMMAND_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()[-5:]
        raise Failed(f"{' '.join(argv)}: exit {done.returncode}: " + " / ".join(lines))
    return done.stdout


def read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except FileNotFoundError:
        return None


def own(path):
    """Make ``path`` the ceph user's (files the task writes itself, as root)."""
    ceph = pwd.getpwnam("ceph")
    os.chown(path, ceph.pw_uid, ceph.pw_gid)


def cluster(op_timeout=CALL_TIMEOUT):
    """A connected client (librados, ceph.conf's monitors; no authentication)."""
    import rados

    conn = rados.Rados(
        conffile=CONF,
        conf={
            "client_mount_timeout": str(CONNECT_TIMEOUT),
            "rados_mon_op_timeout": str(CALL_TIMEOUT),
            "rados_osd_op_timeout": str(op_timeout),
        },
    )
    try:
        conn.connect(timeout=CONNECT_TIMEOUT)
    except rados.Error as e:
        raise Failed(f"the monitors ({CONF}) do not answer: {e}") from None
    return conn


def command(conn, cmd, ok=(0,)):
    """A monitor command: (return code, output, status text); Failed unless the code is
    one of ``ok``."""
    import rados

    try:
        ret, out, status = conn.mon_command(json.dumps(cmd), b"", timeout=CALL_TIMEOUT)
    except rados.Error as e:
        raise Failed(f"ceph {cmd['prefix']}: {e}") from None
    if ret not in ok:
        raise Failed(f"ceph {cmd['prefix']}: {os.strerror(-ret)} ({status.strip()})")
    return ret, out, status


def mon_mkfs(args):
    data = os.path.join(MON_ROOT, f"ceph-{args.id}")
    made = read(os.path.join(data, "saline-fsid"))
    if os.path.exists(os.path.join(data, "kv_backend")):
        if made is not None and made != args.fsid:
            raise Failed(
                f"mon.{args.id}: {data} holds the store of cluster {made}, but "
                f"ceph:common:fsid is {args.fsid}: a new fsid is a new cluster; remove the "
                "monitor's volume to make one (its data is lost), or put the fsid back"
            )
        print(f"mon.{args.id}: its store exists (cluster {made or args.fsid}): left alone")
        return
    members = dict(m.split("=", 1) for m in args.member)
    if args.id not in members:
        raise Failed(f"mon.{args.id} is not among the members {', '.join(members)}")
    work = tempfile.mkdtemp(prefix="ceph-mon-mkfs-")
    try:
        monmap = os.path.join(work, "monmap")
        argv = ["monmaptool", "--create", "--clobber", "--fsid", args.fsid]
        for name, host in members.items():
            argv += ["--addv", name, f"[v2:{host}:3300,v1:{host}:6789]"]
        run([*argv, monmap])
        # ceph-mon reads the map as the ceph user.
        own(work)
        own(monmap)
        # An interrupted mkfs leaves a store without kv_backend: start again.
        if os.path.isdir(data):
            for name in os.listdir(data):
                path = os.path.join(data, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        run(
            ["ceph-mon", "--mkfs", "--cluster", "ceph", "-i", args.id, "--monmap", monmap, *AS_CEPH]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(data, "saline-fsid"), "w") as fh:
        fh.write(args.fsid + "\n")
    own(os.path.join(data, "saline-fsid"))
    print(f"mon.{args.id}: store made for cluster {args.fsid}, members {', '.join(members)}")


def osd_mkfs(args):
    data = os.path.join(OSD_ROOT, f"ceph-{args.id}")
    conn = cluster()
    try:
        # The same uuid and id again: the OSD that exists (no change).
        _, out, _ = command(
            conn, {"prefix": "osd new", "uuid": args.uuid, "id": args.id, "format": "json"}
        )
        got = json.loads(out or b"{}").get("osdid")
        if got is not None and str(got) != str(args.id):
            raise Failed(f"osd new {args.uuid} {args.id} made osd.{got}")
        if read(os.path.join(data, "ready")) == "ready":
            have = read(os.path.join(data, "fsid")), read(os.path.join(data, "ceph_fsid"))
            if have != (args.uuid, args.fsid):
                raise Failed(
                    f"osd.{args.id}: {data} holds OSD {have[0]} of cluster {have[1]}, but the "
                    f"pillar says OSD {args.uuid} (ceph:osd:uuid) of cluster {args.fsid} "
                    "(ceph:common:fsid): remove the OSD's volume to make it anew (its data "
                    "is lost), or put the values back"
                )
            print(f"osd.{args.id}: made before (uuid {args.uuid}): left alone")
            return
        _, monmap_data, _ = command(conn, {"prefix": "mon getmap"})
    finally:
        conn.shutdown()
    work = tempfile.mkdtemp(prefix="ceph-osd-mkfs-")
    try:
        monmap = os.path.join(work, "monmap")
        with open(monmap, "wb") as fh:
            fh.write(monmap_data)
        own(work)
        own(monmap)
        # A mkfs that did not finish (no "ready"): its files go, it starts again.
        if os.path.isdir(data):
            for name in os.listdir(data):
                path = os.path.join(data, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        run(
            [
                "ceph-osd",
                "--mkfs",
                "--cluster",
                "ceph",
                "-i",
                str(args.id),
                "--osd-uuid",
                args.uuid,
                "--monmap",
                monmap,
                *AS_CEPH,
            ]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"osd.{args.id}: made (uuid {args.uuid}, cluster {args.fsid})")


def pools(args):
    import rados
    import rbd

    spec = json.load(sys.stdin) or {}
    wanted = {name: p or {} for name, p in sorted(spec.items()) if (p or {}).get("enabled", True)}
    # rbd pool init writes to the pool: its PGs must be active first, which takes the
    # OSDs a while after a pool is made (18 s for three pools on one OSD, measured).
    conn = cluster(op_timeout=300)
    try:
        for name, p in wanted.items():
            _, _, status = command(
                conn,
                {"prefix": "osd pool create", "pool": name, "pg_num": int(p.get("pg_num", 32))},
            )
            made = "exists" if "already exists" in status else "created"
            if "size" in p:
                command(
                    conn,
                    {
                        "prefix": "osd pool set",
                        "pool": name,
                        "var": "size",
                        "val": str(p["size"]),
                        "yes_i_really_mean_it": True,
                    },
                )
            app = p.get("application")
            if app == "rbd":
                with conn.open_ioctx(name) as ioctx:
                    try:
                        rbd.RBD().pool_init(ioctx, False)
                    except (rados.Error, rbd.Error) as e:
                        raise Failed(f"rbd pool init {name}: {e}") from None
            elif app:
                command(conn, {"prefix": "osd pool application enable", "pool": name, "app": app})
            print(f"pool {name}: {made}" + (f", application {app}" if app else ""))
    finally:
        conn.shutdown()
    print(f"{len(wanted)} pool(s) in place")


def main(argv):
    parser = argparse.ArgumentParser(prog="ceph-bootstrap.py")
    sub = parser.add_subparsers(dest="task", required=True)
    mon = sub.add_parser("mon-mkfs")
    mon.add_argument("--id", required=True)
    mon.add_argument("--fsid", required=True)
    mon.add_argument("--member", action="append", required=True, help="NAME=ADDRESS")
    osd = sub.add_parser("osd-mkfs")
    osd.add_argument("--id", required=True, type=int)
    osd.add_argument("--uuid", required=True)
    osd.add_argument("--fsid", required=True)
    sub.add_parser("pools")
    args = parser.parse_args(argv)
    try:
        {"mon-mkfs": mon_mkfs, "osd-mkfs": osd_mkfs, "pools": pools}[args.task](args)
    except Failed as e:
        print(f"ceph {args.task}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
