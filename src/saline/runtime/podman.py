"""The one place saline runs podman (and skopeo, which reads podman's credentials).

Command lines are built as data and run through :func:`.process.run` in ``_run``, each
with a time limit.

podman's defaults fail on this kind of machine (crun refuses the hybrid cgroup layout;
raising rlimits needs CAP_SYS_RESOURCE), so every call gets a containers.conf owned by
saline through ``CONTAINERS_CONF``; /etc is left alone. Where it lives is the caller's
choice (:meth:`Podman.for_state`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from .process import CommandError, CommandTimeout, Completed, run
from .registry import RegistryError

CONTAINERS_CONF = """\
# Written by saline: podman settings that work without systemd-managed cgroups v2.
[containers]
default_ulimits = ["nofile=10000:10000", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""

#: Time limits (seconds) of podman calls that only read or change podman's own records.
QUICK = 60.0
#: ... of calls that start, stop or remove containers (a container's stop signal, mounts).
CONTAINER = 300.0
#: Defaults of the long ones, each a parameter of its method.
BUILD_TIMEOUT = 3600.0
TRANSFER_TIMEOUT = 1800.0  # pull, push
IMPORT_TIMEOUT = 600.0


class PodmanError(CommandError):
    """A podman command failed; carries the command line, exit code and output."""


def split_host_port(hostport: str) -> tuple[str, int | None] | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as (host, port); None when it is
    none of these. Pure."""
    if hostport.startswith("["):
        host, sep, rest = hostport[1:].partition("]")
        if not sep:
            return None
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return None
        port = rest[1:]
    elif hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
    elif ":" in hostport:  # an IPv6 address without brackets: no port
        return hostport, None
    else:
        return hostport, None
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        return None
    return host, int(port)


def is_loopback(hostport: str) -> bool:
    """Whether a registry address (``host[:port]``) is on this machine: exactly
    ``localhost``, 127.0.0.0/8 or ::1. Anything else, and anything that does not parse
    (``localhost.evil.com``, ``127.evil.com``), is not. Pure."""
    parsed = split_host_port(hostport)
    if parsed is None:
        return False
    host = parsed[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def registry_of(ref: str) -> str:
    """The registry part (``host[:port]``) of an image reference. Pure."""
    return ref.removeprefix("docker://").split("/", 1)[0]


def tls_verify(ref: str) -> bool:
    """Verify TLS except for a registry on this machine (saline's own serves plain HTTP).
    The one rule for podman pull/push and skopeo. Pure."""
    return not is_loopback(registry_of(ref))


def _tls(ref: str) -> str:
    """:func:`tls_verify` as podman's and skopeo's ``--tls-verify`` value. Pure."""
    return "true" if tls_verify(ref) else "false"


# What skopeo says when a registry answers "no such image" (distribution's MANIFEST_UNKNOWN,
# NAME_UNKNOWN, a plain 404), and when the registry itself cannot be used. Checked in this
# order: a registry that cannot be used never reads as "absent".
_UNUSABLE: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"unauthorized|authentication required|\b401\b|denied|forbidden", re.I),
        "authentication required: run `podman login {registry}`",
    ),
    (
        re.compile(r"x509|certificate|tls: |server gave HTTP response to HTTPS client", re.I),
        "TLS failed ({detail}); give podman the registry's CA certificate",
    ),
    (
        re.compile(
            r"connection refused|no such host|no route to host|network is unreachable"
            r"|i/o timeout|timeout|deadline exceeded|connection reset|server misbehaving"
            r"|temporary failure in name resolution|\bEOF\b",
            re.I,
        ),
        "not reachable ({detail})",
    ),
]
_ABSENT = re.compile(r"manifest unknown|name unknown|not found|\b404\b", re.I)


def _detail(output: str) -> str:
    """skopeo's reason, from the last line of its error: without the log prefix
    (``time=... level=fatal msg="..."``) and the parts that repeat the image and the URL.
    Pure."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    m = re.search(r'msg="(.*)"\s*$', last)
    text = m.group(1).replace('\\"', '"') if m else re.sub(r"^FATA\[\d+\]\s*", "", last)
    text = re.sub(r'^Error parsing image name "[^"]*": ', "", text.strip())
    return re.sub(r'^pinging container registry \S+: Get "[^"]*": ', "", text)


def classify_inspect_failure(ref: str, output: str) -> RegistryError | None:
    """What a failed ``skopeo inspect`` of ``ref`` means: None if the image is absent from
    a registry that answered, else the error that makes the registry unusable. Pure."""
    registry = registry_of(ref)
    detail = _detail(output)
    for pattern, message in _UNUSABLE:
        if pattern.search(output):
            cause = message.format(registry=registry, detail=detail)
            return RegistryError(f"registry {registry}: {cause}")
    if _ABSENT.search(output):
        return None
    return RegistryError(f"registry {registry}: cannot tell whether it has {ref}: {detail}")


@dataclass(frozen=True)
class Podman:
    """podman with saline's containers.conf (the path in ``conf``)."""

    conf: str

    @classmethod
    def for_state(cls, state_dir: str) -> Podman:
        """podman with the containers.conf kept in ``state_dir`` (written if missing or
        out of date)."""
        path = os.path.join(state_dir, "containers.conf")
        current = None
        if os.path.exists(path):
            with open(path) as fh:
                current = fh.read()
        if current != CONTAINERS_CONF:
            os.makedirs(state_dir, exist_ok=True)
            with open(path, "w") as fh:
                fh.write(CONTAINERS_CONF)
        return cls(path)

    def env(self) -> dict[str, str]:
        """The environment of a podman (or skopeo, podman-compose) child: saline's own,
        plus saline's containers.conf."""
        return {**os.environ, "CONTAINERS_CONF": self.conf}

    def _run(self, args: list[str], *, timeout: float = QUICK, check: bool = True) -> Completed:
        done = run(["podman", *args], timeout=timeout, env=self.env(), check=False)
        if check and done.returncode != 0:
            raise PodmanError(done.argv, done.returncode, done.stdout, done.stderr)
        return done

    def local_images(self) -> dict[str, int]:
        """Every image of the store by name (``localhost/saline/keystone:TAG``) with its
        size: one command where asking image by image takes two each."""
        out = self._run(["images", "--format", "json"]).stdout
        found: dict[str, int] = {}
        for image in json.loads(out or "[]"):
            for name in image.get("Names") or []:
                found[str(name)] = int(image.get("Size") or 0)
        return found

    def images_labelled(self, label: str) -> list[dict[str, Any]]:
        """Every image of the store with the label ``label``: podman's listing of each
        (Names, Labels, Created...)."""
        out = self._run(["images", "--filter", f"label={label}", "--format", "json"]).stdout
        return list(json.loads(out or "[]"))

    def installed_packages(self, image: str, timeout: float = CONTAINER) -> dict[str, str]:
        """The Debian packages installed in ``image`` (a throwaway container, no network):
        name -> ``version:arch``."""
        fmt = "${db:Status-Abbrev} ${Package} ${Version}:${Architecture}\\n"
        args = ["run", "--rm", "--network", "none", "--entrypoint", "dpkg-query", image]
        out = self._run([*args, "-W", "-f", fmt], timeout=timeout).stdout
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ii":
                found[parts[1]] = parts[2]
        return found

    def remove_image(self, ref: str) -> None:
        self._run(["rmi", "--force", ref], check=False)

    def image_exists(self, ref: str) -> bool:
        return self._run(["image", "exists", ref], check=False).returncode == 0

    def import_rootfs(
        self, tar: str, ref: str, changes: list[str], timeout: float = IMPORT_TIMEOUT
    ) -> None:
        args = ["import"]
        for c in changes:
            args += ["--change", c]
        self._run([*args, tar, ref], timeout=timeout)

    def run_detached(
        self, name: str, image: str, command: list[str], publish: list[str], volumes: list[str]
    ) -> None:
        args = ["run", "-d", "--name", name]
        for p in publish:
            args += ["-p", p]
        for v in volumes:
            args += ["-v", v]
        self._run([*args, image, *command], timeout=CONTAINER)

    def build(
        self,
        context: str,
        ref: str,
        volumes: list[str],
        timeout: float = BUILD_TIMEOUT,
        labels: dict[str, str] | None = None,
    ) -> Completed:
        """``podman build`` of ``context``/Containerfile; the caller reads the exit code and
        the output (a time limit still raises :class:`.process.CommandTimeout`)."""
        args = [
            "build",
            "--layers",
            "-f",
            os.path.join(context, "Containerfile"),
            "-t",
            ref,
            "--build-arg",
            "SALINE_APT_CACHE=1" if volumes else "SALINE_APT_CACHE=0",
        ]
        for v in volumes:
            args += ["-v", v]
        for key, value in sorted((labels or {}).items()):
            args += ["--label", f"{key}={value}"]
        return self._run([*args, context], timeout=timeout, check=False)

    def pull(self, ref: str, timeout: float = TRANSFER_TIMEOUT) -> None:
        self._run(["pull", f"--tls-verify={_tls(ref)}", ref], timeout=timeout)

    def push(self, local: str, remote: str, timeout: float = TRANSFER_TIMEOUT) -> None:
        self._run(
            ["push", f"--tls-verify={_tls(remote)}", local, f"docker://{remote}"],
            timeout=timeout,
        )

    def remote_exists(self, ref: str, timeout: float = 120.0) -> bool:
        """Whether a registry has ``ref``, with podman's credentials (``podman login``).

        False only when the registry answered that it does not have it; a registry that
        cannot be used (credentials, TLS, unreachable) raises :class:`RegistryError`, so
        that it never reads as "absent, build it".
        """
        done = run(
            ["skopeo", "inspect", "--raw", f"--tls-verify={_tls(ref)}", f"docker://{ref}"],
            timeout=timeout,
            env=self.env(),
            check=False,
        )
        if done.returncode == 0:
            return True
        problem = classify_inspect_failure(ref, done.output)
        if problem is not None:
            raise problem from CommandError(done.argv, done.returncode, done.stdout, done.stderr)
        return False

    def tag(self, ref: str, new: str) -> None:
        self._run(["tag", ref, new])

    def image_size(self, ref: str) -> int:
        out = self._run(["image", "inspect", "--format", "{{.Size}}", ref]).stdout.strip()
        return int(out or 0)

    def remove(self, name: str) -> None:
        self._run(["rm", "-f", "-t", "0", name], timeout=CONTAINER, check=False)

    def cli(self, args: list[str], timeout: float = CONTAINER) -> str:
        """Any podman command; its output (for tests and one-off operations)."""
        return self._run(args, timeout=timeout).stdout

    def exec(self, name: str, command: list[str], timeout: float = CONTAINER) -> str:
        return self._run(["exec", name, *command], timeout=timeout).stdout

    def run_in(self, name: str, command: list[str], timeout: float = CONTAINER) -> Completed:
        """``podman exec`` whose exit code the caller reads (a check that may fail)."""
        return self._run(["exec", name, *command], timeout=timeout, check=False)

    def exec_with_secret(
        self, name: str, variable: str, secret: str, command: list[str], timeout: float
    ) -> Completed:
        """``podman exec -i`` of ``command`` with ``variable`` set to ``secret`` inside the
        container: the secret goes through stdin, never into an argv (ps shows those)."""
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", variable):
            raise ValueError(f"not an environment variable name: {variable!r}")
        script = f'{variable}="$(cat)"; export {variable}; exec "$@"'
        args = ["exec", "-i", name, "sh", "-c", script, "sh", *command]
        return run(["podman", *args], timeout=timeout, env=self.env(), input=secret, check=False)

    def logs(self, name: str, tail: int | None = None) -> str:
        args = ["logs", *(["--tail", str(tail)] if tail is not None else []), name]
        return self._run(args, check=False).output

    def containers(self, label: str) -> list[dict[str, Any]]:
        """``podman ps -a`` of the containers carrying ``label`` (``key=value``), as JSON."""
        out = self._run(["ps", "-a", "--filter", f"label={label}", "--format", "json"]).stdout
        found: list[dict[str, Any]] = json.loads(out or "[]")
        return found

    def healthcheck(self, name: str, timeout: float = 120.0) -> tuple[bool, str]:
        """Run the container's health check now (podman's timers need systemd). A check
        that does not finish in ``timeout`` seconds failed."""
        try:
            done = self._run(["healthcheck", "run", name], timeout=timeout, check=False)
        except CommandTimeout as e:
            return False, f"the health check did not finish within {e.timeout:g} s"
        return done.returncode == 0, done.output.strip()

    def wait(self, name: str, *, timeout: float) -> int:
        """Block until the container exits, at most ``timeout`` seconds; its exit code.
        Raises :class:`.process.CommandTimeout` when it runs longer (the container is left
        as it is: the caller removes it)."""
        out = self._run(["wait", name], timeout=timeout).stdout.strip()
        return int(out.splitlines()[-1]) if out else -1

    def root_dir(self, name: str) -> str | None:
        """The host path of a running container's root file system (the merged folder
        of its overlay, as rootful podman mounts it), or None where podman gives none."""
        done = self._run(
            ["inspect", "--type", "container", "--format", "{{.GraphDriver.Data.MergedDir}}", name],
            check=False,
        )
        path = done.stdout.strip()
        return path if done.returncode == 0 and path.startswith("/") else None

    def inspect_state(self, name: str) -> dict[str, Any] | None:
        done = self._run(["inspect", "--type", "container", name], check=False)
        if done.returncode != 0:
            return None
        state: dict[str, Any] = json.loads(done.stdout)[0]["State"]
        return state

    def memory(self, names: list[str]) -> dict[str, int]:
        """Current memory use in bytes by container name (``podman stats``)."""
        if not names:
            return {}
        out = self._run(["stats", "--no-stream", "--format", "json", *names]).stdout
        return {s["name"]: _bytes(s["mem_usage"].split("/")[0]) for s in json.loads(out or "[]")}

    def volumes_created(self, names: list[str]) -> dict[str, str]:
        """Creation time of each volume that exists (a recreated volume gets a new one)."""
        out: dict[str, str] = {}
        for name in names:
            done = self._run(["volume", "inspect", "--format", "{{.CreatedAt}}", name], check=False)
            if done.returncode == 0:
                out[name] = done.stdout.strip()
        return out

    def networks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(
            self._run(["network", "ls", "--format", "json"]).stdout or "[]"
        )
        return found

    def remove_volume(self, name: str) -> None:
        self._run(["volume", "rm", "-f", name], timeout=CONTAINER, check=False)

    def volumes(self, label: str) -> list[str]:
        out = self._run(["volume", "ls", "--filter", f"label={label}", "--format", "json"]).stdout
        return sorted(v["Name"] for v in json.loads(out or "[]"))


def _bytes(text: str) -> int:
    """``podman stats`` sizes ("281.5MB", "1.2GB", "512kB") in bytes."""
    m = re.match(r"\s*([0-9.]+)\s*([kKMGT]?i?B)", text)
    if not m:
        return 0
    scale = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    scale.update({"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4})
    return int(float(m.group(1)) * scale.get(m.group(2), 1))
