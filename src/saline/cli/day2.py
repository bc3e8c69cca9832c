"""Day 2: `saline plan`, `saline apply`, `saline releases`, `saline rollback`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from ..errors import SalineError
from . import kube
from .common import (
    Context,
    add_format,
    add_formulas_option,
    add_model_option,
    add_stack_option,
    command,
    releases_table,
)

#: --detailed-exitcode: 0 no changes, 2 changes, 1 error (terraform's convention).
EXIT_CHANGES = 2


def cmd_plan(args: argparse.Namespace, ctx: Context) -> int:
    try:
        return _plan(args, ctx)
    except SalineError as e:
        if args.detailed_exitcode:
            e.exit_code = 1  # 2 means "changes" here
        raise


def _plan(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_plan(args, ctx)
    from ..lifecycle.desired import desired_release, model_at
    from ..lifecycle.plan import Current, make_plan, plan_markdown, plan_text
    from ..lifecycle.records import observe_stack, write_plan

    root = ctx.model().root
    cache = ctx.settings.cache_dir
    with model_at(root, args.to_rev, cache) as (model, source):
        formulas = ctx.formulas(model)
        desired = desired_release(model, formulas, source, cache, resolve=ctx.resolver())
        if args.from_rev is not None:
            from ..lifecycle.revisions import release_at

            before, pillars = release_at(
                root, args.from_rev, cache, ctx.settings.formulas, ctx.formulas, ctx.resolver()
            )
            current = Current.of_release(before, pillars, f"revision {args.from_rev}")
        else:
            current = observe_stack(ctx.settings, model, formulas, ctx.resolver())
        plan = make_plan(desired.release, current, formulas, desired.pillars, desired.locate)
    if args.out:
        write_plan(args.out, plan)
    if args.format == "json":
        ctx.emit(plan.as_dict(), "json")
    elif args.format == "markdown":
        ctx.out.write(plan_markdown(plan, _plan_title(args)))
    else:
        color = ctx.settings.color and getattr(ctx.out, "isatty", lambda: False)()
        ctx.out.write(plan_text(plan, color=color))
        if args.out:
            print(f"Plan saved to {args.out}: `saline apply {args.out}` runs it.", file=ctx.err)
    if args.detailed_exitcode and not plan.empty:
        return EXIT_CHANGES
    return 0


def _plan_title(args: argparse.Namespace) -> str:
    to = f"revision {args.to_rev}" if args.to_rev else "the model"
    against = f"revision {args.from_rev}" if args.from_rev else "what runs"
    return f"saline plan: {to} against {against}"


def _confirm(ctx: Context, yes: bool) -> None:
    from ..errors import UsageError

    if yes:
        return
    if not (hasattr(ctx.err, "isatty") and sys.stdin.isatty()):
        raise UsageError(
            "apply needs a confirmation and there is no terminal to ask: run `saline apply "
            "--yes`, or save a plan (`saline plan --out FILE`) and run `saline apply FILE`"
        )
    print("Apply these changes? Only 'yes' goes on: ", end="", file=ctx.err, flush=True)
    if sys.stdin.readline().strip() != "yes":
        raise UsageError("apply cancelled: nothing was changed")


def cmd_apply(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_apply(args, ctx)
    from ..lifecycle.deploy import check_plan_file, execute, prepare, unfinished
    from ..lifecycle.desired import model_at
    from ..lifecycle.plan import plan_text
    from ..lifecycle.records import read_plan

    progress = ctx.progress(args.format)
    model = ctx.model()
    data = read_plan(args.plan_file) if args.plan_file else None
    with model_at(model.root, None, ctx.settings.cache_dir) as (model, source):
        formulas = ctx.formulas(model)
        prepared = prepare(ctx.settings, model, formulas, source)
        journal = unfinished(prepared)
        start = time.monotonic()
        if journal is not None:
            progress(f"resuming the apply of release {journal.release} stopped midway")
            outcomes = execute(prepared, ctx.settings, formulas, [], progress, journal)
        else:
            plan = prepared.plan
            if data is not None:
                check_plan_file(data, prepared, args.plan_file)
                steps = list(data["steps"])
            else:
                steps = [s.as_dict() for s in plan.steps]
                if args.format == "text":
                    color = ctx.settings.color and getattr(ctx.out, "isatty", lambda: False)()
                    ctx.out.write(plan_text(plan, color=color))
                if not plan.empty:
                    _confirm(ctx, args.yes)
            if not steps:
                if args.format == "json":
                    ctx.emit({"release": prepared.desired.release.id, "steps": []}, "json")
                return 0
            outcomes = execute(prepared, ctx.settings, formulas, steps, progress)
    took = time.monotonic() - start
    release = prepared.desired.release.id
    if args.format == "json":
        ctx.emit(
            {
                "release": release,
                "resumed": journal is not None,
                "seconds": round(took, 2),
                "steps": [o.as_dict() for o in outcomes],
            },
            "json",
        )
    else:
        done = sum(1 for o in outcomes if o.outcome == "done")
        print(
            f"release {release} applied: {done} step(s) in {took:.1f} s"
            + (" (resumed)" if journal is not None else ""),
            file=ctx.out,
        )
    return 0


def cmd_rollback(args: argparse.Namespace, ctx: Context) -> int:
    """Back to a recorded release: its instances, images and pillars as they were
    recorded when it was applied, planned and applied like any change. Today's model
    gives only the stack's shape (nodes, addresses)."""
    if ctx.settings.target == "kubernetes":
        return kube.kube_rollback(args, ctx)
    from ..lifecycle.deploy import execute, prepare_recorded, rollback_target, unfinished
    from ..lifecycle.plan import plan_text
    from ..lifecycle.records import Records
    from ..stack import default_project

    progress = ctx.progress(args.format)
    model = ctx.model()
    project = ctx.settings.stack or default_project(model)
    records = Records(os.path.join(ctx.settings.state_dir, "stacks", project))
    target = rollback_target(records, args.release)
    formulas = ctx.formulas(model)
    prepared = prepare_recorded(ctx.settings, model, formulas, target)
    # A rollback stopped midway is resumed by the same command (another release's
    # stopped apply is named, and nothing is changed).
    journal = unfinished(prepared)
    start = time.monotonic()
    if journal is not None:
        progress(f"resuming the rollback to release {target} stopped midway")
        execute(prepared, ctx.settings, formulas, [], progress, journal)
        print(f"rolled back to release {target} (resumed)", file=ctx.err)
        return 0
    plan = prepared.plan
    if args.format == "text":
        color = ctx.settings.color and getattr(ctx.out, "isatty", lambda: False)()
        ctx.out.write(plan_text(plan, color=color))
    if plan.empty:
        if args.format == "json":
            ctx.emit({"release": target, "seconds": 0.0, "steps": []}, "json")
        return 0
    _confirm(ctx, args.yes)
    outcomes = execute(
        prepared, ctx.settings, formulas, [s.as_dict() for s in plan.steps], progress
    )
    took = time.monotonic() - start
    if args.format == "json":
        ctx.emit(
            {
                "release": target,
                "seconds": round(took, 2),
                "steps": [o.as_dict() for o in outcomes],
            },
            "json",
        )
    else:
        print(f"rolled back to release {target} in {took:.1f} s", file=ctx.out)
    return 0


def cmd_releases(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.settings.target == "kubernetes":
        return kube.kube_releases(args, ctx)
    from ..lifecycle.records import Records
    from ..stack import default_project

    model = ctx.model()
    project = ctx.settings.stack or default_project(model)
    records = Records(os.path.join(ctx.settings.state_dir, "stacks", project))
    history = records.history()
    current = records.current_id()
    for entry in history:
        entry["current"] = entry.get("id") == current and entry.get("outcome") == "applied"
    if args.format == "json":
        ctx.emit({"stack": project, "current": current, "releases": history}, "json")
        return 0
    if not history:
        print(f"stack {project}: no release recorded yet (`saline up` records one)", file=ctx.out)
        return 0
    ctx.out.write(releases_table(history))
    return 0


def register(sub: Any) -> None:
    r = command(
        sub,
        "releases",
        "list the releases applied to the stack",
        "Every release applied to the stack, oldest first: id, time (UTC), outcome and "
        "the model it came from (folder, git commit). * marks the one running now. With "
        "--target kubernetes: those applied to the namespace (from the records; no "
        "connection).",
        cmd_releases,
    )
    add_model_option(r)
    add_stack_option(r)
    kube.add_target_option(r)
    kube.add_kube_options(r)
    add_format(r, ("text", "json"), "text")
    a = command(
        sub,
        "apply",
        "roll out the model's changes to the running stack",
        "Plan (as `saline plan`), show the plan and ask, then roll it out one instance at "
        "a time in dependency order: each instance behind haproxy is drained, replaced or "
        "reloaded, gated on its health check and a real API call, and made ready again "
        "once haproxy sees it UP. A failed gate restores the previous instance and stops "
        "(exit 1). With PLAN_FILE (from `saline plan --out`), run exactly that plan, and "
        "refuse it if the model or the stack changed since. An apply stopped midway "
        "(killed, Ctrl-C) is resumed by the next `saline apply`. With --target kubernetes: "
        "server-side apply wave by wave (namespace, config, then per dependency wave "
        "StatefulSets, bootstrap Jobs, Deployments, later Jobs; prune through an ApplySet), "
        "each healthy before the next; a wave that fails puts the previous release's "
        "objects back (docs/kubernetes-apply.md).",
        cmd_apply,
    )
    a.add_argument("plan_file", nargs="?", metavar="PLAN_FILE", help="a saved plan to run")
    a.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_model_option(a)
    add_formulas_option(a)
    add_stack_option(a)
    kube.add_target_option(a)
    kube.add_kube_options(a, rollout=True)
    add_format(a, ("text", "json"), "text")
    b = command(
        sub,
        "rollback",
        "go back to an earlier release of the stack",
        "Plan and apply the way back to RELEASE (default: the one applied before the "
        "current one; `saline releases` lists them): the instances, images and pillars "
        "recorded when it was applied (not git), rolled out like any change. Run it "
        "again to resume one stopped midway. With --target kubernetes: the objects "
        "recorded for RELEASE, applied again wave by wave.",
        cmd_rollback,
    )
    b.add_argument("release", nargs="?", metavar="RELEASE")
    b.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_model_option(b)
    add_formulas_option(b)
    add_stack_option(b)
    kube.add_target_option(b)
    kube.add_kube_options(b, rollout=True)
    add_format(b, ("text", "json"), "text")
    p = command(
        sub,
        "plan",
        "show what a model change does to what runs",
        "Compare the model (on disk, or at a git revision with --to) with what runs in the "
        "stack, or with another revision (--from): per service instance the action "
        "(create, replace, restart, reload, none, remove) and why, each changed config "
        "file as a diff with secret values masked, the model values behind it (file:line), "
        "the bootstrap tasks that will run, and the order. Changes nothing. With --target "
        "kubernetes: against the namespace, plus each object the server's dry run says "
        "is created, changed (which fields) or pruned, and the waves.",
        cmd_plan,
    )
    add_model_option(p)
    add_formulas_option(p)
    add_stack_option(p)
    kube.add_target_option(p)
    kube.add_kube_options(p)
    p.add_argument(
        "--from",
        dest="from_rev",
        metavar="REV",
        help="compare with the model at this git revision instead of what runs",
    )
    p.add_argument(
        "--to",
        dest="to_rev",
        metavar="REV",
        help="plan the model at this git revision (default: the model folder as it is)",
    )
    p.add_argument("--out", metavar="FILE", help="save the plan for `saline apply FILE`")
    add_format(p, ("text", "json", "markdown"), "text")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there are no changes, 2 when there are, 1 on an error",
    )
