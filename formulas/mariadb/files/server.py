"""MariaDB's command, health check and API check (formula.yml), in the server's container.
Standard library only; it reads no pillar: what it needs is in the option files the
configure states wrote (read as mariadbd reads them, with my_print_defaults).

  mariadb-server.py start    the container's command: exec mariadbd. A Galera member
                             (wsrep_on) first decides from its data whether it starts
                             the cluster, joins it, or waits (below)
  mariadb-server.py health   exit 0 when the server answers; a Galera member must also be
                             Synced and in the Primary component
  mariadb-server.py check    the API check: a query through the server's socket; a Galera
                             member must also see every member (wsrep_cluster_size equals
                             the members of wsrep_cluster_address). One line of output
  mariadb-server.py status   for `saline status`: one JSON object (healthy, summary,
                             the member's Galera state, the cluster's size)

Why a Galera member cannot just start: a container runs its command at every start, and
Galera needs exactly one member to start a cluster (--wsrep-new-cluster) when none runs,
the one with the most recent data, while the others join it. So `start` decides:

1. Its own position: grastate.dat in the data folder (uuid, seqno, safe_to_bootstrap).
   No grastate.dat: the data was never in a cluster (uuid zero, seqno -1). seqno -1 with
   a uuid: the server stopped uncleanly (killed), and `mariadbd --wsrep-recover` reads
   the last committed position from InnoDB; mariadbd then starts with that position
   (--wsrep_start_position), as MariaDB's own galera_recovery does.
2. The others: each member (wsrep_cluster_address) is probed. Its Galera port accepts
   connections: it runs. Else, while it waits too, it answers on ANNOUNCE_PORT with its
   position (this script serves its own there while it waits). Else it is unknown.
3. The decision, the same on every member because it is made from the same facts:
   - some member runs: join it (mariadbd gets what it lacks by IST or SST);
   - some member is unknown: wait (it may hold the most recent data);
   - every member waits: the most advanced one starts the cluster (highest seqno, then
     safe_to_bootstrap, then the first in wsrep_cluster_address), the others wait until
     it runs and then join. Members without data join whatever cluster has data; when no
     member has any (a new cluster), the seed (galera:master, `seed` in the
     [saline-galera] option group) starts it. Data of two different clusters (two
     uuids) is an error: nothing starts until an operator chooses.
   The member that starts the cluster sets safe_to_bootstrap: 1 in its grastate.dat
   (it is the most advanced: after a crash of all members none has it set).
   So a full stop of every member, clean or not, restarts from the most advanced one
   without losing a committed transaction, and a member that stopped alone rejoins.
   Waiting is bounded by $SALINE_WAIT_TIMEOUT seconds (default 600): then exit 1,
   naming the members that did not answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

MARIADBD = "/usr/sbin/mariadbd"
#: Where a waiting member tells the others its position (one JSON line per connection).
ANNOUNCE_PORT = 4569
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
CLIENT = ["mariadb", "--protocol=socket", "--batch", "--skip-column-names"]


def log(msg: str) -> None:
    print(f"mariadb-server: {msg}", file=sys.stderr, flush=True)


def options(*groups: str) -> dict[str, str]:
    """Options of the given groups (``--mysqld``: mariadbd's own), as mariadbd reads its
    option files; names with ``_`` (``wsrep-on`` and ``wsrep_on`` are one option)."""
    out = subprocess.run(
        ["my_print_defaults", *groups], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("--"):
            name, _, value = line[2:].partition("=")
            found[name.replace("-", "_").lower()] = value
    return found


def is_on(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("", "1", "on", "true", "yes")


# -- a member's position ---------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """What a member knows of the cluster's history: the last transaction it committed."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool
    #: It comes from InnoDB (--wsrep-recover), not from grastate.dat.
    recovered: bool = False
    #: It starts a new cluster when no member has data (galera:master).
    seed: bool = False
    name: str = ""

    @property
    def has_data(self) -> bool:
        return self.uuid != ZERO_UUID


def read_grastate(text: str) -> dict[str, str]:
    """grastate.dat's ``key: value`` lines."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


RECOVERED = re.compile(r"WSREP: Recovered position:\s*([0-9a-f-]{36}):(-?\d+)")


def recovered_position(log_text: str) -> tuple[str, int] | None:
    found = RECOVERED.findall(log_text)
    if not found:
        return None
    uuid, seqno = found[-1]
    return uuid, int(seqno)


def recover(datadir: str) -> tuple[str, int] | None:
    """The last committed position InnoDB holds (mariadbd --wsrep-recover)."""
    work = tempfile.mkdtemp(prefix="wsrep-recover-")
    mysql = pwd.getpwnam("mysql")
    os.chown(work, mysql.pw_uid, mysql.pw_gid)
    path = os.path.join(work, "recover.log")
    try:
        done = subprocess.run(
            [MARIADBD, "--user=mysql", f"--datadir={datadir}", "--wsrep-recover",
             f"--log-error={path}"],
            capture_output=True, text=True, timeout=600,
        )
        text = ""
        with contextlib.suppress(OSError), open(path) as fh:
            text = fh.read()
        found = recovered_position(text)
        if done.returncode != 0 or found is None:
            log(f"mariadbd --wsrep-recover found no position (exit {done.returncode}):")
            for line in text.splitlines()[-10:]:
                log(f"  {line}")
        return found
    finally:
        shutil.rmtree(work, ignore_errors=True)


def own_position(datadir: str, seed: bool, name: str) -> Position:
    path = os.path.join(datadir, "grastate.dat")
    try:
        with open(path) as fh:
            state = read_grastate(fh.read())
    except FileNotFoundError:
        return Position(ZERO_UUID, -1, False, seed=seed, name=name)
    uuid = state.get("uuid", ZERO_UUID)
    try:
        seqno = int(state.get("seqno", "-1"))
    except ValueError:
        seqno = -1
    safe = state.get("safe_to_bootstrap") == "1"
    if seqno >= 0:
        return Position(uuid, seqno, safe, seed=seed, name=name)
    # Stopped uncleanly: InnoDB has the position (grastate.dat may not even keep the uuid).
    found = recover(datadir)
    if found is None:
        return Position(uuid, -1, safe, seed=seed, name=name)
    return Position(found[0], found[1], safe, recovered=True, seed=seed, name=name)


def set_safe_to_bootstrap(datadir: str) -> None:
    path = os.path.join(datadir, "grastate.dat")
    with open(path) as fh:
        text = fh.read()
    if re.search(r"^safe_to_bootstrap:\s*1\s*$", text, re.M):
        return
    text = re.sub(r"^safe_to_bootstrap:.*$", "safe_to_bootstrap: 1", text, flags=re.M)
    with open(path + ".saline", "w") as fh:
        fh.write(text)
    st = os.stat(path)
    os.chown(path + ".saline", st.st_uid, st.st_gid)
    os.replace(path + ".saline", path)


# -- the decision (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """A member as a probe saw it: ``running`` (its Galera port answers), ``waiting``
    (it announced its position) or ``unknown``."""

    state: str
    position: Position | None = None


def decide(members: list[str], me: str, own: Position, seen: dict[str, Seen]) -> tuple[str, str]:
    """``(action, why)``: action is ``join``, ``bootstrap``, ``wait`` or ``error``.

    ``members``: the members' addresses in wsrep_cluster_address order; ``me`` is one of
    them; ``seen``: every other member. Pure: every member decides the same from the same
    facts (see the module's docstring)."""
    running = [m for m in members if m != me and seen[m].state == "running"]
    if running:
        return "join", f"{', '.join(running)} runs"
    unknown = [m for m in members if m != me and seen[m].state != "waiting"]
    if unknown:
        return "wait", f"no answer from {', '.join(unknown)}"
    at: dict[str, Position] = {}
    for m in members:
        pos = own if m == me else seen[m].position
        assert pos is not None
        at[m] = pos
    uuids = sorted({p.uuid for p in at.values() if p.has_data})
    if len(uuids) > 1:
        held = "; ".join(f"{m} {at[m].uuid}:{at[m].seqno}" for m in members if at[m].has_data)
        return "error", (
            f"the members hold data of different clusters ({held}): choose the one to keep, "
            "remove the others' data, and start again"
        )
    if not uuids:
        seeds = [m for m in members if at[m].seed]
        winner = seeds[0] if seeds else members[0]
        why = f"no member has data: {winner}, the seed, starts a new cluster"
    else:
        candidates = [m for m in members if at[m].has_data]
        winner = max(
            candidates,
            key=lambda m: (at[m].seqno, at[m].safe_to_bootstrap, -members.index(m)),
        )
        why = (
            f"every member waits: {winner} has the most recent data "
            f"({uuids[0]}:{at[winner].seqno}) and starts the cluster"
        )
    return ("bootstrap" if winner == me else "wait"), why


# -- probing and announcing ------------------------------------------------------------


def probe(host: str, port: int) -> Seen:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return Seen("running")
    except OSError:
        pass
    try:
        with socket.create_connection((host, ANNOUNCE_PORT), timeout=2) as s:
            s.settimeout(2)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return Seen("waiting", Position(**json.loads(data)))
    except (OSError, ValueError, TypeError):
        return Seen("unknown")


class Announcer:
    """Answers every connection on ANNOUNCE_PORT with this member's position."""

    def __init__(self, position: Position) -> None:
        self.line = (json.dumps(asdict(position), sort_keys=True) + "\n").encode()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", ANNOUNCE_PORT))
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with contextlib.suppress(OSError), conn:
                conn.sendall(self.line)

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept (close alone would not, on Linux).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def cluster_members(address: str) -> list[tuple[str, int]]:
    """``gcomm://a:4567,b,c?opts`` -> [(a, 4567), (b, 4567), (c, 4567)]."""
    body = address.split("://", 1)[-1].split("?", 1)[0]
    out = []
    for part in body.split(","):
        host, _, port = part.strip().partition(":")
        if host:
            out.append((host, int(port) if port else 4567))
    return out


def start() -> int:
    opts = options("--mysqld")
    command = [MARIADBD, "--user=mysql"]
    if not is_on(opts.get("wsrep_on")):
        os.execv(MARIADBD, command)
    ours = options("saline-galera")
    members = cluster_members(opts.get("wsrep_cluster_address", ""))
    me = opts.get("wsrep_node_address", "").split(":")[0]
    hosts = [h for h, _ in members]
    if me not in hosts:
        log(f"wsrep_node_address {me!r} is not in wsrep_cluster_address {hosts}")
        return 1
    datadir = opts.get("datadir", "/var/lib/mysql")
    name = opts.get("wsrep_node_name", me)
    own = own_position(datadir, is_on(ours.get("seed", "0")), name)
    log(
        f"{name} ({me}): position {own.uuid}:{own.seqno}, safe_to_bootstrap "
        f"{int(own.safe_to_bootstrap)}" + (" (recovered from InnoDB)" if own.recovered else "")
    )
    timeout = float(os.environ.get("SALINE_WAIT_TIMEOUT", "600"))
    deadline = time.monotonic() + timeout
    announcer = Announcer(own)
    said = ""
    try:
        while True:
            seen = {h: probe(h, p) for h, p in members if h != me}
            action, why = decide(hosts, me, own, seen)
            if why != said:
                log(f"{action}: {why}")
                said = why
            if action == "error":
                return 1
            if action in ("join", "bootstrap"):
                break
            if time.monotonic() > deadline:
                log(f"gave up after {timeout:.0f} s: {why}")
                return 1
            time.sleep(1)
    finally:
        announcer.close()
    if action == "bootstrap":
        if own.has_data:
            set_safe_to_bootstrap(datadir)
        command.append("--wsrep-new-cluster")
    if own.recovered:
        command.append(f"--wsrep_start_position={own.uuid}:{own.seqno}")
    log("exec " + " ".join(command))
    os.execv(MARIADBD, command)
    return 1  # not reached


# -- health and API check --------------------------------------------------------------


def server_status() -> tuple[dict[str, str] | None, str]:
    """The wsrep variables and status of the running server (socket, root), or None and
    why not."""
    sql = (
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_on', 'wsrep_cluster_address');"
        "SHOW GLOBAL STATUS LIKE 'wsrep%';"
        "SELECT 'schemas', COUNT(*) FROM information_schema.SCHEMATA"
    )
    try:
        done = subprocess.run(
            [*CLIENT, f"--execute={sql}"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"mariadb: {e}"
    if done.returncode != 0:
        return None, (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    values: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("\t")
        values[key.lower()] = value
    return values, ""


def galera_state(values: dict[str, Any]) -> tuple[bool, str]:
    """(Synced and Primary, a description) of a Galera member's status values."""
    state = values.get("wsrep_local_state_comment", "")
    status = values.get("wsrep_cluster_status", "")
    size = values.get("wsrep_cluster_size", "?")
    want = len(cluster_members(values.get("wsrep_cluster_address", "")))
    text = f"galera {state or '?'}, {status or '?'}, {size} of {want} members"
    return state == "Synced" and status == "Primary", text


def health() -> int:
    values, why = server_status()
    if values is None:
        print(f"unhealthy: {why}")
        return 1
    if not is_on(values.get("wsrep_on", "OFF")):
        return 0
    ok, text = galera_state(values)
    if not ok:
        print(f"unhealthy: {text}")
    return 0 if ok else 1


def check() -> int:
    values, why = server_status()
    if values is None:
        print(f"mariadb: {why}")
        return 1
    schemas = values.get("schemas", "?")
    if not is_on(values.get("wsrep_on", "OFF")):
        print(f"mariadb: {schemas} schemas")
        return 0
    ok, text = galera_state(values)
    want = len(cluster_members(values.get("wsrep_cluster_address", "")))
    whole = values.get("wsrep_cluster_size") == str(want)
    print(f"mariadb: {schemas} schemas; {text}")
    return 0 if ok and whole else 1


def status() -> int:
    """One JSON object for `saline status`: healthy, summary and the wsrep facts."""
    values, why = server_status()
    if values is None:
        print(json.dumps({"healthy": False, "summary": f"mariadb: {why}"}))
        return 1
    if not is_on(values.get("wsrep_on", "OFF")):
        summary = f"one server, no Galera: {values.get('schemas', '?')} schemas"
        print(json.dumps({"healthy": True, "summary": summary}))
        return 0
    ok, text = galera_state(values)
    want = len(cluster_members(values.get("wsrep_cluster_address", "")))
    whole = values.get("wsrep_cluster_size") == str(want)
    facts = {
        "healthy": ok and whole,
        "summary": text,
        "state": values.get("wsrep_local_state_comment", ""),
        "cluster_status": values.get("wsrep_cluster_status", ""),
        "size": int(values.get("wsrep_cluster_size") or 0),
        "members": want,
        "last_committed": int(values.get("wsrep_last_committed") or -1),
        "cluster_uuid": values.get("wsrep_cluster_state_uuid", ""),
    }
    print(json.dumps(facts, sort_keys=True))
    return 0 if facts["healthy"] else 1


def main(argv: list[str]) -> int:
    modes = {"start": start, "health": health, "check": check, "status": status}
    if len(argv) != 2 or argv[1] not in modes:
        log("usage: mariadb-server.py start | health | check | status")
        return 2
    return modes[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
