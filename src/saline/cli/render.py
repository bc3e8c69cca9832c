"""``saline render``: a node's config files, rendered by its formulas. Applies nothing."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .common import Context, add_format, add_formulas_option, add_model_option, command


def cmd_render(args: argparse.Namespace, ctx: Context) -> int:
    from ..configs import render_cache_dir, render_node, write_tree

    model = ctx.model()
    cache_dir = render_cache_dir(ctx.settings.cache_dir)
    rendered = render_node(model, ctx.formulas(model), args.node, args.service, cache_dir=cache_dir)
    written = write_tree(args.out, rendered)
    if args.format == "json":
        ctx.emit({"out": args.out, "files": written}, "json")
    else:
        for sc in rendered:
            print(f"{sc.service.name}: {len(sc.files)} file(s)", file=ctx.out)
            for f in sc.files:
                path = os.path.join(args.out, sc.service.name, f.path.lstrip("/"))
                print(f"  {path}", file=ctx.out)
    return 0


def register(sub: Any) -> None:
    p = command(
        sub,
        "render",
        "render a node's config files with its formulas",
        "Render every config file each service of NODE would have, with the formulas' "
        "configure states and the node's pillar, into OUT/<service>/<path>. Nothing is "
        "applied. The files hold the node's secrets: they are written mode 0600.",
        cmd_render,
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument("--service", metavar="S", help="only this service")
    p.add_argument("--out", metavar="DIR", required=True, help="where to write the files")
    add_model_option(p)
    add_formulas_option(p)
    add_format(p, ("text", "json"), "text")
