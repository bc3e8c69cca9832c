"""Running Salt: in-process for rendering, ``salt-call``/``salt-ssh`` for applying states.

This module is the only one that imports Salt. Applying states (and :func:`render_files`,
the reference renderer) takes the pillar from saline's own ext_pillar module
(``pillar/saline.py``) and the top from its master_tops module: the path an existing
Salt master would use. :class:`RenderSession` renders many nodes in one process with
each node's compiled pillar given in memory (see there why that renders the same files).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import FormulaError, Location, SaltError
from ..runtime.process import Completed, describe, run

# Salt logs through the logging module; keep its chatter out of saline's output.
logging.getLogger("salt").setLevel(logging.CRITICAL)


def minion_config(
    node: str, model_root: str, formula_dirs: list[str], work_dir: str, grains: dict[str, Any]
) -> dict[str, Any]:
    """Masterless minion options for ``node``. Pure: returns data."""
    return {
        "id": node,
        "file_client": "local",
        "file_roots": {"base": list(formula_dirs)},
        "pillar_roots": {"base": []},
        "ext_pillar": [{"saline": {"model": model_root}}],
        "master_tops": {"saline": {"model": model_root}},
        "cachedir": os.path.join(work_dir, "cache"),
        "pki_dir": os.path.join(work_dir, "pki"),
        "sock_dir": os.path.join(work_dir, "sock"),
        "log_file": os.path.join(work_dir, "minion.log"),
        "log_level_logfile": "warning",
        "root_dir": work_dir,
        # Measured: a highstate takes 0.12 s instead of 1.4 s without dynamic module sync.
        "autoload_dynamic_modules": False,
        "pillar_mask_output": False,
        "state_output_diff": True,
        "grains": grains,
    }


@dataclass
class RenderedFile:
    path: str  # absolute path in the container or host
    content: str
    mode: str | None
    state_id: str
    source: str  # the template, relative to the formula folders (salt:// URL)


@contextlib.contextmanager
def _workdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="saline-salt-")
    os.chmod(d, 0o700)  # rendered files hold secrets
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _first(e: Exception) -> str:
    """Salt's message without the template dump it appends after a '---' line."""
    text = str(e).split("\n---")[0].strip()
    return text.splitlines()[0] if text else type(e).__name__


def _source_file(formula_dirs: list[str], source: str) -> str:
    rel = source.removeprefix("salt://")
    for base in formula_dirs:
        path = os.path.join(base, rel)
        if os.path.exists(path):
            shown = os.path.relpath(path)
            return path if shown.startswith("..") else shown
    return source


def _caller(node: str, model_root: str, formula_dirs: list[str], work: str) -> Any:
    import salt.client
    import salt.config

    opts = salt.config.minion_config(None)
    opts.update(minion_config(node, model_root, formula_dirs, work, {"noservices": True}))
    try:
        return salt.client.Caller(mopts=opts)
    except Exception as e:  # pillar compile errors surface here
        raise SaltError(f"node {node}: Salt could not start: {e}") from e


def _low_chunks(caller: Any, node: str, states: list[str]) -> list[dict[str, Any]]:
    from salt.exceptions import SaltException

    try:
        chunks = caller.cmd("state.show_low_sls", ",".join(states))
    except SaltException as e:
        raise FormulaError(
            f"node {node}: states {', '.join(states)} do not render: {_first(e)}"
        ) from None
    return _check_chunks(node, states, chunks)


def low_states(
    node: str, model_root: str, formula_dirs: list[str], states: list[str]
) -> list[dict[str, Any]]:
    """The low data (what would run, in order) of ``states`` for ``node``. Applies nothing."""
    with _workdir() as work:
        return _low_chunks(_caller(node, model_root, formula_dirs, work), node, states)


def _check_chunks(node: str, states: list[str], chunks: Any) -> list[dict[str, Any]]:
    """The low chunks of ``states``, or the FormulaError naming what did not render."""
    if not isinstance(chunks, list) or any(isinstance(c, str) for c in chunks):
        problems = chunks if isinstance(chunks, list) else [str(chunks)]
        raise FormulaError(
            f"node {node}: states {', '.join(states)} do not render: "
            + "; ".join(str(p).strip() for p in problems)
        )
    return chunks


def _managed_files(
    call: Callable[..., Any], node: str, formula_dirs: list[str], chunks: list[dict[str, Any]]
) -> list[RenderedFile]:
    """Render the files that the ``file.managed`` chunks manage, with Salt's own
    ``file.get_managed`` (``call`` runs an execution module function)."""
    from salt.exceptions import SaltException

    out: list[RenderedFile] = []
    for chunk in chunks:
        if chunk.get("state") != "file" or chunk.get("fun") != "managed":
            continue
        source = chunk.get("source")
        if not source:
            if "contents" in chunk:
                text = chunk["contents"]
                out.append(
                    RenderedFile(chunk["name"], str(text), chunk.get("mode"), chunk["__id__"], "")
                )
            continue
        where = _source_file(formula_dirs, source)
        try:
            sfn, _sum, comment = call(
                "file.get_managed",
                chunk["name"],
                chunk.get("template"),
                source,
                None,
                None,
                None,
                None,
                None,
                None,
                "base",
                chunk.get("context"),
                chunk.get("defaults"),
                skip_verify=True,
            )
        except SaltException as e:
            line = getattr(e, "line_num", None)
            raise FormulaError(
                f"node {node}: template does not render: {_first(e)}",
                Location(where, line, key=f"state {chunk['__id__']} ({chunk['__sls__']})"),
            ) from None
        if not comment and not sfn and not chunk.get("template") and os.path.isfile(where):
            # A plain file (no template): Salt only checks its hash, the file is its own
            # content.
            sfn = where
        if comment or not sfn:
            raise FormulaError(
                f"node {node}: template does not render: {str(comment).strip()}",
                Location(where, key=f"state {chunk['__id__']} ({chunk['__sls__']})"),
            )
        with open(sfn, encoding="utf-8") as fh:
            text = fh.read()
        if chunk.get("template") and os.path.basename(sfn).startswith(_SALT_TMP):
            # Salt renders a template into a file of the system's temporary folder and
            # leaves it there: it holds the node's secrets.
            with contextlib.suppress(OSError):
                os.remove(sfn)
        out.append(RenderedFile(chunk["name"], text, chunk.get("mode"), chunk["__id__"], source))
    return out


#: The prefix of the temporary files Salt renders templates into.
_SALT_TMP = "__salt.tmp."


def render_files(
    node: str, model_root: str, formula_dirs: list[str], states: list[str]
) -> list[RenderedFile]:
    """Render every file that ``states`` manage for ``node``, without applying anything.

    Uses Salt's own ``file.managed`` machinery (``file.get_managed``) on the states' low
    data, so what is rendered is exactly what applying the states would write.

    One Salt minion per call, whose ext_pillar compiles the model for the node: the path
    an existing Salt master takes. :class:`RenderSession` renders many nodes with their
    pillars given in memory instead (what ``saline render`` and the planner use).
    """
    with _workdir() as work:
        caller = _caller(node, model_root, formula_dirs, work)
        chunks = _low_chunks(caller, node, states)
        return _managed_files(caller.cmd, node, formula_dirs, chunks)


#: The grains a render sees besides the rendering machine's own: services are not
#: started (the states' guard), nothing else. Part of the render cache's key.
RENDER_GRAINS: dict[str, Any] = {"noservices": True}


def node_grains(grains: dict[str, Any], node: str) -> dict[str, Any]:
    """``grains`` (computed by Salt for another minion id) as Salt computes them for
    ``node``: the grains derived from the minion id are ``id`` and ``server_id``
    (``salt.grains.core``); the rest describe the machine. A unit test checks this
    against Salt's own computation."""
    out = copy.deepcopy(grains)
    out["id"] = node
    if "server_id" in out:
        digest = int(hashlib.sha256(node.encode()).hexdigest(), 16)
        out["server_id"] = abs(digest % (2**31))
    return out


class RenderSession:
    """Salt set up once in this process to render the config files of many nodes.

    Shared by every node: Salt's import (0.5 s), the minion options, the rendering
    machine's grains (0.1-0.3 s; computed once, :func:`node_grains` gives each node its
    own ``id`` and ``server_id``), and the file client (0.05 s), which only serves the
    formula folders' files. :func:`render_files` pays all of it per service, and
    compiles the model twice (0.7 s a service on the example). Each node gets its own
    options (a deep copy: id, grains, pillar) and a fresh ``HighState`` (0.08 s: its own
    execution, state and renderer modules with their own ``__context__``), so nothing of
    one node reaches another. Not shared, on purpose: those modules. Swapping a node's
    pillar, grains and id into loaders built for another node would save about half of
    a node's 0.15 s, but means editing what Salt packed into each loader (its options
    copies, ``__pillar__``, ``__grains__``, ``__context__``) in place: a Salt release
    that packs one more copy would leak one node's secrets into another's files.
    One thread at a time.

    The pillar is given in memory (:meth:`render`): Salt gets it as the initial pillar
    of the state run, as ``salt-call`` does after compiling it, so the model is not
    compiled again. The ext_pillar stays configured, with the node's parameters under
    ``compiled``: anything that compiles the pillar again (a pillar refresh) gets
    the same parameters without reading the model.

    Use it as a context manager (its work folder, which holds Salt's caches, is
    removed on exit).
    """

    def __init__(
        self, model_root: str, formula_dirs: list[str], grains: dict[str, Any] | None = None
    ) -> None:
        self.model_root = model_root
        self.formula_dirs = list(formula_dirs)
        self._work = tempfile.mkdtemp(prefix="saline-salt-")
        os.chmod(self._work, 0o700)  # rendered files hold secrets
        try:
            import salt.config
            import salt.fileclient
            import salt.loader

            opts = dict(salt.config.minion_config(None))
            static = RENDER_GRAINS if grains is None else grains
            opts.update(minion_config(_SETUP_ID, model_root, formula_dirs, self._work, static))
            self._opts = opts
            self._grains: dict[str, Any] = dict(salt.loader.grains(copy.deepcopy(opts)))
            self._client = salt.fileclient.get_file_client(copy.deepcopy(opts))
        except Exception as e:
            shutil.rmtree(self._work, ignore_errors=True)
            raise SaltError(f"Salt could not start: {e}") from e

    def __enter__(self) -> RenderSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.destroy()
        shutil.rmtree(self._work, ignore_errors=True)

    def _node_opts(
        self, node: str, parameters: dict[str, Any], pillar: dict[str, Any]
    ) -> dict[str, Any]:
        opts = copy.deepcopy(self._opts)
        opts["id"] = node
        opts["grains"] = node_grains(self._grains, node)
        opts["pillar"] = pillar
        compiled = {node: copy.deepcopy(parameters)}
        opts["ext_pillar"] = [{"saline": {"model": self.model_root, "compiled": compiled}}]
        # What state.show_low_sls does with the options of the minion.
        if opts.get("saltenv") is None:
            opts["saltenv"] = "base"
        opts["test"] = bool(opts.get("test", False))
        return opts

    def render(
        self, node: str, parameters: dict[str, Any], services: list[list[str]]
    ) -> list[list[RenderedFile]]:
        """The files each list of states in ``services`` manages for ``node``, whose
        compiled pillar is ``parameters``: one list per service, in order. The same
        files, byte for byte, as :func:`render_files` per service."""
        import salt.state
        import salt.utils.dictupdate
        from salt.exceptions import SaltException

        if self._client is None:
            raise SaltError("the render session is closed")
        # What Salt's pillar compile makes of an ext_pillar's data (an empty top, then
        # the ext_pillar merged in); a copy, so nothing Salt does reaches the model.
        pillar = salt.utils.dictupdate.merge(
            {},
            copy.deepcopy(parameters),
            self._opts.get("pillar_source_merging_strategy", "smart"),
            self._opts.get("renderer", "yaml"),
            self._opts.get("pillar_merge_lists", False),
        )
        opts = self._node_opts(node, parameters, pillar)
        try:
            highstate = salt.state.HighState(
                opts, None, initial_pillar=pillar, file_client=self._client
            )
        except Exception as e:
            raise SaltError(f"node {node}: Salt could not start: {e}") from e
        with highstate:
            functions = highstate.state.functions

            def call(fun: str, *args: Any, **kwargs: Any) -> Any:
                return functions[fun](*args, **kwargs)

            out = []
            for states in services:
                try:
                    chunks = _show_low_sls(highstate, opts["saltenv"], states)
                except SaltException as e:
                    raise FormulaError(
                        f"node {node}: states {', '.join(states)} do not render: {_first(e)}"
                    ) from None
                chunks = _check_chunks(node, states, chunks)
                out.append(_managed_files(call, node, self.formula_dirs, chunks))
            return out


#: The minion id the session's shared setup is computed with (each node gets its own).
_SETUP_ID = "saline-render"


def _show_low_sls(highstate: Any, saltenv: str, states: list[str]) -> Any:
    """What ``state.show_low_sls`` returns (low chunks, or a list of errors), on a
    HighState reset as if it were new (one HighState renders each service of a node)."""
    from salt.utils.datastructures import HashableOrderedDict

    highstate.building_highstate = HashableOrderedDict()
    highstate.iorder = 10000
    highstate._pydsl_all_decls = {}
    highstate._pydsl_render_stack = []
    highstate.push_active()
    try:
        high, errors = highstate.render_highstate({saltenv: list(states)})
    finally:
        highstate.pop_active()
    errors += highstate.state.verify_high(high)
    if errors:
        return errors
    chunks, errors = highstate.state.compile_high_data(high)
    return errors or chunks


@dataclass
class StateResult:
    id: str
    name: str
    function: str
    result: bool | None
    comment: str
    changes: dict[str, Any]


def _parse_states(ret: dict[str, Any]) -> list[StateResult]:
    results = []
    for key, r in sorted(ret.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
        parts = key.split("_|-")
        function = f"{parts[0]}.{parts[3]}" if len(parts) == 4 else key
        results.append(
            StateResult(
                id=r.get("__id__", parts[1] if len(parts) > 1 else key),
                name=r.get("name", ""),
                function=function,
                result=r.get("result"),
                comment=str(r.get("comment", "")),
                changes=r.get("changes") or {},
            )
        )
    return results


#: Default time limit of a state run on a host (package installs included).
APPLY_TIMEOUT = 3600.0


def apply_local(
    node: str,
    model_root: str,
    formula_dirs: list[str],
    states: list[str] | None,
    test: bool,
    grains: dict[str, Any] | None = None,
    *,
    timeout: float = APPLY_TIMEOUT,
) -> list[StateResult]:
    """Run the node's states on this machine with ``salt-call --local`` (a highstate from
    saline's top when ``states`` is None), at most ``timeout`` seconds."""
    with _workdir() as work:
        conf_dir = os.path.join(work, "conf")
        os.makedirs(conf_dir)
        config = minion_config(node, model_root, formula_dirs, work, grains or {})
        with open(os.path.join(conf_dir, "minion"), "w") as fh:
            json.dump(config, fh)  # JSON is YAML
        salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
        fun = ["state.apply", ",".join(states)] if states else ["state.apply"]
        cmd = [
            salt_call,
            "--local",
            f"--config-dir={conf_dir}",
            "--out=json",
            "--retcode-passthrough",
            *fun,
        ]
        if test:
            cmd.append("test=True")
        return _salt_output(node, run(cmd, timeout=timeout, check=False))


class HostKeyError(SaltError):
    """salt-ssh refused a host whose SSH host key is unknown or changed."""


def parse_target(target: str) -> tuple[str, str, int]:
    """``[user@]host[:port]`` as (user, host, port). An IPv6 host is ``[v6]`` or ``[v6]:port``,
    or unbracketed with a port (``::1:22``: the last part is the port). Pure."""
    user, _, hostport = target.rpartition("@")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest.removeprefix(":")
    elif hostport.count(":") > 1:
        host, _, port = hostport.rpartition(":")
    else:
        host, _, port = hostport.partition(":")
    return user or "root", host, int(port or 22)


def keyscan_hint(host: str, port: int, known_hosts: str | None) -> str:
    """The command that adds ``host``'s key to the known_hosts file salt-ssh checks. Pure."""
    where = known_hosts or "~/.ssh/known_hosts"
    flag = f"-p {port} " if port != 22 else ""
    return f"ssh-keyscan {flag}{host} >> {where}"


# What ssh (through salt-ssh) says when host key verification fails. Unknown: strict
# checking of a host not in known_hosts, or salt-ssh's own answer to ssh's yes/no question
# (when ssh asks). Changed: a different key than known_hosts has.
_HOST_KEY_CHANGED = re.compile(
    r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed", re.I
)
_HOST_KEY_UNKNOWN = re.compile(
    r"Host key verification failed|host key is known for \S+ and you have requested strict"
    r"|The host key needs to be accepted",
    re.I,
)


def host_key_failure(output: str) -> str | None:
    """``changed`` or ``unknown`` if salt-ssh's output says the host's SSH key could not be
    verified; else None. Pure."""
    if _HOST_KEY_CHANGED.search(output):
        return "changed"
    if _HOST_KEY_UNKNOWN.search(output):
        return "unknown"
    return None


def host_key_message(node: str, host: str, port: int, known_hosts: str | None, failure: str) -> str:
    """What to tell the user when ``host``'s key is ``unknown`` or ``changed``. Pure."""
    where = known_hosts or "~/.ssh/known_hosts"
    add = f"`{keyscan_hint(host, port, known_hosts)}`"
    if failure == "changed":
        name = f"[{host}]:{port}" if port != 22 else host
        what = (
            f"has CHANGED since it was recorded in {where}: someone may be intercepting the "
            f"connection. If the change is expected (the host was reinstalled), remove the "
            f"old key (`ssh-keygen -R '{name}' -f {where}`) and add the new one: {add}"
        )
    else:
        what = (
            f"is unknown (not in {where}). If this is the right host, add its key: {add} "
            "and check its fingerprint"
        )
    return (
        f"node {node}: salt-ssh did not connect: the SSH host key of {host} (port {port}) "
        f"{what}. For a disposable host, --insecure-ignore-host-keys skips the check."
    )


def apply_ssh(
    node: str,
    model_root: str,
    formula_dirs: list[str],
    target: str,
    states: list[str] | None,
    test: bool,
    ssh_key: str | None = None,
    grains: dict[str, Any] | None = None,
    *,
    ignore_host_keys: bool = False,
    known_hosts: str | None = None,
    timeout: float = APPLY_TIMEOUT,
) -> list[StateResult]:
    """Run the node's states on ``[user@]host[:port]`` with salt-ssh, at most ``timeout``
    seconds.

    The host's SSH key is verified (``StrictHostKeyChecking=yes``) against ``known_hosts``
    (a known_hosts file; None: ssh's own default, the user's ~/.ssh/known_hosts); an
    unknown or changed key raises :class:`HostKeyError`. ``ignore_host_keys`` turns the
    check off, for disposable hosts only: nothing is checked and nothing is written to a
    known_hosts file.

    Both go through the roster's ``ssh_options``, not salt-ssh's ``--ignore-host-keys`` or
    ``--no-host-keys``: salt-ssh 3008 applies those to its first connection only, while
    ``state.apply`` connects again (to run the state package) with the roster's options
    and ``known_hosts_file``. (``--ignore-host-keys`` also added the host's key to
    ~/.ssh/known_hosts on the first connection, silently.)
    """
    user, host, port = parse_target(target)
    if known_hosts is not None and not ignore_host_keys and not os.path.isfile(known_hosts):
        # salt-ssh would silently fall back to ~/.ssh/known_hosts.
        raise SaltError(f"known_hosts file {known_hosts} does not exist")
    with _workdir() as work:
        conf_dir = os.path.join(work, "conf")
        os.makedirs(conf_dir)
        config = minion_config(node, model_root, formula_dirs, work, {})
        config.pop("file_client")
        config.update(
            {"ssh_log_file": os.path.join(work, "ssh.log"), "pki_dir": os.path.join(work, "pki")}
        )
        if known_hosts is not None and not ignore_host_keys:
            config["known_hosts_file"] = os.path.abspath(known_hosts)
        with open(os.path.join(conf_dir, "master"), "w") as fh:
            json.dump(config, fh)
        roster: dict[str, dict[str, Any]] = {
            node: {
                "host": host,
                "user": user,
                "port": port,
                "tty": False,
                "ssh_options": (
                    ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
                    if ignore_host_keys
                    # ssh's default ("ask") would have salt-ssh answer its question.
                    else ["StrictHostKeyChecking=yes"]
                ),
            }
        }
        if grains:
            roster[node]["minion_opts"] = {"grains": grains}
        if ssh_key:
            roster[node]["priv"] = ssh_key
        with open(os.path.join(conf_dir, "roster"), "w") as fh:
            json.dump(roster, fh)
        salt_ssh = os.path.join(os.path.dirname(sys.executable), "salt-ssh")
        fun = ["state.apply", ",".join(states)] if states else ["state.apply"]
        cmd = [
            salt_ssh,
            f"--config-dir={conf_dir}",
            f"--roster-file={os.path.join(conf_dir, 'roster')}",
            "--out=json",
            node,
            *fun,
        ]
        if test:
            cmd.append("test=True")
        done = run(cmd, timeout=timeout, check=False)
        ret = _salt_return(node, done)
        failure = host_key_failure(done.output) if ret is None else None
        if failure is not None:
            raise HostKeyError(host_key_message(node, host, port, known_hosts, failure))
        return _results(node, done, ret)


def _salt_return(node: str, done: Completed) -> dict[str, Any] | None:
    """The state return in salt-call's or salt-ssh's JSON output; None if the run did not
    get as far (salt-ssh reports a failed connection as ``{stdout, stderr, retcode}``)."""
    try:
        data = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    ret = data.get("local", data.get(node)) if isinstance(data, dict) else None
    if isinstance(ret, dict) and "return" in ret and isinstance(ret["return"], dict):
        ret = ret["return"]  # salt-ssh wraps the state return
    if not isinstance(ret, dict) or not all(isinstance(r, dict) for r in ret.values()):
        return None
    return ret


def _results(node: str, done: Completed, ret: dict[str, Any] | None) -> list[StateResult]:
    if ret is None:
        detail = done.output.strip()[-2000:]
        shown = describe(done.argv[:2])
        raise SaltError(f"node {node}: {shown} ... failed (exit {done.returncode}):\n{detail}")
    return _parse_states(ret)


def _salt_output(node: str, done: Completed) -> list[StateResult]:
    return _results(node, done, _salt_return(node, done))
