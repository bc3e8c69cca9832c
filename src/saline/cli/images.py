"""``saline registry|build|images|outdated``: the model's images, the Debian packages in
them, and the registry they live in."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from typing import Any

from .common import (
    Context,
    add_format,
    add_formulas_option,
    add_model_option,
    add_registry_option,
    command,
)


def cmd_registry(args: argparse.Namespace, ctx: Context) -> int:
    from ..runtime.registry import LocalRegistry

    folder = os.path.join(ctx.settings.state_dir, "registry")
    reg = LocalRegistry(args.address or ctx.settings.registry, folder)
    if args.action == "start":
        status = reg.start()
    elif args.action == "stop":
        reg.stop()
        status = reg.status()
    else:
        status = reg.status()
    if args.format == "json":
        ctx.emit(status, "json")
    else:
        running = status["running"]
        state = ctx.color("running", "32") if running else ctx.color("stopped", "33")
        print(f"registry {status['address']}: {state}", file=ctx.out)
        print(f"  data: {status['data']}", file=ctx.out)
        if status["repositories"]:
            print(f"  repositories: {', '.join(status['repositories'])}", file=ctx.out)
    return 0 if args.action != "status" or status["running"] else 3


def cmd_images(args: argparse.Namespace, ctx: Context) -> int:
    from ..images import image_list

    model = ctx.model()
    images = image_list(model, ctx.formulas(model), ctx.settings.registry, ctx.resolver())
    if args.format == "json":
        ctx.emit(images, "json")
    else:
        for i in images:
            print(f"{i['service']:<14} {i['image']}", file=ctx.out)
    return 0


#: `saline outdated`'s exit code when some image has a later package: for scripts.
EXIT_OUTDATED = 2


def cmd_outdated(args: argparse.Namespace, ctx: Context) -> int:
    from ..lifecycle.patching import outdated
    from ..runtime.podman import Podman

    model = ctx.model()
    settings = ctx.settings
    found = outdated(
        model,
        ctx.formulas(model),
        ctx.resolver(),
        Podman.for_state(settings.state_dir),
        settings.state_dir,
        settings.stack,
    )
    count = sum(len(o.updates) for o in found)
    if args.format == "json":
        ctx.emit(
            {
                "outdated": count,
                "images": [
                    {
                        "service": o.service,
                        "image": o.ref,
                        "source": o.source,
                        "suites": list(o.suites.names),
                        "packages": o.packages,
                        "updates": [
                            {
                                "package": u.name,
                                "installed": u.installed,
                                "candidate": u.candidate,
                                "suite": u.suite,
                                "security": u.security,
                            }
                            for u in o.updates
                        ],
                    }
                    for o in found
                ],
            },
            "json",
        )
        return EXIT_OUTDATED if count else 0
    # Text: one line per package update, with the images that carry it (a base package
    # is in every image).
    where: dict[tuple[str, str, str, str], list[str]] = {}
    for o in found:
        for u in o.updates:
            where.setdefault((u.name, u.installed, u.candidate, u.suite), []).append(o.service)
    if where:
        keys = sorted(where)
        nw, iw, cw, sw = (max(len(k[i]) for k in keys) for i in range(4))
        print(
            f"{'PACKAGE':<{nw}}  {'INSTALLED':<{iw}}  {'CANDIDATE':<{cw}}  {'SUITE':<{sw}}  IMAGES",
            file=ctx.out,
        )
        for key in keys:
            name, installed, candidate, suite = key
            services = where[key]
            shown = "every image" if len(services) == len(found) else ", ".join(services)
            line = f"{name:<{nw}}  {installed:<{iw}}  {candidate:<{cw}}  {suite:<{sw}}  {shown}"
            if suite.endswith("-security"):
                line = ctx.color(line, "31")
            print(line, file=ctx.out)
        security = sum(1 for k in keys if k[3].endswith("-security"))
        images = sorted({s for services in where.values() for s in services})
        print(
            f"{len(keys)} package(s) outdated ({security} from a security suite) in "
            f"{len(images)} of {len(found)} images. `saline build --refresh` takes the later "
            "versions; `saline plan` then shows what changes.",
            file=ctx.out,
        )
    else:
        print(f"{len(found)} images: every package is the latest their suites offer", file=ctx.out)
    return EXIT_OUTDATED if count else 0


def cmd_build(args: argparse.Namespace, ctx: Context) -> int:
    from ..images import build_images

    model = ctx.model()
    results = build_images(
        model,
        ctx.formulas(model),
        ctx.settings,
        push=args.push,
        progress=ctx.progress(args.format),
        resolve=ctx.resolver(refresh=args.refresh),
    )
    if args.format == "json":
        ctx.emit([asdict(r) for r in results], "json")
    else:
        built = sum(1 for r in results if r.status == "built")
        pushed = sum(1 for r in results if r.pushed)
        total = sum(r.seconds for r in results)
        print(
            f"{len(results)} images: {built} built, {len(results) - built} up to date, "
            f"{pushed} pushed, {total:.1f}s",
            file=ctx.out,
        )
    return 0


def register(sub: Any) -> None:
    p = command(
        sub,
        "registry",
        "run a local image registry",
        "Start, stop or show Debian's docker-registry on 127.0.0.1:5000 (or --address), "
        "with its data in saline's state folder ($SALINE_STATE_DIR, else "
        "~/.local/state/saline). 'start' does nothing if it runs already. 'status' exits 3 "
        "when it is not running.",
        cmd_registry,
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="where it listens (default: the registry setting: $SALINE_REGISTRY, else "
        "saline.toml, else 127.0.0.1:5000)",
    )
    add_format(p, ("text", "json"), "text")

    p = command(
        sub,
        "build",
        "build the model's images (and push them)",
        "Build, in order, the base image (Debian 12 from mmdebstrap), the Salt layer, and "
        "one image per service the model uses, each running its formula's install states. "
        "Tags are digests of the inputs: an image whose tag exists locally or in the "
        "registry is not rebuilt. Progress goes to stderr.",
        cmd_build,
    )
    add_model_option(p)
    add_formulas_option(p)
    add_registry_option(p)
    p.add_argument("--push", action="store_true", help="push images the registry lacks")
    p.add_argument(
        "--refresh",
        action="store_true",
        help="resolve every image's packages anew from its Debian suites (after `saline "
        "outdated` found later versions): images whose packages changed get new tags",
    )
    add_format(p, ("text", "json"), "text")

    p = command(
        sub,
        "images",
        "the model's service images (full references)",
        "List every service the model uses with the full reference its build has "
        "(registry/saline/SERVICE:DIGEST); --format json adds the Debian suites it is built "
        "from and the exact packages it adds to its base (name -> version). Builds nothing.",
        cmd_images,
    )
    add_model_option(p)
    add_formulas_option(p)
    add_registry_option(p)
    add_format(p, ("text", "json"), "text")

    p = command(
        sub,
        "outdated",
        "packages of the model's images that have later versions",
        "For each image of the model (the base and each service), the packages it installs "
        "for which its Debian suites (saline:images:suites in the model) now offer a later "
        "version: installed and candidate versions, the suite, and whether it is a "
        "security update. Reads the suites' package lists anew; builds nothing. Exit code "
        f"{EXIT_OUTDATED} when something is outdated, 0 when nothing is.",
        cmd_outdated,
    )
    add_model_option(p)
    add_formulas_option(p)
    add_registry_option(p)
    add_format(p, ("text", "json"), "text")
