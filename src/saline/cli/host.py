"""``saline host apply``: a node's states on a real host, with Salt (masterless or SSH)."""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .common import Context, add_format, add_formulas_option, add_model_option, command

if TYPE_CHECKING:
    from ..salt.runner import StateResult

_SSH = re.compile(
    r"^ssh://(?:(?P<user>[^@/:]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@/:\[\]]+)"
    r"(?::(?P<port>[^/]*))?$"
)


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int

    @property
    def spec(self) -> str:
        """``user@host:port``, as the Salt runner takes it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def parse_host(text: str) -> SshTarget | None:
    """``local`` (None) or ``ssh://[USER@]HOST[:PORT]``; anything else is a usage error."""
    if text == "local":
        return None
    m = _SSH.match(text)
    if not m:
        raise UsageError(f"--host {text!r}: use 'local' or 'ssh://[USER@]HOST[:PORT]'")
    port_text = m.group("port")
    if port_text is None or port_text == "":
        port = 22
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise UsageError(f"--host {text!r}: port {port_text!r} is not a number from 1 to 65535")
    return SshTarget(m.group("user") or "root", m.group("host").strip("[]"), port)


def cmd_host_apply(args: argparse.Namespace, ctx: Context) -> int:
    from ..model.secrets import redact, secret_values
    from ..salt.runner import apply_local, apply_ssh

    target = parse_host(args.host)  # before anything is compiled: a typo costs nothing
    model = ctx.model()
    # A model mistake is reported before Salt starts; secrets never reach the screen.
    secrets = secret_values(model.node(args.node).parameters)
    formulas = ctx.formulas(model)
    states = args.states.split(",") if args.states else None
    grains = {"noservices": True} if args.no_services else None
    if target is None:
        results = apply_local(args.node, model.root, formulas.dirs, states, args.test, grains)
    else:
        results = apply_ssh(
            args.node,
            model.root,
            formulas.dirs,
            target.spec,
            states,
            args.test,
            args.ssh_key,
            grains,
            ignore_host_keys=args.insecure_ignore_host_keys,
            known_hosts=args.known_hosts,
        )
    for r in results:
        r.comment = redact(r.comment, secrets)
        r.changes = redact(r.changes, secrets)
    failed = [r for r in results if r.result is False]
    if args.format == "json":
        ctx.emit([asdict(r) for r in results], "json")
    else:
        print("\n".join(render_results(ctx, results, args.test)), file=ctx.out)
    return 1 if failed else 0


def render_results(ctx: Context, results: list[StateResult], test: bool) -> list[str]:
    lines = []
    for r in results:
        if r.result is False:
            mark = ctx.color("FAILED ", "31")
        elif r.result is None or (r.changes and test):
            mark = ctx.color("WOULD  ", "33")
        elif r.changes:
            mark = ctx.color("CHANGED", "32")
        else:
            mark = "ok     "
        first = r.comment.splitlines()[0] if r.comment else ""
        lines.append(f"{mark} {r.function} {r.id}: {first}")
        diff = r.changes.get("diff") if isinstance(r.changes, dict) else None
        if isinstance(diff, str) and diff not in ("New file",):
            for d in diff.splitlines():
                code = "32" if d.startswith("+") else "31" if d.startswith("-") else "0"
                lines.append("    " + ctx.color(d, code))
    failed = sum(1 for r in results if r.result is False)
    changed = sum(1 for r in results if r.changes or r.result is None)
    verb = "would change" if test else "changed"
    lines.append(f"{len(results)} states: {changed} {verb}, {failed} failed")
    return lines


def register(sub: Any) -> None:
    host = sub.add_parser(
        "host",
        help="configure real hosts with the model's states (Salt)",
        description="Configure hosts (not containers) from the model, with Salt.",
    )
    hsub = host.add_subparsers(dest="host_command", metavar="SUBCOMMAND")
    hsub.required = True
    p = command(
        hsub,
        "apply",
        "run a node's states on a host (Salt masterless or salt-ssh)",
        "Apply NODE's states (its applications: install, configure and run each service) "
        "to a host with Salt: on this machine (--host local, salt-call --local) or over SSH "
        "(--host ssh://user@host[:port], salt-ssh; the host's key must be known, as ssh "
        "checks it). With --test, show what would change (with diffs) and change nothing. "
        "Exits 1 when a state failed.",
        cmd_host_apply,
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument("--host", required=True, metavar="local|ssh://[USER@]HOST[:PORT]")
    p.add_argument("--test", action="store_true", help="change nothing; show what would change")
    p.add_argument("--states", metavar="SLS[,SLS]", help="only these states (default: highstate)")
    p.add_argument("--ssh-key", metavar="FILE", help="private key for ssh:// hosts")
    p.add_argument(
        "--known-hosts",
        metavar="FILE",
        help="the known_hosts file that holds the host's key (default: ~/.ssh/known_hosts)",
    )
    p.add_argument(
        "--insecure-ignore-host-keys",
        action="store_true",
        help="do not verify the SSH host key (anyone on the path can impersonate the host)",
    )
    p.add_argument(
        "--no-services",
        action="store_true",
        help="install and configure, but start no service (a host without an init system, "
        "such as a container or a chroot)",
    )
    add_model_option(p)
    add_formulas_option(p)
    add_format(p, ("text", "json"), "text")
