"""``saline up|down|status|logs|compose|openrc|smoke``: the local stack on podman."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING, Any

from . import kube
from .common import (
    Context,
    add_format,
    add_formulas_option,
    add_model_option,
    add_registry_option,
    add_stack_option,
    command,
)

if TYPE_CHECKING:
    from ..model import Model
    from ..stack import Stack

# The library is imported by the command that runs (a model command never pays for
# podman's, openstacksdk's or Salt's modules at start-up).


def _stack(ctx: Context) -> tuple[Stack, Model]:
    from ..stack import load_stack

    model = ctx.model()
    formulas = ctx.formulas(model)
    stack = load_stack(
        model, formulas, ctx.settings.stack, ctx.settings.state_dir, resolve=ctx.resolver()
    )
    return stack, model


def _compose_only(ctx: Context, name: str, instead: str) -> None:
    if ctx.settings.target == "kubernetes":
        from ..errors import UsageError

        raise UsageError(
            f"`saline {name}` is for the compose stack (the target is kubernetes): {instead}"
        )


def cmd_up(args: argparse.Namespace, ctx: Context) -> int:
    _compose_only(
        ctx, "up", "on Kubernetes `saline apply --target kubernetes` creates and changes everything"
    )
    from ..lifecycle.deploy import start_stack
    from ..lifecycle.desired import model_at

    start = time.monotonic()
    model = ctx.model()
    with model_at(model.root, None, ctx.settings.cache_dir) as (model, source):
        stack, results = start_stack(
            ctx.settings, model, ctx.formulas(model), source, ctx.progress(args.format)
        )
    took = time.monotonic() - start
    if args.format == "json":
        data = {
            "project": stack.plan.project,
            "compose_file": stack.compose_file,
            "seconds": round(took, 2),
            "steps": [r.as_dict() for r in results],
        }
        ctx.emit(data, "json")
    else:
        services = [r for r in results if r.kind == "service"]
        ran = sum(1 for r in results if r.outcome == "ran")
        print(
            f"stack {stack.plan.project} is up: {len(services)} services healthy, "
            f"{ran} bootstrap task(s) run, {took:.1f} s",
            file=ctx.out,
        )
    return 0


def cmd_down(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_down(args, ctx)
    from ..stack import down

    stack, model = _stack(ctx)
    removed = down(stack, model, args.volumes)
    if args.format == "json":
        ctx.emit({"project": stack.plan.project, "volumes_removed": removed}, "json")
    else:
        kept = "" if args.volumes else " (volumes kept; --volumes removes them)"
        print(f"stack {stack.plan.project} is down{kept}", file=ctx.out)
        for v in removed:
            print(f"  removed volume {v}", file=ctx.out)
    return 0


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_status(args, ctx)
    from ..stack import status

    stack, _ = _stack(ctx)
    rows = status(stack)
    if args.format == "json":
        ctx.emit({"project": stack.plan.project, "services": rows}, "json")
        return 0
    print(f"{'NAME':<22} {'KIND':<8} {'STATE':<12} {'HEALTH':<10} IMAGE", file=ctx.out)
    for r in rows:
        state = r["state"]
        color = "32" if state == "running" or state == "exited (0)" else "33"
        health = r["health"]
        hcolor = "32" if health == "healthy" else "31"
        image = r["image"] + ("" if r["current_image"] else "  (not the model's image)")
        shown_health = ctx.color(f"{health:<10}", hcolor) if health else " " * 10
        print(
            f"{r['name']:<22} {r['kind']:<8} {ctx.color(f'{state:<12}', color)} "
            f"{shown_health} {image}",
            file=ctx.out,
        )
    views = [r for r in rows if "cluster" in r]
    if views:
        print("\nCLUSTERS", file=ctx.out)
        for r in views:
            ok = r["cluster"]["healthy"]
            mark = ctx.color("ok     ", "32") if ok else ctx.color("PROBLEM", "31")
            print(f"{r['name']:<22} {mark} {r['cluster']['summary']}", file=ctx.out)
    return 0


def cmd_logs(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_logs(args, ctx)
    from ..stack import logs

    stack, _ = _stack(ctx)
    ctx.out.write(logs(stack, args.service, args.tail))
    return 0


def cmd_compose(args: argparse.Namespace, ctx: Context) -> int:
    _compose_only(
        ctx, "compose", "`saline manifests --target kubernetes --out DIR` writes the manifests"
    )
    from ..stack import compose_text, write_stack

    stack, model = _stack(ctx)
    if args.out:
        path = write_stack(stack, model.root, args.out)
        if args.format == "json":
            pillar = os.path.join(stack.directory, "pillar")
            ctx.emit({"compose_file": path, "pillar": pillar}, "json")
        else:
            print(
                f"wrote {path} (pillar files: {os.path.join(stack.directory, 'pillar')})",
                file=ctx.out,
            )
            print(f"run it with: podman-compose -f {path} up -d", file=ctx.out)
    else:
        write_stack(stack, model.root)
        if args.format == "json":
            ctx.emit(stack.plan.document, "json")
        else:
            ctx.out.write(compose_text(stack, model.root))
    return 0


def cmd_openrc(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_openrc(args, ctx)
    from ..stack import openrc, openrc_text

    stack, _ = _stack(ctx)
    env = openrc(stack)
    if args.format == "json":
        ctx.emit(env, "json")
    else:
        ctx.out.write(openrc_text(env))
    return 0


def cmd_smoke(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_smoke(args, ctx)
    from ..formulas import endpoint_types
    from ..smoke import Server, run_smoke
    from ..stack import openrc, reach_from_network_node

    stack, _ = _stack(ctx)
    catalog = endpoint_types(s for n in stack.plan.nodes for s in n.services)
    progress = ctx.progress(args.format)
    if args.clean:
        return smoke_clean(args, ctx, openrc(stack), catalog)
    server = None
    if "compute" in catalog:
        # The server it boots: saline's guest (built once, then from its cache).
        from ..guest import guest_for

        guest = guest_for(ctx.settings, progress=progress)
        server = Server(guest.files, guest.description, reach=reach_from_network_node(stack))
    report = run_smoke(openrc(stack), progress, catalog, server, keep=args.keep)
    smoke_report(args, ctx, report)
    return 0


def smoke_report(args: argparse.Namespace, ctx: Context, report: Any) -> None:
    """A passed smoke run's report: JSON, or a line (and what was kept, if asked)."""
    if args.format == "json":
        ctx.emit(report.as_dict(), "json")
        return
    print(f"smoke passed: {len(report.checks)} checks", file=ctx.out)
    for c in report.checks:
        if c.name == "kept":
            print(c.detail, file=ctx.out)


def smoke_clean(args: argparse.Namespace, ctx: Context, env: dict[str, str], catalog: Any) -> int:
    from ..smoke import clean_smoke

    report = clean_smoke(env, ctx.progress(args.format), catalog)
    if args.format == "json":
        ctx.emit(report.as_dict(), "json")
    else:
        print(f"smoke clean: {report.checks[0].detail}", file=ctx.out)
    return 0


def _stack_command(
    sub: Any, name: str, help: str, description: str, func: Any, kubernetes: bool = True
) -> argparse.ArgumentParser:
    p = command(sub, name, help, description, func)
    add_model_option(p)
    add_formulas_option(p)
    add_stack_option(p)
    kube.add_target_option(p)
    if kubernetes:
        kube.add_kube_options(p)
    return p


def register(sub: Any) -> None:
    p = _stack_command(
        sub,
        "up",
        "start the model's services on podman (a local stack)",
        "Build missing images, write each node's pillar and the compose file, and start the "
        "stack on podman: one container per model node holding its address, its services "
        "in that node's network, bootstrap tasks as one-shot containers (run once; again "
        "only when their inputs change). Every service starts once what it depends on is "
        "healthy; every wait is bounded (health: the formula's start period; tasks: their "
        "timeout). Running it again converges: what runs and matches the model is left "
        "alone, what is missing, stopped or changed is (re)started. Ctrl-C stops it and "
        "removes the task it was running. Progress goes to stderr. (On Kubernetes, `saline "
        "apply --target kubernetes` creates everything.)",
        cmd_up,
        kubernetes=False,
    )
    add_registry_option(p)
    add_format(p, ("text", "json"), "text")

    p = _stack_command(
        sub,
        "down",
        "stop and remove the local stack",
        "Stop and remove the stack's containers and network, and its pillar files. Data "
        "volumes are kept unless --volumes is given. With --target kubernetes: delete every "
        "object saline made in the namespace (the ApplySet's members, its parent); volume "
        "claims and the namespace itself only with --volumes.",
        cmd_down,
    )
    p.add_argument(
        "--volumes",
        action="store_true",
        help="also remove the data volumes (Kubernetes: the volume claims and the namespace)",
    )
    add_format(p, ("text", "json"), "text")

    p = _stack_command(
        sub,
        "status",
        "each part of the local stack: state, health, image",
        "Show every node container, service and bootstrap task of the stack: its state, its "
        "health (checked now) and its image, and whether that is the model's image; then, "
        "under CLUSTERS, what each clustered instance sees (Galera's state and size, "
        "RabbitMQ's members and alarms, haproxy's servers, who holds a virtual address). With "
        "--target kubernetes: each StatefulSet, Deployment and Job saline runs in the "
        "namespace, its ready replicas and its rollout state (kubectl's rules).",
        cmd_status,
    )
    add_format(p, ("text", "json"), "text")

    p = _stack_command(
        sub,
        "logs",
        "a service's logs",
        "Print the logs of a service or bootstrap task of the stack (as named by 'saline "
        "status'), with the model's secrets masked. With --target kubernetes: the logs of "
        "every pod (and container) of a workload or Job named by 'saline status'.",
        cmd_logs,
    )
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")

    p = _stack_command(
        sub,
        "compose",
        "write the stack's compose file",
        "Write the compose file of the stack (compose specification), to FILE or stdout, and "
        "each node's pillar file (mode 0600) in saline's state folder, which the compose "
        "file mounts. It also runs with plain 'podman-compose -f FILE up -d'. With --format "
        "json: the document as JSON (or, with --out, where the files are).",
        cmd_compose,
        kubernetes=False,
    )
    p.add_argument("--out", metavar="FILE", help="where to write it (default: stdout)")
    add_format(p, ("yaml", "json"), "yaml")

    p = _stack_command(
        sub,
        "openrc",
        "the admin's OS_* shell exports",
        "Print the standard OS_* exports for the stack's admin user, from the model: "
        'eval "$(saline openrc)"; openstack token issue. With --target kubernetes: an '
        "address that is a Service of the namespace is given as its cluster IP (which this "
        "machine reaches when it is a node of the cluster).",
        cmd_openrc,
    )
    add_format(p, ("shell", "json"), "shell")

    p = _stack_command(
        sub,
        "smoke",
        "check the running stack with real OpenStack API calls",
        "With openstacksdk and the openrc credentials: issue a token, check the service "
        "catalog, create a project and a user (and get the user a token), upload an image to "
        "glance and download it back with the same checksum; where the model runs nova, "
        "boot saline's guest on a network routed to the external one, read its console, "
        "reach it at a floating address and attach a volume (docs/stack.md). Then delete "
        "all of it. Exits non-zero naming the check that failed.",
        cmd_smoke,
    )
    add_format(p, ("text", "json"), "text")
    what = p.add_mutually_exclusive_group()
    what.add_argument(
        "--keep",
        action="store_true",
        help="leave what the checks made (the server, its network, volume and images, "
        "named saline-smoke-*), passed or not, to look at; --clean deletes it later",
    )
    what.add_argument(
        "--clean",
        action="store_true",
        help="run no check: delete every saline-smoke-* resource an earlier run left",
    )
