"""Kubernetes: `saline manifests --target kubernetes --out DIR`, and the day-2 and stack
commands with ``--target kubernetes`` (plan, apply, rollback, releases, status, down,
logs): day2.py and stack.py hand them here. Thin: options and settings in, one library
call (:mod:`saline.lifecycle.kube_deploy`), output."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ..errors import SalineError, UsageError
from ..settings import ACCESS_MODES as ACCESS_MODES
from ..settings import TARGETS, KubeSettings
from .common import (
    Context,
    add_format,
    add_formulas_option,
    add_model_option,
    add_registry_option,
    add_stack_option,
    command,
    releases_table,
)

if TYPE_CHECKING:
    from ..lifecycle.kube_deploy import Target

MANIFEST_TARGETS = ("kubernetes",)


def cmd_manifests(args: argparse.Namespace, ctx: Context) -> int:
    from ..lifecycle.desired import desired_release, model_at
    from ..manifests.kubernetes import (
        FILES,
        SECRETS_FILE,
        KubeOptions,
        kubernetes_manifests,
        manifest_files,
        namespace_name,
    )

    model = ctx.model()
    kube = kube_settings(ctx, args)
    name = namespace_name(ctx.settings.stack or os.path.basename(os.path.abspath(model.root)))
    options = KubeOptions(
        namespace=kube.namespace or name,
        name=name,
        registry=kube.registry or ctx.settings.registry,
        storage_class=kube.storage_class,
        shared_access_mode=kube.shared_access_mode,
    )
    options.check()  # before anything is rendered: a typo costs nothing
    cache = ctx.settings.cache_dir
    with model_at(model.root, None, cache) as (model, source):
        formulas = ctx.formulas(model)
        desired = desired_release(model, formulas, source, cache, resolve=ctx.resolver())
    specs = {service: spec for service, (_, spec) in formulas.services.items()}
    objects = kubernetes_manifests(desired.release, desired.pillars, specs, options, desired.locate)
    files = manifest_files(objects)
    _write(args.out, files, set(FILES.values()), SECRETS_FILE)
    counts: dict[str, int] = {}
    for o in objects:
        counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    if args.format == "json":
        ctx.emit(
            {
                "release": desired.release.id,
                "namespace": options.namespace,
                "out": os.path.abspath(args.out),
                "files": {
                    FILES[kind]: {"kind": kind, "objects": count}
                    for kind, count in sorted(counts.items(), key=lambda kc: FILES[kc[0]])
                },
                "objects": [
                    {"kind": o["kind"], "name": o["metadata"]["name"], "file": FILES[o["kind"]]}
                    for o in objects
                ],
            },
            "json",
        )
    else:
        for kind, count in sorted(counts.items(), key=lambda kc: FILES[kc[0]]):
            print(f"{os.path.join(args.out, FILES[kind])}: {count} {kind}", file=ctx.out)
        print(
            f"release {desired.release.id}: {len(objects)} objects for namespace "
            f"{options.namespace} (apply: kubectl apply --server-side -f {args.out})",
            file=ctx.out,
        )
    return 0


def _write(out: str, files: dict[str, str], ours: set[str], secret: str) -> None:
    """Write each file whole (a temporary file renamed over it), the Secrets' file 0600,
    and remove those of our file names that this model no longer has (a kind with no
    object left), never any other file."""
    try:
        os.makedirs(out, exist_ok=True)
        for name, text in sorted(files.items()):
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(tmp, 0o600 if name == secret else 0o644)
                os.replace(tmp, os.path.join(out, name))
            except BaseException:
                os.unlink(tmp)
                raise
        for name in sorted(ours - set(files)):
            path = os.path.join(out, name)
            if os.path.isfile(path):
                os.remove(path)
    except OSError as e:
        where = e.filename or out
        raise SalineError(f"cannot write the manifests to {out}: {e.strerror}: {where}") from e


# Kubernetes' access modes, the first the default, are settings.ACCESS_MODES (equal to
# manifests.kubernetes.ACCESS_MODES: a unit test keeps them so). Not imported from the
# manifests: building the parser must not load that module, or every command would start
# 0.4 s slower.


# -- --target kubernetes ---------------------------------------------------------------------


def add_target_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--target",
        choices=TARGETS,
        help="where the model runs: compose (the local podman stack) or kubernetes "
        "(default: $SALINE_TARGET, else `target` in saline.toml, else compose)",
    )


def add_kube_options(p: argparse.ArgumentParser, rollout: bool = False) -> None:
    """The Kubernetes options of a command that takes ``--target kubernetes``."""
    g = p.add_argument_group("with --target kubernetes")
    g.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="the cluster's kubeconfig (default: $SALINE_KUBECONFIG, else `kubeconfig` in "
        "saline.toml, else $KUBECONFIG, else ~/.kube/config)",
    )
    g.add_argument(
        "--context",
        dest="kube_context",
        metavar="NAME",
        help="its context (default: $SALINE_KUBE_CONTEXT, else `kube_context`, else the "
        "file's current context)",
    )
    g.add_argument(
        "--namespace",
        dest="kube_namespace",
        metavar="NS",
        help="the namespace (default: $SALINE_KUBE_NAMESPACE, else `kube_namespace`, else "
        "the stack's name, else the model folder's)",
    )
    g.add_argument(
        "--kube-registry",
        dest="kube_registry",
        metavar="HOST:PORT",
        help="the registry the cluster pulls saline's images from (default: "
        "$SALINE_KUBE_REGISTRY, else `kube_registry`, else the registry images are pushed to)",
    )
    _add_storage_options(g)
    if rollout:
        g.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="how long each wave may take to become healthy before the rollout is "
            "rolled back (default: 900)",
        )


def _add_storage_options(p: Any) -> None:
    p.add_argument(
        "--storage-class",
        dest="kube_storage_class",
        metavar="NAME",
        help="StorageClass of every volume claim (default: $SALINE_KUBE_STORAGE_CLASS, else "
        "`kube_storage_class`, else the cluster's default class)",
    )
    p.add_argument(
        "--shared-access-mode",
        dest="kube_shared_access_mode",
        choices=ACCESS_MODES,
        help="access mode of a volume all replicas of a service mount, e.g. glance's "
        f"store (default: {ACCESS_MODES[0]}; ReadWriteOnce suffices on one node)",
    )


_FLAGS = {
    "kubeconfig": "kubeconfig",
    "context": "kube_context",
    "namespace": "kube_namespace",
    "registry": "kube_registry",
    "storage_class": "kube_storage_class",
    "shared_access_mode": "kube_shared_access_mode",
}


def kube_settings(ctx: Context, args: argparse.Namespace) -> KubeSettings:
    """The Kubernetes settings, with this command line's flags over them."""
    given = {
        field: getattr(args, flag)
        for field, flag in _FLAGS.items()
        if getattr(args, flag, None) is not None
    }
    if "kubeconfig" in given:
        given["kubeconfig"] = os.path.abspath(os.path.expanduser(given["kubeconfig"]))
    return dataclasses.replace(ctx.settings.kube, **given)


def kube_target(ctx: Context, args: argparse.Namespace, root: str | None = None) -> Target:
    """Which cluster, namespace and deployment: the settings, the flags, the model
    folder's name."""
    from ..lifecycle.kube_deploy import Target
    from ..manifests.kubernetes import KubeOptions, namespace_name

    kube = kube_settings(ctx, args)
    if root is None:
        root = ctx.settings.model or os.getcwd()
    name = namespace_name(ctx.settings.stack or os.path.basename(os.path.abspath(root)))
    options = KubeOptions(
        namespace=kube.namespace or name,
        name=name,
        registry=kube.registry or ctx.settings.registry,
        storage_class=kube.storage_class,
        shared_access_mode=kube.shared_access_mode,
    )
    options.check()
    # The CLI resolves the default file: nothing below it reads the environment.
    kubeconfig = kube.kubeconfig or os.path.join(os.path.expanduser("~"), ".kube", "config")
    return Target(kubeconfig, kube.context, options)


def _color(ctx: Context) -> bool:
    return ctx.settings.color and bool(getattr(ctx.out, "isatty", lambda: False)())


def kube_plan(args: argparse.Namespace, ctx: Context) -> int:
    """`saline plan --target kubernetes`."""
    from ..lifecycle.desired import desired_release, model_at
    from ..lifecycle.kube_deploy import prepare
    from ..lifecycle.kube_plan import kube_plan_text

    if args.from_rev is not None:
        raise UsageError(
            "--from compares two revisions of the model and needs no cluster: run it "
            "without --target kubernetes (on Kubernetes the plan compares with the cluster)"
        )
    if args.out:
        raise UsageError(
            "--out: saved plans are for the compose stack today; on Kubernetes `saline "
            "apply --target kubernetes` plans again and the server checks every object"
        )
    root = ctx.model().root
    cache = ctx.settings.cache_dir
    target = kube_target(ctx, args, root)
    with model_at(root, args.to_rev, cache) as (model, source):
        formulas = ctx.formulas(model)
        desired = desired_release(model, formulas, source, cache, resolve=ctx.resolver())
        prepared = prepare(ctx.settings.state_dir, target, desired, formulas)
    plan = prepared.plan
    if args.format == "json":
        ctx.emit(plan.as_dict(), "json")
    elif args.format == "markdown":  # the text plan, as a block a review can show
        ctx.out.write("### saline plan (Kubernetes)\n\n```\n" + kube_plan_text(plan) + "```\n")
    else:
        ctx.out.write(kube_plan_text(plan, color=_color(ctx)))
    if args.detailed_exitcode and not plan.empty:
        return 2
    return 0


def _confirm(ctx: Context, yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{what} needs a confirmation and there is no terminal to ask: run it with --yes"
        )
    print("Apply these changes? Only 'yes' goes on: ", end="", file=ctx.err, flush=True)
    if sys.stdin.readline().strip() != "yes":
        raise UsageError(f"{what} cancelled: nothing was changed")


def _timeout(args: argparse.Namespace) -> float:
    from ..lifecycle.kube_deploy import WAVE_TIMEOUT

    value = getattr(args, "timeout", None)
    if value is None:
        return WAVE_TIMEOUT
    if value <= 0:
        raise UsageError(f"--timeout {value}: give a number of seconds above 0")
    return float(value)


def kube_apply(args: argparse.Namespace, ctx: Context) -> int:
    """`saline apply --target kubernetes`."""
    from ..images import build_images
    from ..lifecycle.desired import desired_release, model_at
    from ..lifecycle.journal import Journal
    from ..lifecycle.kube_deploy import execute, prepare
    from ..lifecycle.kube_plan import kube_plan_text

    if args.plan_file:
        raise UsageError(
            "PLAN_FILE: saved plans are for the compose stack today; on Kubernetes `saline "
            "apply --target kubernetes` plans again and the server checks every object"
        )
    timeout = _timeout(args)
    progress = ctx.progress(args.format)
    root = ctx.model().root
    cache = ctx.settings.cache_dir
    target = kube_target(ctx, args, root)
    start = time.monotonic()
    with model_at(root, None, cache) as (model, source):
        formulas = ctx.formulas(model)
        desired = desired_release(model, formulas, source, cache, resolve=ctx.resolver())
        prepared = prepare(ctx.settings.state_dir, target, desired, formulas)
        plan = prepared.plan
        stopped = Journal.load(prepared.records.journal_path)
        if args.format == "text":
            ctx.out.write(kube_plan_text(plan, color=_color(ctx)))
        if plan.empty and stopped is None:
            if args.format == "json":
                ctx.emit({"release": prepared.release.id, "waves": [], "changed": False}, "json")
            return 0
        _confirm(ctx, args.yes, "apply")

        def push() -> None:
            build_images(
                model, formulas, ctx.settings, push=True, progress=progress, resolve=ctx.resolver()
            )

        result = execute(prepared, progress, timeout, push)
    took = time.monotonic() - start
    if args.format == "json":
        ctx.emit({**result.as_dict(), "seconds": round(took, 2), "changed": True}, "json")
    else:
        pruned = f", {len(result.pruned)} pruned" if result.pruned else ""
        print(
            f"release {result.release} applied to namespace {target.namespace}: "
            f"{len(result.waves)} waves in {took:.1f} s{pruned}",
            file=ctx.out,
        )
    return 0


def kube_rollback(args: argparse.Namespace, ctx: Context) -> int:
    """`saline rollback --target kubernetes`: a recorded release's objects, as they were
    applied, planned and rolled out like any change."""
    from ..lifecycle.deploy import rollback_target
    from ..lifecycle.kube_deploy import KubeRecords, execute, prepare_recorded
    from ..lifecycle.kube_plan import kube_plan_text
    from ..runtime.kubernetes import load_kubeconfig

    timeout = _timeout(args)
    progress = ctx.progress(args.format)
    model = ctx.model()
    target = kube_target(ctx, args, model.root)
    server = load_kubeconfig(target.kubeconfig, target.context).cluster.server
    records = KubeRecords(ctx.settings.state_dir, server, target.namespace)
    wanted = rollback_target(records, args.release)
    prepared = prepare_recorded(ctx.settings.state_dir, target, ctx.formulas(model), wanted)
    if args.format == "text":
        ctx.out.write(kube_plan_text(prepared.plan, color=_color(ctx)))
    if prepared.plan.empty:
        if args.format == "json":
            ctx.emit({"release": wanted, "waves": [], "changed": False}, "json")
        return 0
    _confirm(ctx, args.yes, "rollback")
    start = time.monotonic()
    result = execute(prepared, progress, timeout)
    took = time.monotonic() - start
    if args.format == "json":
        ctx.emit({**result.as_dict(), "seconds": round(took, 2), "changed": True}, "json")
    else:
        print(
            f"rolled back namespace {target.namespace} to release {wanted} in {took:.1f} s",
            file=ctx.out,
        )
    return 0


def kube_releases(args: argparse.Namespace, ctx: Context) -> int:
    """`saline releases --target kubernetes` (no connection needed: the records)."""
    from ..lifecycle.kube_deploy import KubeRecords
    from ..runtime.kubernetes import load_kubeconfig

    target = kube_target(ctx, args)
    server = load_kubeconfig(target.kubeconfig, target.context).cluster.server
    records = KubeRecords(ctx.settings.state_dir, server, target.namespace)
    history = records.history()
    current = records.current_id()
    for entry in history:
        entry["current"] = entry.get("id") == current and entry.get("outcome") == "applied"
    where = f"namespace {target.namespace} at {server}"
    if args.format == "json":
        ctx.emit(
            {
                "namespace": target.namespace,
                "server": server,
                "current": current,
                "releases": history,
            },
            "json",
        )
        return 0
    if not history:
        print(f"{where}: no release recorded yet (`saline apply` records one)", file=ctx.out)
        return 0
    print(f"{where}:", file=ctx.out)
    ctx.out.write(releases_table(history))
    return 0


def kube_status(args: argparse.Namespace, ctx: Context) -> int:
    from ..lifecycle.kube_deploy import status

    target = kube_target(ctx, args)
    data = status(target)
    if args.format == "json":
        ctx.emit(data, "json")
        return 0
    if not data["exists"]:
        print(f"namespace {data['namespace']} does not exist at {data['server']}", file=ctx.out)
        return 0
    print(
        f"namespace {data['namespace']} at {data['server']}: release {data['release'] or '?'}",
        file=ctx.out,
    )
    print(f"{'KIND':<12} {'NAME':<40} {'READY':<6} STATE", file=ctx.out)
    for r in data["objects"]:
        code = "32" if r["healthy"] else "31" if r["failed"] else "33"
        print(
            f"{r['kind']:<12} {r['name']:<40} {r['ready']:<6} {ctx.color(r['state'], code)}",
            file=ctx.out,
        )
    return 0


def kube_down(args: argparse.Namespace, ctx: Context) -> int:
    from ..lifecycle.kube_deploy import down

    target = kube_target(ctx, args)
    removed = down(target, args.volumes, ctx.progress(args.format))
    if args.format == "json":
        ctx.emit({"namespace": target.namespace, "removed": removed}, "json")
        return 0
    kept = "" if args.volumes else " (volume claims and the namespace kept; --volumes removes them)"
    print(f"namespace {target.namespace}: {len(removed)} object(s) removed{kept}", file=ctx.out)
    return 0


def kube_logs(args: argparse.Namespace, ctx: Context) -> int:
    from ..lifecycle.kube_deploy import logs

    target = kube_target(ctx, args)
    ctx.out.write(logs(target, args.service, args.tail, set(), ctx.settings.state_dir))
    return 0


def _openrc(args: argparse.Namespace, ctx: Context) -> tuple[dict[str, str], list[str]]:
    """The admin's OS_* variables, and the service types the model's services register."""
    from ..formulas import endpoint_types
    from ..images import services_by_node
    from ..lifecycle.kube_deploy import openrc

    model = ctx.model()
    formulas = ctx.formulas(model)
    services = services_by_node(model, formulas)
    pillars = {n: model.node(n).parameters for n, found in services.items() if found}
    catalog = endpoint_types(s for found in services.values() for s in found)
    return openrc(kube_target(ctx, args, model.root), services, pillars), catalog


def kube_openrc(args: argparse.Namespace, ctx: Context) -> int:
    from ..stack import openrc_text

    env, _ = _openrc(args, ctx)
    if args.format == "json":
        ctx.emit(env, "json")
    else:
        ctx.out.write(openrc_text(env))
    return 0


def kube_smoke(args: argparse.Namespace, ctx: Context) -> int:
    from ..smoke import run_smoke
    from .stack import smoke_clean, smoke_report

    env, catalog = _openrc(args, ctx)
    if args.clean:
        return smoke_clean(args, ctx, env, catalog)
    report = run_smoke(env, ctx.progress(args.format), catalog, keep=args.keep)
    smoke_report(args, ctx, report)
    return 0


def register(sub: Any) -> None:
    p = command(
        sub,
        "manifests",
        help="write the model's Kubernetes manifests",
        description="Compile the model, render every service's config with its formula, "
        "and write the release as Kubernetes objects: one YAML file per kind in DIR, "
        "numbered in the order to apply them (docs/kubernetes-manifests.md). Changes "
        "nothing else.",
        func=cmd_manifests,
    )
    p.add_argument(
        "--target",
        dest="manifest_target",
        choices=MANIFEST_TARGETS,
        required=True,
        help="what the manifests are for",
    )
    p.add_argument("--out", metavar="DIR", required=True, help="folder to write them to")
    p.add_argument(
        "--namespace",
        dest="kube_namespace",
        metavar="NS",
        help="the namespace of every object (default: $SALINE_KUBE_NAMESPACE, else "
        "`kube_namespace`, else the stack's name, else the model folder's)",
    )
    p.add_argument(
        "--kube-registry",
        dest="kube_registry",
        metavar="HOST:PORT",
        help="the registry the cluster pulls from (default: $SALINE_KUBE_REGISTRY, else "
        "`kube_registry`, else the registry images are pushed to)",
    )
    _add_storage_options(p)
    add_model_option(p)
    add_formulas_option(p)
    add_registry_option(p)
    add_stack_option(p)
    add_format(p, ("text", "json"), "text")
