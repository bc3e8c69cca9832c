"""The one place saline starts external programs: :func:`run` and :func:`spawn`.

Why hand-written: :mod:`subprocess` is the well-kept library underneath and does the real
work; this module is only the policy saline wants on every call, which subprocess leaves to
each caller and which no wrapper library on PyPI gives as a whole:

* every call has a timeout, chosen by the caller for what it runs;
* a child runs in its own session (process group), so a timeout or Ctrl-C stops the whole
  tree it started (podman-compose's podman calls, mmdebstrap's apt), not just the child.
  Being in its own session also means the terminal's SIGINT does not reach it: on Ctrl-C
  the CLI calls :func:`terminate_all`, which stops every live child, and the
  :func:`run` calls waiting for them (in worker threads too) raise :class:`Interrupted`
  instead of hanging;
* errors derive from :class:`saline.errors.SalineError` and carry the command, exit code
  and output; their message is one readable summary (the command shortened, the exit code,
  the output's last lines);
* a program that is not installed is named with the Debian package that provides it.

Secrets: commands are built so that no secret is on a command line (passwords go through
``input``); the input is never kept in a result or an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import SalineError

#: Lines of output an error message shows (the end: where programs say what went wrong).
TAIL_LINES = 15
#: After SIGTERM, how long a stopped process group gets before SIGKILL.
GRACE_SECONDS = 5.0

#: Where each external program comes from, for the message when it is missing.
PACKAGES: dict[str, str] = {
    "podman": "podman",
    "buildah": "buildah",
    "skopeo": "skopeo",
    "mmdebstrap": "mmdebstrap",
    "docker-registry": "docker-registry",
    "salt-call": "saline's venv: scripts/install",
    "salt-ssh": "saline's venv: scripts/install",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "ssh-keyscan": "openssh-client",
    "strip": "binutils",
    "htpasswd": "apache2-utils",
    "openssl": "openssl",
    "runc": "runc",
    "newuidmap": "uidmap",
    "fuse-overlayfs": "fuse-overlayfs",
    "slirp4netns": "slirp4netns",
    "git": "git",
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "qemu-system-x86_64": "qemu-system-x86",
}


@dataclass(frozen=True)
class Completed:
    """A finished command: what ran, its exit code and output, how long it took."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def describe(argv: Sequence[str], limit: int = 100) -> str:
    """The command shortened for a message: the program's name without its folder (a
    Python module run with ``python -m`` by its name), long arguments cut, the whole cut
    at about ``limit`` characters. Pure."""
    if not argv:
        return "(no command)"
    program = os.path.basename(argv[0]) or argv[0]
    rest = list(argv[1:])
    if program.startswith("python") and len(rest) >= 2 and rest[0] == "-m":
        program, rest = rest[1].replace("_", "-"), rest[2:]
    words = [program]
    for arg in rest:
        words.append(arg if len(arg) <= 48 else arg[:45] + "...")
    out = words[0]
    for i, word in enumerate(words[1:], start=1):
        if len(out) + 1 + len(word) > limit:
            return f"{out} ... (+{len(words) - i} args)"
        out += " " + word
    return out


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-blank-ended lines of ``text``. Pure."""
    return "\n".join(text.strip().splitlines()[-lines:])


class CommandError(SalineError):
    """An external command failed: carries the command line, exit code and output.

    ``returncode`` is None when the command did not exit by itself (stopped on a timeout or
    an interrupt, or could not be started). ``output`` is what the message shows (by
    default stdout then stderr; a caller may pass a cleaned-up version).
    """

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        *,
        output: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.output = stdout + stderr if output is None else output
        super().__init__(self._message())

    @property
    def command(self) -> str:
        return describe(self.argv)

    def _headline(self) -> str:
        return f"{self.command} failed (exit {self.returncode})"

    def _message(self) -> str:
        shown = tail(self.output)
        return f"{self._headline()}:\n{shown}" if shown else self._headline()


class CommandTimeout(CommandError):
    """A command ran past its time limit; it was stopped with everything it started."""

    def __init__(
        self, argv: Sequence[str], timeout: float, stdout: str = "", stderr: str = ""
    ) -> None:
        self.timeout = timeout
        super().__init__(argv, None, stdout, stderr)

    def _headline(self) -> str:
        return f"{self.command} did not finish within {self.timeout:g} s (the command was stopped)"


class Interrupted(CommandError):
    """A command was stopped because saline is stopping (Ctrl-C: :func:`terminate_all`)."""

    exit_code = 130

    def _headline(self) -> str:
        return f"{self.command} was interrupted"

    def _message(self) -> str:
        return self._headline()


class ToolMissingError(SalineError):
    """An external program saline needs is not installed (not on PATH)."""

    def __init__(self, tool: str) -> None:
        self.tool = os.path.basename(tool) or tool
        self.package = PACKAGES.get(self.tool)
        where = (
            f"it comes with {self.package}"
            if self.package and self.package.startswith("saline")
            else f"it comes with the Debian package {self.package or '(unknown)'}"
        )
        super().__init__(f"{self.tool} is not installed ({where}); run scripts/install")


# -- live children: what terminate_all() stops --------------------------------------------


@dataclass(eq=False)
class _Child:
    proc: subprocess.Popen[str]
    interrupted: bool = False


@dataclass
class _Children:
    lock: threading.Lock = field(default_factory=threading.Lock)
    live: set[_Child] = field(default_factory=set)
    stopping: bool = False


_CHILDREN = _Children()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a child's process group (its pid: it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def terminate_all(grace: float = GRACE_SECONDS) -> None:
    """Stop every command :func:`run` is running (with everything they started), and refuse
    to start new ones until :func:`resume`.

    For the CLI on Ctrl-C, from the main thread: each :func:`run` waiting for a stopped
    command (in any thread) raises :class:`Interrupted`. SIGTERM first; what still runs
    after ``grace`` seconds gets SIGKILL. Daemons started by :func:`spawn` are left alone.
    """
    with _CHILDREN.lock:
        _CHILDREN.stopping = True
        children = list(_CHILDREN.live)
        for child in children:
            child.interrupted = True
    for child in children:
        _signal_group(child.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(c.proc.pid) for c in children):
        time.sleep(0.05)
    for child in children:
        _signal_group(child.proc.pid, signal.SIGKILL)


def resume() -> None:
    """Allow new commands again after :func:`terminate_all` (for long-lived callers, tests)."""
    with _CHILDREN.lock:
        _CHILDREN.stopping = False


def live_children() -> int:
    """How many commands run now (for tests and diagnostics)."""
    with _CHILDREN.lock:
        return len(_CHILDREN.live)


def _start_error(argv: list[str], cwd: str | None, e: OSError) -> SalineError:
    """Why ``argv`` could not be started, as saline's error."""
    if isinstance(e, FileNotFoundError):
        if cwd is not None and not os.path.isdir(cwd):
            return CommandError(argv, None, "", f"working directory {cwd} does not exist")
        return ToolMissingError(argv[0])
    return CommandError(argv, None, "", f"could not start: {e}")  # not executable, ...


def _start(
    argv: list[str], env: Mapping[str, str] | None, cwd: str | None, with_input: bool
) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if with_input else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # its own process group: stopped as a whole
        )
    except OSError as e:
        raise _start_error(argv, cwd, e) from e


def _stop(proc: subprocess.Popen[str], grace: float) -> tuple[str, str]:
    """Stop ``proc``'s process group (SIGTERM, then SIGKILL after ``grace``), reap it and
    return the output it wrote that was not read yet."""
    _signal_group(proc.pid, signal.SIGTERM)
    out, err = "", ""
    try:
        out, err = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            # Something outside the group holds the pipes open: stop reading them.
            proc.kill()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait()
    # Members that outlived the child itself (they ignored SIGTERM, or closed the pipes).
    _signal_group(proc.pid, signal.SIGKILL)
    return out or "", err or ""


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
    cwd: str | None = None,
) -> Completed:
    """Run ``argv`` (no shell) and wait for it, at most ``timeout`` seconds.

    ``env`` replaces the environment when given (else the child inherits saline's);
    ``input`` is written to its stdin (else stdin is /dev/null: nothing waits for a
    terminal). With ``check``, a non-zero exit raises :class:`CommandError`; without, the
    caller reads ``returncode``. Raises :class:`CommandTimeout` when the time is up (the
    command's process group is stopped first), :class:`Interrupted` when
    :func:`terminate_all` stopped it, :class:`ToolMissingError` when the program is not
    installed.
    """
    cmd = [str(a) for a in argv]
    if not cmd:
        raise ValueError("run() needs a command")
    started = time.monotonic()
    with _CHILDREN.lock:
        if _CHILDREN.stopping:
            raise Interrupted(cmd, None)
        proc = _start(cmd, env, cwd, input is not None)
        child = _Child(proc)
        _CHILDREN.live.add(child)
    try:
        deadline = started + timeout
        pending = input
        while True:
            try:
                # In slices, so that an interrupt is seen even if a pipe stays open.
                slice_ = max(0.0, min(deadline - time.monotonic(), 0.5))
                out, err = proc.communicate(pending, timeout=slice_)
                break
            except subprocess.TimeoutExpired:
                pending = None  # written already: communicate() keeps sending it
                if child.interrupted:
                    out, err = _stop(proc, GRACE_SECONDS)
                    break
                if time.monotonic() >= deadline:
                    out, err = _stop(proc, GRACE_SECONDS)
                    raise CommandTimeout(cmd, timeout, out, err) from None
    except KeyboardInterrupt:
        # Ctrl-C in the thread that waits: the terminal's SIGINT did not reach the child
        # (its own session), so stop it here before it leaves the live set.
        _stop(proc, GRACE_SECONDS)
        raise
    finally:
        with _CHILDREN.lock:
            _CHILDREN.live.discard(child)
    if child.interrupted:
        raise Interrupted(cmd, None, out, err)
    done = Completed(tuple(cmd), proc.returncode, out, err, time.monotonic() - started)
    if check and done.returncode != 0:
        raise CommandError(cmd, done.returncode, out, err)
    return done


@dataclass(frozen=True)
class Daemon:
    """A background program started by :func:`spawn`."""

    pid: int
    _proc: subprocess.Popen[bytes] = field(repr=False, compare=False)

    def exited(self) -> int | None:
        """Its exit code if it has exited already (it is saline's child until saline
        exits), else None."""
        return self._proc.poll()


def spawn(
    argv: Sequence[str],
    *,
    log_path: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Daemon:
    """Start ``argv`` in the background, in a new session: it outlives saline, is not
    stopped by :func:`terminate_all`, and writes stdout and stderr to ``log_path``
    (appended)."""
    cmd = [str(a) for a in argv]
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as e:
            raise _start_error(cmd, cwd, e) from e
    return Daemon(proc.pid, proc)
