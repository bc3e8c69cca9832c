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
  saline-entrypoint configure         configure only, then exit
  saline-entrypoint health http URL [CODES] | tcp HOST PORT
                                      one health probe (a compose healthcheck): exit 0
                                      when healthy

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

import json
import os
import pwd
import shutil
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


def write_pillar(work: str) -> str:
    """Pillar roots in a private tmpfs folder from the mounted JSON file."""
    if not os.path.exists(PILLAR):
        log(f"no pillar at {PILLAR} (mount the node's pillar there)")
        sys.exit(2)
    with open(PILLAR) as fh:
        data = json.load(fh)
    pdir = os.path.join(work, "pillar")
    os.makedirs(pdir, mode=0o700)
    with open(os.path.join(pdir, "top.sls"), "w") as fh:
        fh.write("base:\n  '*':\n    - saline\n")
    with open(os.path.join(pdir, "saline.sls"), "w") as fh:
        fh.write("#!json\n")
        json.dump(data, fh)
    return pdir


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
    if mode in ("run", "configure", "bootstrap"):
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
        if mode in ("run", "configure", "bootstrap"):
            pdir = write_pillar(work)
            if service["configure"]:
                code = salt_call(work, service["configure"], pdir, {"noservices": True})
                if code:
                    log("configure failed")
                    return code
            if mode == "configure":
                return 0
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
        log(f"unknown mode {mode!r}: install | run | configure | bootstrap TASK | health | warm")
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
