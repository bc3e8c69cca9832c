"""saline's command line. Thin: parse options, call one library function, print.

Every :class:`~saline.errors.SalineError` becomes one message on stderr and a non-zero
exit; set ``SALINE_DEBUG=1`` to see the traceback as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__
from .errors import SalineError

FORMATS = ("yaml", "json")


# -- output -------------------------------------------------------------------------------


def dump(data: Any, fmt: str) -> str:
    """Serialise for people (yaml, the default) or scripts (json). Deterministic."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)
    import yaml

    base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class NoAliasDumper(base):  # type: ignore[misc]
        # Values shared between keys (a reference to a dict) print in full at each place.
        def ignore_aliases(self, data: Any) -> bool:
            return True

    out: str = yaml.dump(
        data, Dumper=NoAliasDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )
    return out


def _color(text: str, code: str, stream: Any = sys.stdout) -> str:
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return text
    return f"\033[{code}m{text}\033[0m"


# -- model commands -----------------------------------------------------------------------


def _model(args: argparse.Namespace) -> Any:
    from .model import load_model

    return load_model(args.model)


def cmd_model_nodes(args: argparse.Namespace) -> int:
    model = _model(args)
    names = model.node_names()
    if args.format == "json":
        print(dump(names, "json"))
    else:
        for n in names:
            print(n)
    return 0


def cmd_model_show(args: argparse.Namespace) -> int:
    model = _model(args)
    node = model.node(args.node)
    data = node.as_dict()
    if args.key:
        from .model.provenance import key_value, parse_key

        section, path = parse_key(args.key)
        data = key_value(data[section], path, args.node, section)
    print(dump(data, args.format), end="" if args.format == "yaml" else "\n")
    return 0


def cmd_model_inventory(args: argparse.Namespace) -> int:
    model = _model(args)
    print(dump(model.inventory(), args.format), end="" if args.format == "yaml" else "\n")
    return 0


def cmd_model_explain(args: argparse.Namespace) -> int:
    from .model import explain

    model = _model(args)
    info = explain(model, args.node, args.key)
    if args.format == "json":
        print(dump(info, "json"))
    elif args.format == "yaml":
        print(dump(info, "yaml"), end="")
    else:
        print("\n".join(render_explain(info)))
    return 0


def render_explain(info: dict[str, Any], indent: str = "") -> list[str]:
    """Human-readable explanation, one fact per line."""
    lines = []
    value = json.dumps(info["value"], ensure_ascii=False, default=str)
    if len(value) > 100:
        value = value[:97] + "..."
    head = f"{info['key']} = {value}"
    if "ref" in info:
        head = f"{_color(info['ref'], '36')} -> {head}"
    lines.append(indent + _color(head, "1"))
    set_by = info.get("set_by")
    if set_by is None:
        lines.append(indent + "  set by: (no file; computed)")
    else:
        where = f"{set_by['file']}:{set_by['line']}" if set_by.get("line") else set_by["file"]
        via = f" (as part of {info['via_ancestor']})" if "via_ancestor" in info else ""
        lines.append(f"{indent}  set by:   {_color(where, '32')}  {_raw(set_by)}{via}")
    for label, key in (("overrode", "overrode"), ("merged with", "merged_with")):
        for c in info.get(key, []):
            where = f"{c['file']}:{c['line']}" if c.get("line") else c["file"]
            lines.append(f"{indent}  {label + ':':9} {_color(where, '33')}  {_raw(c)}")
    for ref in info.get("references", []):
        lines.append(f"{indent}  through:")
        lines.extend(render_explain(ref, indent + "    "))
    return lines


def _raw(c: dict[str, Any]) -> str:
    prefix = "~" if c.get("overwrite") else "=" if c.get("constant") else ""
    text = json.dumps(c["value"], ensure_ascii=False, default=str)
    if len(text) > 70:
        text = text[:67] + "..."
    return prefix + text


# -- formulas and Salt ---------------------------------------------------------------------


def _formulas(args: argparse.Namespace, model: Any) -> Any:
    from .formulas import FormulaSet, default_formula_dirs

    return FormulaSet(args.formulas or default_formula_dirs(model.root))


def cmd_render(args: argparse.Namespace) -> int:
    from .configs import render_node, write_tree

    model = _model(args)
    rendered = render_node(model, _formulas(args, model), args.node, args.service)
    written = write_tree(args.out, rendered)
    if args.format == "json":
        print(dump({"out": args.out, "files": written}, "json"))
    else:
        for sc in rendered:
            print(f"{sc.service.name}: {len(sc.files)} file(s)")
            for f in sc.files:
                print(f"  {os.path.join(args.out, sc.service.name, f.path.lstrip('/'))}")
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from .errors import UsageError
    from .model.secrets import redact, secret_values
    from .salt.runner import apply_local, apply_ssh

    model = _model(args)
    # A model mistake is reported before Salt starts; secrets never reach the screen.
    secrets = secret_values(model.node(args.node).parameters)
    formulas = _formulas(args, model)
    states = args.states.split(",") if args.states else None
    grains = {"noservices": True} if args.no_services else None
    if args.host == "local":
        results = apply_local(args.node, model.root, formulas.dirs, states, args.test, grains)
    elif args.host.startswith("ssh://"):
        results = apply_ssh(
            args.node,
            model.root,
            formulas.dirs,
            args.host[len("ssh://") :],
            states,
            args.test,
            args.ssh_key,
            grains,
        )
    else:
        raise UsageError(f"--host {args.host!r}: use 'local' or 'ssh://user@host[:port]'")
    for r in results:
        r.comment = redact(r.comment, secrets)
        r.changes = redact(r.changes, secrets)
    failed = [r for r in results if r.result is False]
    if args.format == "json":
        print(dump([r.__dict__ for r in results], "json"))
    else:
        print("\n".join(render_results(results, args.test)))
    return 1 if failed else 0


def render_results(results: list[Any], test: bool) -> list[str]:
    lines = []
    for r in results:
        if r.result is False:
            mark = _color("FAILED ", "31")
        elif r.result is None or (r.changes and test):
            mark = _color("WOULD  ", "33")
        elif r.changes:
            mark = _color("CHANGED", "32")
        else:
            mark = "ok     "
        lines.append(
            f"{mark} {r.function} {r.id}: {r.comment.splitlines()[0] if r.comment else ''}"
        )
        diff = r.changes.get("diff") if isinstance(r.changes, dict) else None
        if isinstance(diff, str) and diff not in ("New file",):
            for d in diff.splitlines():
                code = "32" if d.startswith("+") else "31" if d.startswith("-") else "0"
                lines.append("    " + _color(d, code))
    failed = sum(1 for r in results if r.result is False)
    changed = sum(1 for r in results if r.changes or r.result is None)
    verb = "would change" if test else "changed"
    lines.append(f"{len(results)} states: {changed} {verb}, {failed} failed")
    return lines


# -- images and the registry ---------------------------------------------------------------


def _registry(args: argparse.Namespace) -> str:
    from .runtime.registry import DEFAULT_ADDRESS

    named = getattr(args, "registry", None)
    return str(named or os.environ.get("SALINE_REGISTRY") or DEFAULT_ADDRESS)


def cmd_registry(args: argparse.Namespace) -> int:
    from .runtime.registry import LocalRegistry

    reg = LocalRegistry.default(args.address or _registry(args))
    if args.action == "start":
        status = reg.start()
    elif args.action == "stop":
        reg.stop()
        status = reg.status()
    else:
        status = reg.status()
    if args.format == "json":
        print(dump(status, "json"))
    else:
        state = _color("running", "32") if status["running"] else _color("stopped", "33")
        print(f"registry {status['address']}: {state}")
        print(f"  data: {status['data']}")
        if status["repositories"]:
            print(f"  repositories: {', '.join(status['repositories'])}")
    return 0 if args.action != "status" or status["running"] else 3


def cmd_images(args: argparse.Namespace) -> int:
    from .images import image_list

    model = _model(args)
    images = image_list(model, _formulas(args, model), _registry(args))
    if args.format == "json":
        print(dump(images, "json"))
    else:
        for i in images:
            print(f"{i['service']:<14} {i['image']}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from .images import build_images

    model = _model(args)
    formulas = _formulas(args, model)

    def progress(line: str) -> None:
        if args.format != "json":
            print(line, file=sys.stderr, flush=True)

    results = build_images(model, formulas, _registry(args), args.push, progress)
    if args.format == "json":
        print(dump([r.__dict__ for r in results], "json"))
    else:
        built = sum(1 for r in results if r.status == "built")
        pushed = sum(1 for r in results if r.pushed)
        total = sum(r.seconds for r in results)
        print(
            f"{len(results)} images: {built} built, {len(results) - built} up to date, "
            f"{pushed} pushed, {total:.1f}s"
        )
    return 0


# -- the local stack ----------------------------------------------------------------------


def _stack(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    from .stack import load_stack

    model = _model(args)
    formulas = _formulas(args, model)
    project = args.stack or os.environ.get("SALINE_STACK") or None
    return load_stack(model, formulas, project), model, formulas


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    def progress(line: str) -> None:
        if args.format != "json":
            print(line, file=sys.stderr, flush=True)

    return progress


def cmd_up(args: argparse.Namespace) -> int:
    import time

    from .stack import up

    stack, model, formulas = _stack(args)
    start = time.monotonic()
    results = up(stack, model, formulas, _registry(args), _progress(args))
    took = time.monotonic() - start
    if args.format == "json":
        data = {
            "project": stack.plan.project,
            "compose_file": stack.compose_file,
            "seconds": round(took, 2),
            "steps": [r.as_dict() for r in results],
        }
        print(dump(data, "json"))
    else:
        services = [r for r in results if r.kind == "service"]
        ran = sum(1 for r in results if r.outcome == "ran")
        print(
            f"stack {stack.plan.project} is up: {len(services)} services healthy, "
            f"{ran} bootstrap task(s) run, {took:.1f} s"
        )
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from .stack import down

    stack, model, _ = _stack(args)
    removed = down(stack, model, args.volumes)
    if args.format == "json":
        print(dump({"project": stack.plan.project, "volumes_removed": removed}, "json"))
    else:
        kept = "" if args.volumes else " (volumes kept; --volumes removes them)"
        print(f"stack {stack.plan.project} is down{kept}")
        for v in removed:
            print(f"  removed volume {v}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .stack import status

    stack, _, _ = _stack(args)
    rows = status(stack)
    if args.format == "json":
        print(dump({"project": stack.plan.project, "services": rows}, "json"))
        return 0
    print(f"{'NAME':<22} {'KIND':<8} {'STATE':<12} {'HEALTH':<10} IMAGE")
    for r in rows:
        state = r["state"]
        color = "32" if state == "running" or state == "exited (0)" else "33"
        health = r["health"]
        hcolor = "32" if health == "healthy" else "31"
        image = r["image"] + ("" if r["current_image"] else "  (not the model's image)")
        print(
            f"{r['name']:<22} {r['kind']:<8} {_color(f'{state:<12}', color)} "
            f"{_color(f'{health:<10}', hcolor) if health else ' ' * 10} {image}"
        )
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from .stack import logs

    stack, _, _ = _stack(args)
    sys.stdout.write(logs(stack, args.service, args.tail))
    return 0


def cmd_compose(args: argparse.Namespace) -> int:
    from .stack import compose_text, write_stack

    stack, model, _ = _stack(args)
    if args.out:
        path = write_stack(stack, model.root, args.out)
        print(f"wrote {path} (pillar files: {os.path.join(stack.directory, 'pillar')})")
        print(f"run it with: podman-compose -f {path} up -d")
    else:
        write_stack(stack, model.root)
        sys.stdout.write(compose_text(stack, model.root))
    return 0


def cmd_openrc(args: argparse.Namespace) -> int:
    from .stack import openrc, openrc_text

    stack, _, _ = _stack(args)
    env = openrc(stack)
    print(dump(env, "json") if args.format == "json" else openrc_text(env), end="")
    if args.format == "json":
        print()
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from .smoke import run_smoke
    from .stack import openrc

    stack, _, _ = _stack(args)
    report = run_smoke(openrc(stack), _progress(args))
    if args.format == "json":
        print(dump(report.as_dict(), "json"))
    else:
        print(f"smoke passed: {len(report.checks)} checks")
    return 0


# -- parser -------------------------------------------------------------------------------


def _add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="DIR",
        default=None,
        help="model folder with classes/ and nodes/ "
        "(default: $SALINE_MODEL, else the current folder)",
    )


def _add_format(
    p: argparse.ArgumentParser, choices: Sequence[str] = FORMATS, default: str = "yaml"
) -> None:
    p.add_argument(
        "--format", choices=choices, default=default, help=f"output format (default: {default})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="saline",
        description="One model of an OpenStack deployment: compile it, explain it, "
        "build and run it.",
        epilog="Run 'saline COMMAND --help' for a command's options. "
        "Docs: docs/ in the repository.",
    )
    parser.add_argument("--version", action="version", version=f"saline {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    model = sub.add_parser(
        "model",
        help="compile and inspect the reclass-style model",
        description="Compile and inspect the model: classes/ and nodes/ (reclass semantics).",
    )
    msub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    msub.required = True

    p = msub.add_parser("nodes", help="list node names", description="List the model's nodes.")
    _add_model_option(p)
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_model_nodes)

    p = msub.add_parser(
        "show",
        help="one node, fully compiled",
        description="Compile one node and print its parameters, classes, applications, "
        "environment and exports (the shape of reclass --nodeinfo).",
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "key",
        metavar="KEY",
        nargs="?",
        help="print only this key (a:b:c, optionally parameters:...)",
    )
    _add_model_option(p)
    _add_format(p)
    p.set_defaults(func=cmd_model_show)

    p = msub.add_parser(
        "inventory",
        help="every node, fully compiled",
        description="Compile every node; the shape of reclass --inventory: nodes, classes, "
        "applications.",
    )
    _add_model_option(p)
    _add_format(p)
    p.set_defaults(func=cmd_model_inventory)

    p = msub.add_parser(
        "explain",
        help="where a value came from",
        description="Show a key's value, the file and line that set it, what it overrode, "
        "and each reference it resolved through, down to where that value was set.",
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "key", metavar="KEY", help="key path a:b:c (optionally parameters:... or exports:...)"
    )
    _add_model_option(p)
    _add_format(p, ("text", "yaml", "json"), "text")
    p.set_defaults(func=cmd_model_explain)

    p = sub.add_parser(
        "render",
        help="render a node's config files with its formulas",
        description="Render every config file each service of NODE would have, with the "
        "formulas' configure states and the node's pillar, into OUT/<service>/<path>. "
        "Nothing is applied. The files hold the node's secrets: they are written mode 0600.",
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument("--service", metavar="S", help="only this service")
    p.add_argument("--out", metavar="DIR", required=True, help="where to write the files")
    _add_model_option(p)
    _add_formulas_option(p)
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser(
        "apply",
        help="run a node's states on a host (Salt masterless or salt-ssh)",
        description="Apply NODE's states (its applications: install, configure and run "
        "each service) to a host with Salt: on this machine (--host local, salt-call "
        "--local) or over SSH (--host ssh://user@host[:port], salt-ssh). With --test, "
        "show what would change (with diffs) and change nothing.",
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument("--host", required=True, metavar="local|ssh://USER@HOST[:PORT]")
    p.add_argument("--test", action="store_true", help="change nothing; show what would change")
    p.add_argument("--states", metavar="SLS[,SLS]", help="only these states (default: highstate)")
    p.add_argument("--ssh-key", metavar="FILE", help="private key for ssh:// hosts")
    p.add_argument(
        "--no-services",
        action="store_true",
        help="install and configure, but start no service (a host without an init system, "
        "such as a container or a chroot)",
    )
    _add_model_option(p)
    _add_formulas_option(p)
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "registry",
        help="run a local image registry",
        description="Start, stop or show Debian's docker-registry on 127.0.0.1:5000 (or "
        "--address), with its data in saline's state folder ($SALINE_STATE_DIR, else "
        "~/.local/state/saline). 'start' does nothing if it runs already. 'status' exits "
        "3 when it is not running.",
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="where it listens (default: $SALINE_REGISTRY, else 127.0.0.1:5000)",
    )
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser(
        "build",
        help="build the model's images (and push them)",
        description="Build, in order, the base image (Debian 12 from mmdebstrap), the Salt "
        "layer, and one image per service the model uses, each running its formula's "
        "install states. Tags are digests of the inputs: an image whose tag exists "
        "locally or in the registry is not rebuilt. Progress goes to stderr.",
    )
    _add_model_option(p)
    _add_formulas_option(p)
    _add_registry_option(p)
    p.add_argument("--push", action="store_true", help="push images the registry lacks")
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "images",
        help="the model's service images (full references)",
        description="List [{service, image}] for every service the model uses, with the "
        "full reference its build has (registry/saline/SERVICE:DIGEST). Builds nothing.",
    )
    _add_model_option(p)
    _add_formulas_option(p)
    _add_registry_option(p)
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_images)

    _add_stack_commands(sub)
    return parser


def _stack_parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    _add_model_option(p)
    _add_formulas_option(p)
    p.add_argument(
        "--stack",
        metavar="NAME",
        help="the stack's (compose project's) name "
        "(default: $SALINE_STACK, else the model folder's name)",
    )
    return p


def _add_stack_commands(sub: Any) -> None:
    p = _stack_parser(
        sub,
        "up",
        "start the model's services on podman (a local stack)",
        "Build missing images, write each node's pillar and the compose file, and start "
        "the stack on podman: one container per model node holding its address, its "
        "services in that node's network, bootstrap tasks as one-shot containers (run "
        "once; again only when their inputs change). Every service starts once what it "
        "depends on is healthy. Running it again converges: what runs and matches the "
        "model is left alone, what is missing, stopped or changed is (re)started. "
        "Progress goes to stderr.",
    )
    _add_registry_option(p)
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_up)

    p = _stack_parser(
        sub,
        "down",
        "stop and remove the local stack",
        "Stop and remove the stack's containers and network. Data volumes are kept "
        "unless --volumes is given.",
    )
    p.add_argument("--volumes", action="store_true", help="also remove the data volumes")
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_down)

    p = _stack_parser(
        sub,
        "status",
        "each part of the local stack: state, health, image",
        "Show every node container, service and bootstrap task of the stack: its state, "
        "its health (checked now) and its image, and whether that is the model's image.",
    )
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_status)

    p = _stack_parser(
        sub,
        "logs",
        "a service's logs",
        "Print the logs of a service or bootstrap task of the stack (as named by "
        "'saline status'), with the model's secrets masked.",
    )
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    p.set_defaults(func=cmd_logs)

    p = _stack_parser(
        sub,
        "compose",
        "write the stack's compose file",
        "Write the compose file of the stack (compose specification), to FILE or stdout, "
        "and each node's pillar file (mode 0600) in saline's state folder, which the "
        "compose file mounts. It also runs with plain 'podman-compose -f FILE up -d'.",
    )
    p.add_argument("--out", metavar="FILE", help="where to write it (default: stdout)")
    p.set_defaults(func=cmd_compose)

    p = _stack_parser(
        sub,
        "openrc",
        "the admin's OS_* shell exports",
        "Print the standard OS_* exports for the stack's admin user, from the model: "
        'eval "$(saline openrc)"; openstack token issue',
    )
    _add_format(p, ("shell", "json"), "shell")
    p.set_defaults(func=cmd_openrc)

    p = _stack_parser(
        sub,
        "smoke",
        "check the running stack with real OpenStack API calls",
        "With openstacksdk and the openrc credentials: issue a token, check the service "
        "catalog, create a project and a user (and get the user a token), upload an image "
        "to glance and download it back with the same checksum, then delete all of it. "
        "Exits non-zero naming the check that failed.",
    )
    _add_format(p, ("text", "json"), "text")
    p.set_defaults(func=cmd_smoke)


def _add_registry_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--registry",
        metavar="HOST:PORT",
        help="image registry (default: $SALINE_REGISTRY, else the local 127.0.0.1:5000)",
    )


def _add_formulas_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--formulas",
        metavar="DIR",
        action="append",
        help="formula folder (repeatable; default: $SALINE_FORMULAS, else MODEL/formulas, "
        "else the formulas shipped with saline)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SalineError as e:
        if os.environ.get("SALINE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(_color("error: ", "31", sys.stderr) + str(e), file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
