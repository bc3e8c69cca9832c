"""``saline registry|build|images``: the model's images and the registry they live in."""

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
    images = image_list(model, ctx.formulas(model), ctx.settings.registry)
    if args.format == "json":
        ctx.emit(images, "json")
    else:
        for i in images:
            print(f"{i['service']:<14} {i['image']}", file=ctx.out)
    return 0


def cmd_build(args: argparse.Namespace, ctx: Context) -> int:
    from ..images import build_images

    model = ctx.model()
    results = build_images(
        model,
        ctx.formulas(model),
        ctx.settings,
        push=args.push,
        progress=ctx.progress(args.format),
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
    add_format(p, ("text", "json"), "text")

    p = command(
        sub,
        "images",
        "the model's service images (full references)",
        "List [{service, image}] for every service the model uses, with the full reference "
        "its build has (registry/saline/SERVICE:DIGEST). Builds nothing.",
        cmd_images,
    )
    add_model_option(p)
    add_formulas_option(p)
    add_registry_option(p)
    add_format(p, ("text", "json"), "text")
