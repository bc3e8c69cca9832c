#!/usr/bin/python3
"""saline's container entrypoint: "highstate at start", without configuration in images.

Copied into the Salt layer as /usr/local/bin/saline-entrypoint; standard library only
(it runs under Debian's python3, with Salt from /opt/saline/site).

  saline-entrypoint install           image build: run the service's install states
                                      (no pillar, no services), then clean apt
  saline-entrypoint run               container start (default): read the pillar from
                                      $SALINE_PILLAR (a mounted JSON file), run the
                                      configure states, then exec the service command
                                      as its user, so signals reach the service itself
  saline-entrypoint bootstrap TASK    one-shot task: configure, run the task's states, exit
  saline-entrypoint upgrade PHASE     a release upgrade's database phase (expand, migrate,
                                      contract): configure, run its states, exit
  saline-entrypoint configure         configure only, then exit
  saline-entrypoint pillar [PATH]     the pillar the container runs with (secrets merged),
                                      as JSON on stdout; PATH (``keystone:server``) prints
                                      that value only. For the formulas' API checks and task
                                      scripts: they read it through a pipe, so no secret is
                                      in their argv or environment; exit 2 when the pillar
                                      cannot be read, 1 when it has no PATH
  saline-entrypoint with-pillar PATH COMMAND...
                                      COMMAND with that value (as ``pillar PATH`` prints
                                      it) on its stdin; its exit code (the formulas' API
                                      checks and task scripts start this way)
  saline-entrypoint health http URL [CODES] | tcp HOST PORT
                                      one health probe (a compose healthcheck): exit 0
                                      when healthy
  saline-entrypoint haproxy COMMAND...
                                      one command to haproxy's runtime API (its admin
                                      socket, $SALINE_HAPROXY_SOCKET, default
                                      /run/haproxy/admin.sock); prints the answer, so the
                                      host drives haproxy through `podman exec`
  saline-entrypoint haproxy-status     for `saline status`: each proxy's servers and their
                                      states, as one JSON object
  saline-entrypoint haproxy-reload [TIMEOUT]
                                      a checked, hitless reload of haproxy (PID 1, run
                                      with -W): check the new configuration, save the
                                      servers' states (drain, maint, down) to its
                                      server-state-file, SIGUSR2 to the master, and wait
                                      until a new worker answers; exit 1 (and nothing
                                      reloaded) when the configuration is invalid
  saline-entrypoint uwsgi-reload [--graceful] FIFO STATS [TIMEOUT]
                                      a chain reload of a uwsgi service (lazy-apps): 'c'
                                      to its master FIFO, so its workers are replaced one
                                      at a time (each loads the app, and so the config,
                                      anew; one always serves), then wait until its stats
                                      socket shows only new workers with the app loaded;
                                      --graceful: 'r', every worker at once (for a
                                      drained instance: as fast as a restart)

The pillar may come in two parts (Kubernetes keeps secrets apart from config):
$SALINE_PILLAR without the secret values, and $SALINE_PILLAR_SECRETS, a JSON object
mapping JSON Pointers (RFC 6901, ``/keystone/server/database/password``) to the values
that go there; each path must exist in the pillar (it holds a placeholder). The merged
pillar is what Salt sees, so configure runs the same on every runtime, and what
``saline-entrypoint pillar`` prints, so the formulas' checks read the same values.

Before run, configure and bootstrap, the entrypoint waits until every ``host:port`` in
$SALINE_WAIT_FOR (comma-separated) accepts connections and every marker in
$SALINE_WAIT_TASKS exists in /run/saline/tasks (a volume of the stack), up to
$SALINE_WAIT_TIMEOUT seconds (default 600). A bootstrap task that succeeds writes its
marker, $SALINE_TASK_MARK. So what a container needs is up and bootstrapped before it
starts, even where the compose runner cannot wait for health or for one-shot containers
(podman-compose with podman < 4.6).

The service's metadata (states, command, user) is /etc/saline/service.json, written at
build time from its formula.yml. A failing state prints one line
``SALINE-FAILED-STATE <id>: <comment>`` (the build reads it) and Salt's output.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial

SITE = "/opt/saline/site"
FORMULAS = "/srv/saline/formulas"
TASK_MARKS = "/run/saline/tasks"
SERVICE_JSON = "/etc/saline/service.json"
PILLAR = os.environ.get("SALINE_PILLAR", "/run/saline/pillar.json")
PILLAR_SECRETS = os.environ.get("SALINE_PILLAR_SECRETS", "")


def log(msg: str) -> None:
    print(f"saline-entrypoint: {msg}", file=sys.stderr, flush=True)


def salt_call(
    work: str,
    states: list[str],
    pillar_dir: str | None,
    grains: dict[str, object],
    file_roots: str = FORMULAS,
) -> int:
    conf = os.path.join(work, "conf")
    os.makedirs(conf, exist_ok=True)
    minion = {
        "id": os.environ.get("SALINE_NODE", "saline"),
        "file_client": "local",
        "file_roots": {"base": [file_roots]},
        "pillar_roots": {"base": [pillar_dir] if pillar_dir else []},
        "cachedir": os.path.join(work, "cache"),
        "pki_dir": os.path.join(work, "pki"),
        "log_file": os.path.join(work, "minion.log"),
        "autoload_dynamic_modules": False,
        "pillar_mask_output": False,
        "grains": grains,
    }
    with open(os.path.join(conf, "minion"), "w") as fh:
        json.dump(minion, fh)
    code = "import sys, salt.scripts; sys.argv[0] = 'salt-call'; salt.scripts.salt_call()"
    # -OO: the Salt layer carries docstring-free bytecode (see warm()).
    cmd = [
        sys.executable,
        "-OO",
        "-c",
        code,
        "--local",
        f"--config-dir={conf}",
        "--out=json",
        "--retcode-passthrough",
        "state.apply",
        ",".join(states),
    ]
    # PYTHONWARNINGS: requests warns on every run that chardet is missing (not needed).
    env = {**os.environ, "PYTHONPATH": SITE, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    failed = False
    try:
        ret = json.loads(proc.stdout)["local"]
    except (ValueError, KeyError, TypeError):
        ret = None
    if isinstance(ret, dict):
        for key, r in sorted(ret.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
            if r.get("result") is False:
                failed = True
                comment = " ".join(str(r.get("comment", "")).split())
                print(f"SALINE-FAILED-STATE {r.get('__id__', key)}: {comment}", flush=True)
    else:
        failed = True
        print(
            f"SALINE-FAILED-STATE salt-call: no state output (exit {proc.returncode})", flush=True
        )
    if failed or proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
        return 1
    return 0


def warm(work: str) -> int:
    """One real state run (a template, a package check) so Python writes bytecode for what
    every later run imports; used once while the Salt layer is built."""
    roots = os.path.join(work, "warm")
    os.makedirs(roots)
    with open(os.path.join(roots, "warm.sls"), "w") as fh:
        fh.write(
            "warm_file:\n  file.managed:\n    - name: " + os.path.join(work, "out") + "\n"
            "    - source: salt://warm.j2\n    - template: jinja\n"
            "warm_pkg:\n  pkg.installed:\n    - name: base-files\n    - refresh: false\n"
            "warm_cmd:\n  cmd.run:\n    - name: 'true'\n"
        )
    with open(os.path.join(roots, "warm.j2"), "w") as fh:
        fh.write("{{ grains.get('os') }} {{ pillar.get('x', 1) }}\n")
    pdir = os.path.join(work, "pillar")
    os.makedirs(pdir)
    with open(os.path.join(pdir, "top.sls"), "w") as fh:
        fh.write("base:\n  '*':\n    - p\n")
    with open(os.path.join(pdir, "p.sls"), "w") as fh:
        fh.write('#!json\n{"x": 1}\n')
    code = salt_call(work, ["warm"], pdir, {"noservices": True}, file_roots=roots)
    if code == 0:
        sourceless(SITE)
    return code


# Folders from which Salt's loader loads modules itself: it reads bytecode there only from
# __pycache__ next to the sources, so these keep their sources.
SALT_LOADER_DIRS = {
    "auth",
    "beacons",
    "cache",
    "clouds",
    "engines",
    "executors",
    "fileserver",
    "grains",
    "log_handlers",
    "matchers",
    "metaproxy",
    "modules",
    "netapi",
    "output",
    "pillar",
    "pkgdb",
    "pkgfiles",
    "proxy",
    "queues",
    "renderers",
    "returners",
    "roster",
    "runners",
    "sdb",
    "serializers",
    "states",
    "thorium",
    "tokens",
    "tops",
    "utils",
    "wheel",
}


def sourceless(site: str) -> None:
    """Keep only bytecode for modules the warm run imported, outside Salt's loader folders:
    ``pkg/__pycache__/mod.cpython-311.opt-2.pyc`` becomes ``pkg/mod.pyc`` and
    ``pkg/mod.py`` goes (Python imports a lone legacy .pyc). Halves what those modules
    weigh in the layer."""
    for dirpath, _dirnames, _files in os.walk(site):
        if os.path.basename(dirpath) != "__pycache__":
            continue
        pkg = os.path.dirname(dirpath)
        rel = os.path.relpath(pkg, site).split(os.sep)
        if rel[0] == "salt" and len(rel) > 1 and rel[1] in SALT_LOADER_DIRS:
            continue
        for name in os.listdir(dirpath):
            if not name.endswith(".opt-2.pyc"):
                continue
            module = name.split(".")[0]
            source = os.path.join(pkg, module + ".py")
            if os.path.exists(source):
                os.replace(os.path.join(dirpath, name), os.path.join(pkg, module + ".pyc"))
                os.remove(source)


def _pointer(path: str) -> list[str]:
    """The keys of a JSON Pointer (RFC 6901): ``/a~1b/0`` -> ``["a/b", "0"]``."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not a JSON Pointer (it starts with '/')")
    return [k.replace("~1", "/").replace("~0", "~") for k in path[1:].split("/")]


def overlay_secrets(data: object, secrets: object) -> object:
    """``data`` (the pillar) with each value of ``secrets`` (JSON Pointer -> value) put at
    its path, which must exist (the pillar holds a placeholder there): a path that does
    not is a mismatch between the two files, never a new key. Raises ValueError naming
    the path, never the value."""
    if not isinstance(secrets, dict):
        raise ValueError("the secrets file is not a JSON object of path: value")
    for path, value in sorted(secrets.items()):
        keys = _pointer(str(path))
        parent: object = None
        node = data
        for key in keys:
            parent = node
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ValueError(f"{path} is not in the pillar")
        if isinstance(parent, dict):
            parent[keys[-1]] = value
        elif isinstance(parent, list):
            parent[int(keys[-1])] = value
        else:
            raise ValueError(f"{path!r} names the whole pillar, not a value in it")
    return data


class PillarError(Exception):
    """The pillar cannot be read: the message names the file or the path, never a value."""


def merged_pillar() -> object:
    """The pillar the container runs with: $SALINE_PILLAR with the values of
    $SALINE_PILLAR_SECRETS (if set) put in place. Raises PillarError."""
    if not os.path.exists(PILLAR):
        raise PillarError(f"no pillar at {PILLAR} (mount the node's pillar there)")
    try:
        with open(PILLAR) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        raise PillarError(f"cannot read the pillar {PILLAR}: {e}") from None
    if PILLAR_SECRETS:
        try:
            with open(PILLAR_SECRETS) as fh:
                secrets = json.load(fh)
            data = overlay_secrets(data, secrets)
        except (OSError, ValueError) as e:
            raise PillarError(
                f"cannot merge the secrets of {PILLAR_SECRETS} into the pillar: {e}"
            ) from None
    return data


def write_pillar(work: str) -> str:
    """Pillar roots in a private tmpfs folder from the mounted JSON file."""
    try:
        data = merged_pillar()
    except PillarError as e:
        log(str(e))
        sys.exit(2)
    pdir = os.path.join(work, "pillar")
    os.makedirs(pdir, mode=0o700)
    with open(os.path.join(pdir, "top.sls"), "w") as fh:
        fh.write("base:\n  '*':\n    - saline\n")
    with open(os.path.join(pdir, "saline.sls"), "w") as fh:
        fh.write("#!json\n")
        json.dump(data, fh)
    return pdir


def pillar_at(path: str | None) -> tuple[int, object]:
    """(0, the merged pillar's value at the colon path ``path``, or all of it), or (exit
    code, None) after logging why: 2 when the pillar cannot be read, 1 when it has no
    ``path``. Messages name the path, never a value."""
    try:
        data = merged_pillar()
    except PillarError as e:
        log(str(e))
        return 2, None
    for key in path.split(":") if path else []:
        if not isinstance(data, dict) or key not in data:
            log(f"the pillar has no {path}")
            return 1, None
        data = data[key]
    return 0, data


def pillar_cli(argv: list[str]) -> int:
    """``saline-entrypoint pillar [PATH]``: the merged pillar (or its value at the colon
    path PATH) as JSON on stdout."""
    if len(argv) > 1 or (argv and not argv[0]):
        log("usage: pillar [PATH] (a colon path, e.g. keystone:server)")
        return 2
    code, data = pillar_at(argv[0] if argv else None)
    if code:
        return code
    json.dump(data, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


def with_pillar(argv: list[str]) -> int:
    """``saline-entrypoint with-pillar PATH COMMAND...``: COMMAND run with the merged
    pillar's value at PATH as JSON on its stdin; its exit code. The formulas' checks and
    task scripts read their settings this way: no secret in an argv or an environment,
    and no second process to ask for them."""
    if len(argv) < 2 or not argv[0]:
        log("usage: with-pillar PATH COMMAND... (PATH a colon path, e.g. keystone:server)")
        return 2
    code, data = pillar_at(argv[0])
    if code:
        return code
    try:
        # No timeout here: the caller bounds the whole exec (podman exec, Salt's cmd.run).
        return subprocess.run(argv[1:], input=json.dumps(data).encode()).returncode
    except OSError as e:
        log(f"cannot run {argv[1]}: {e}")
        return 127


def probe(argv: list[str]) -> int:
    """One health probe; exit 0 when healthy. Standard library only, so every image has it."""
    try:
        if len(argv) >= 1 and argv[0] == "http":
            codes = {int(c) for c in (argv[2] if len(argv) > 2 else "200").split(",")}
            try:
                with urllib.request.urlopen(argv[1], timeout=5) as resp:
                    status = resp.status
            except urllib.error.HTTPError as e:
                status = e.code
            if status in codes:
                return 0
            print(f"HTTP {status} from {argv[1]}")
            return 1
        if len(argv) == 3 and argv[0] == "tcp":
            socket.create_connection((argv[1], int(argv[2])), timeout=5).close()
            return 0
    except (OSError, ValueError) as e:
        print(f"unhealthy: {e}")
        return 1
    log("usage: health http URL [CODES] | tcp HOST PORT")
    return 2


HAPROXY_SOCKET = os.environ.get("SALINE_HAPROXY_SOCKET", "/run/haproxy/admin.sock")
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"


def haproxy_ask(words: list[str], timeout: float = 10.0) -> str:
    """Send one command to haproxy's admin socket (non-interactive: haproxy answers and
    closes) and return the answer. Raises OSError when the socket does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(HAPROXY_SOCKET)
        s.sendall((" ".join(words) + "\n").encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def haproxy_cli(words: list[str]) -> int:
    """``saline-entrypoint haproxy COMMAND...``: print haproxy's answer; exit 2 on bad
    usage, 1 when the socket does not answer."""
    if not words or any(c in w for w in words for c in ";\n"):
        log("usage: haproxy COMMAND... (one runtime API command, without ';' or newlines)")
        return 2
    try:
        answer = haproxy_ask(words)
    except OSError as e:
        log(f"haproxy's admin socket {HAPROXY_SOCKET} does not answer: {e}")
        return 1
    sys.stdout.write(answer)
    return 0


def haproxy_servers(stat_csv: str) -> dict[str, dict[str, str]]:
    """{proxy: {server: status}} from the runtime API's ``show stat`` (CSV with a ``# ``
    header): each proxy's servers, not its FRONTEND and BACKEND rows."""
    lines = stat_csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    out: dict[str, dict[str, str]] = {}
    for row in csv.DictReader([lines[0][2:], *lines[1:]]):
        proxy, server = row.get("pxname") or "", row.get("svname") or ""
        if proxy and server and server not in ("FRONTEND", "BACKEND"):
            out.setdefault(proxy, {})[server] = row.get("status") or ""
    return out


def haproxy_status(argv: list[str]) -> int:
    """``saline-entrypoint haproxy-status``: for ``saline status``, one JSON object: each
    proxy's servers and their states; healthy when each proxy has a server UP."""
    try:
        servers = haproxy_servers(haproxy_ask(["show", "stat"]))
    except OSError as e:
        print(json.dumps({"healthy": False, "summary": f"the admin socket does not answer: {e}"}))
        return 1
    parts, healthy = [], True
    for proxy, states in sorted(servers.items()):
        up = [name for name, state in states.items() if state.startswith("UP")]
        healthy = healthy and bool(up)
        others = sorted(
            f"{name.split('.')[0]} {state}"
            for name, state in states.items()
            if not state.startswith("UP")
        )
        shown = f" ({', '.join(others)})" if others else ""
        parts.append(f"{proxy} {len(up)}/{len(states)} UP{shown}")
    view = {"healthy": healthy, "summary": "; ".join(parts) or "no servers", "servers": servers}
    print(json.dumps(view, sort_keys=True))
    return 0 if healthy else 1


def _haproxy_setting(config: str, key: str) -> str | None:
    """The value of a one-word ``key`` line (``server-state-file``) in an haproxy config."""
    with open(config) as fh:
        for line in fh:
            words = line.split("#", 1)[0].split()
            if len(words) == 2 and words[0] == key:
                return words[1]
    return None


def _haproxy_pid() -> str:
    for line in haproxy_ask(["show", "info"]).splitlines():
        if line.startswith("Pid:"):
            return line.split(":", 1)[1].strip()
    return ""


def haproxy_reload(argv: list[str]) -> int:
    """``saline-entrypoint haproxy-reload [TIMEOUT]`` (see the module's docstring)."""
    timeout = float(argv[0]) if argv else 30.0
    check = subprocess.run(["haproxy", "-c", "-f", HAPROXY_CONFIG], capture_output=True, text=True)
    if check.returncode != 0:
        print(f"{HAPROXY_CONFIG} is invalid; haproxy keeps its running configuration:")
        print((check.stdout + check.stderr).strip())
        return 1
    try:
        before = _haproxy_pid()
        state_file = _haproxy_setting(HAPROXY_CONFIG, "server-state-file")
        if state_file:
            # The new workers start from the states the runtime API set (drain, maint) and
            # the ones health checks found (down), not from "every server up".
            state = haproxy_ask(["show", "servers", "state"])
            os.makedirs(os.path.dirname(state_file), exist_ok=True)
            with open(state_file + ".new", "w") as fh:
                fh.write(state)
            os.replace(state_file + ".new", state_file)
    except OSError as e:
        print(f"haproxy's admin socket {HAPROXY_SOCKET} does not answer: {e}")
        return 1
    with open("/proc/1/comm") as fh:
        if fh.read().strip() != "haproxy":
            print("PID 1 is not haproxy: nothing reloaded")
            return 1
    os.kill(1, signal.SIGUSR2)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                pid = _haproxy_pid()
            except OSError:
                continue
            if pid and pid != before:
                print(f"haproxy reloaded: worker {before} -> {pid}")
                return 0
        print(f"no new haproxy worker answered within {timeout:g} s (worker still {before})")
        return 1
    finally:
        if state_file:
            # Loaded by the new worker: a later start must not take these old states.
            with contextlib.suppress(FileNotFoundError):
                os.remove(state_file)


def uwsgi_workers(stats: str) -> list[dict[str, object]]:
    """The workers uwsgi's stats server (a unix socket) lists now."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(stats)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    workers: list[dict[str, object]] = json.loads(b"".join(chunks))["workers"]
    return workers


#: A reload fails early when one worker was respawned this many times, or when every
#: worker is new, has had no app for this long (a lazy app loads in a few seconds) and
#: none of them used any CPU for UWSGI_IDLE_SECONDS: a worker still loading its app
#: computes, one whose app failed waits for requests. On a machine so loaded that
#: keystone took 30 s to load, the app-less rule alone failed a good reload.
UWSGI_RESPAWN_LIMIT = 3
UWSGI_APPLESS_SECONDS = 20.0
UWSGI_IDLE_SECONDS = 5.0


def cpu_ticks(pid: int) -> int | None:
    """CPU time a process used so far (user + system, clock ticks), None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def uwsgi_reload(argv: list[str]) -> int:
    """``saline-entrypoint uwsgi-reload FIFO STATS [TIMEOUT]`` (see the module's docstring)."""
    # --graceful: every worker at once ('r'), for an instance no request reaches (apply
    # drained it first): as fast as a restart, where a chain reload loads one worker
    # after the other. uwsgi's master keeps the socket either way.
    graceful = argv[:1] == ["--graceful"]
    argv = argv[1:] if graceful else argv
    if len(argv) not in (2, 3):
        log("usage: uwsgi-reload [--graceful] FIFO STATS [TIMEOUT]")
        return 2
    fifo, stats = argv[0], argv[1]
    timeout = float(argv[2]) if len(argv) > 2 else 300.0
    try:
        before = {w["pid"] for w in uwsgi_workers(stats)}
        # O_NONBLOCK: fails at once (ENXIO) instead of hanging when no master reads it.
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, b"r" if graceful else b"c")
        finally:
            os.close(fd)
    except (OSError, ValueError, KeyError) as e:
        print(f"uwsgi does not answer ({fifo}, {stats}): {e}")
        return 1
    deadline = time.monotonic() + timeout
    # A new app that cannot load (a config the service refuses) never gives a serving
    # worker: fail as soon as that is clear instead of waiting the whole timeout, so the
    # caller restores the old config at once. Two signs: workers that keep dying (their
    # respawn count grows), or every worker new and idle for a while without an app.
    respawns: dict[object, int] = {}
    appless_since: float | None = None
    ticks: dict[int, int | None] = {}
    computed = time.monotonic()  # when a new worker last used CPU
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            workers = uwsgi_workers(stats)
        except (OSError, ValueError, KeyError):
            continue  # the master is busy respawning
        fresh = [w for w in workers if w["pid"] not in before]
        serving = [w for w in fresh if w.get("apps") and w.get("status") in ("idle", "busy")]
        # Done when every worker is new and serves, after a graceful reload too: the
        # first new one would answer with the new config already, but uwsgi loses a
        # chain reload sent while a worker is still loading (seen here: it waited for
        # ever), so a reload never returns with one in flight.
        if workers and len(fresh) == len(workers) and len(serving) == len(workers):
            print(f"uwsgi reloaded: {len(serving)} of {len(workers)} new worker(s) serving")
            return 0
        for w in workers:
            count = int(str(w.get("respawn_count", 0)))
            respawns.setdefault(w.get("id"), count)
            if count - respawns[w.get("id")] >= UWSGI_RESPAWN_LIMIT:
                print(f"uwsgi worker {w.get('id')} keeps dying: the app does not load")
                return 1
        for w in fresh:
            pid = int(str(w["pid"]))
            now_ticks = cpu_ticks(pid)
            if now_ticks is None or now_ticks != ticks.get(pid):
                computed = time.monotonic()  # unknown counts as computing: never early
            ticks[pid] = now_ticks
        if workers and len(fresh) == len(workers) and not any(w.get("apps") for w in workers):
            appless_since = appless_since or time.monotonic()
            if (
                time.monotonic() - appless_since > UWSGI_APPLESS_SECONDS
                and time.monotonic() - computed > UWSGI_IDLE_SECONDS
            ):
                print("uwsgi's new workers run without the app: it does not load")
                return 1
        else:
            appless_since = None
    print(f"uwsgi did not replace its workers within {timeout:g} s")
    return 1


def _reachable(target: str) -> bool:
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


def wait_until(waits: list[tuple[str, Callable[[], bool]]], timeout: float) -> None:
    """Block until every ``(what, ready)`` is ready, or exit 3 after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    for what, ready in waits:
        logged = False
        while not ready():
            if time.monotonic() > deadline:
                log(f"gave up waiting for {what} after {timeout:.0f} s")
                sys.exit(3)
            if not logged:
                log(f"waiting for {what}")
                logged = True
            time.sleep(1)


def _items(spec: str) -> list[str]:
    return [x for x in spec.split(",") if x]


def exec_command(service: dict[str, object]) -> None:
    command = [str(c) for c in service["command"]]  # type: ignore[attr-defined]
    user = service.get("user")
    if user:
        pw = pwd.getpwnam(str(user))
        os.initgroups(pw.pw_name, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        os.environ["HOME"] = pw.pw_dir
        os.environ["USER"] = pw.pw_name
    log(f"exec {' '.join(command)}" + (f" as {user}" if user else ""))
    os.execvp(command[0], command)


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "run"
    if mode == "health":
        return probe(argv[2:])
    if mode == "pillar":
        return pillar_cli(argv[2:])
    if mode == "with-pillar":
        return with_pillar(argv[2:])
    if mode == "haproxy":
        return haproxy_cli(argv[2:])
    if mode == "haproxy-reload":
        return haproxy_reload(argv[2:])
    if mode == "haproxy-status":
        return haproxy_status(argv[2:])
    if mode == "uwsgi-reload":
        return uwsgi_reload(argv[2:])
    if mode in ("run", "configure", "bootstrap", "upgrade"):
        timeout = float(os.environ.get("SALINE_WAIT_TIMEOUT", "600"))
        waits: list[tuple[str, Callable[[], bool]]] = [
            (t, partial(_reachable, t)) for t in _items(os.environ.get("SALINE_WAIT_FOR", ""))
        ]
        for task in _items(os.environ.get("SALINE_WAIT_TASKS", "")):
            path = os.path.join(TASK_MARKS, task)
            waits.append((f"bootstrap task {task}", partial(os.path.exists, path)))
        wait_until(waits, timeout)
    work = tempfile.mkdtemp(prefix="saline-", dir="/run" if os.access("/run", os.W_OK) else None)
    if mode == "warm":
        try:
            return warm(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    with open(SERVICE_JSON) as fh:
        service = json.load(fh)
    try:
        if mode == "install":
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            code = salt_call(work, service["install"], None, {"noservices": True})
            if os.environ.get("SALINE_APT_CACHE") == "1":
                # The package cache is a volume shared by builds: keep it, drop the indexes.
                for f in os.listdir("/var/cache/apt"):
                    if f.endswith(".bin"):
                        os.remove(os.path.join("/var/cache/apt", f))
            else:
                subprocess.run(["apt-get", "clean"], check=False)
            shutil.rmtree("/var/lib/apt/lists", ignore_errors=True)
            os.makedirs("/var/lib/apt/lists/partial", exist_ok=True)
            return code
        if mode in ("run", "configure", "bootstrap", "upgrade"):
            pdir = write_pillar(work)
            if service["configure"]:
                code = salt_call(work, service["configure"], pdir, {"noservices": True})
                if code:
                    log("configure failed")
                    return code
            if mode == "configure":
                return 0
            if mode == "upgrade":
                # A release upgrade's database phase (expand, migrate, contract).
                phases = service.get("upgrade") or {}
                phase = argv[2] if len(argv) > 2 else ""
                if phase not in phases:
                    log(f"unknown upgrade phase {phase!r} (phases: {', '.join(phases) or 'none'})")
                    return 2
                if not phases[phase]:
                    return 0
                return salt_call(work, phases[phase], pdir, {"noservices": True})
            if mode == "bootstrap":
                tasks = {t["name"]: t for t in service["bootstrap"]}
                name = argv[2] if len(argv) > 2 else ""
                if name not in tasks:
                    log(f"unknown bootstrap task {name!r} (tasks: {', '.join(tasks) or 'none'})")
                    return 2
                code = salt_call(work, tasks[name]["states"], pdir, {"noservices": True})
                mark = os.environ.get("SALINE_TASK_MARK")
                if code == 0 and mark and os.path.isdir(TASK_MARKS):
                    with open(os.path.join(TASK_MARKS, mark), "w") as fh:
                        fh.write(f"{name} done\n")
                return code
            shutil.rmtree(work, ignore_errors=True)  # the pillar copy does not outlive configure
            exec_command(service)
        log(
            f"unknown mode {mode!r}: install | run | configure | bootstrap TASK | upgrade PHASE"
            " | pillar | health"
            " | with-pillar PATH COMMAND... | haproxy COMMAND... | haproxy-reload | haproxy-status"
            " | uwsgi-reload | warm"
        )
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
