"""``saline model nodes|show|inventory|explain``: compile and inspect the model."""

from __future__ import annotations

import argparse
import gc
import json
from typing import Any

from .common import Context, add_format, add_model_option, command


def _without_cycle_collector() -> None:
    """A model command is one short process that builds millions of objects with almost
    no reference cycles: Python's cyclic collector found 5,257 objects to free in a
    1000-node inventory but cost about 12% of its time. Off for this command; ``main``
    turns it back on when the command returns (for callers in the same process).

    The model engine keeps it that way: what it builds is freed by reference counting when
    the command returns. A cycle holding the model would leave its millions of objects to
    the collector's first pass once ``main`` turns it on (most of a second for a 1000-node
    inventory)."""
    gc.disable()


def cmd_nodes(args: argparse.Namespace, ctx: Context) -> int:
    _without_cycle_collector()
    names = ctx.model().node_names()
    if args.format == "json":
        ctx.emit(names, "json")
    else:
        for n in names:
            print(n, file=ctx.out)
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    _without_cycle_collector()
    from ..model.provenance import key_value, parse_key

    data: Any = ctx.model().node(args.node).as_dict()
    if args.key:
        section, path = parse_key(args.key)
        data = key_value(data[section], path, args.node, section)
    ctx.emit(data, args.format)
    return 0


def cmd_inventory(args: argparse.Namespace, ctx: Context) -> int:
    _without_cycle_collector()
    ctx.emit(ctx.model().inventory(), args.format)
    return 0


def cmd_explain(args: argparse.Namespace, ctx: Context) -> int:
    _without_cycle_collector()
    from ..model import explain

    info = explain(ctx.model(), args.node, args.key)
    if args.format in ("json", "yaml"):
        ctx.emit(info, args.format)
    else:
        print("\n".join(render_explain(ctx, info)), file=ctx.out)
    return 0


def render_explain(ctx: Context, info: dict[str, Any], indent: str = "") -> list[str]:
    """Human-readable explanation, one fact per line."""
    lines = []
    value = json.dumps(info["value"], ensure_ascii=False, default=str)
    if len(value) > 100:
        value = value[:97] + "..."
    head = f"{info['key']} = {value}"
    if "ref" in info:
        head = f"{ctx.color(info['ref'], '36')} -> {head}"
    lines.append(indent + ctx.color(head, "1"))
    set_by = info.get("set_by")
    if set_by is None:
        lines.append(indent + "  set by: (no file; computed)")
    else:
        where = f"{set_by['file']}:{set_by['line']}" if set_by.get("line") else set_by["file"]
        via = f" (as part of {info['via_ancestor']})" if "via_ancestor" in info else ""
        lines.append(f"{indent}  set by:   {ctx.color(where, '32')}  {_raw(set_by)}{via}")
    for label, key in (("overrode", "overrode"), ("merged with", "merged_with")):
        for c in info.get(key, []):
            where = f"{c['file']}:{c['line']}" if c.get("line") else c["file"]
            lines.append(f"{indent}  {label + ':':9} {ctx.color(where, '33')}  {_raw(c)}")
    for ref in info.get("references", []):
        lines.append(f"{indent}  through:")
        lines.extend(render_explain(ctx, ref, indent + "    "))
    return lines


def _raw(c: dict[str, Any]) -> str:
    prefix = "~" if c.get("overwrite") else "=" if c.get("constant") else ""
    text = json.dumps(c["value"], ensure_ascii=False, default=str)
    if len(text) > 70:
        text = text[:67] + "..."
    return prefix + text


def register(sub: Any) -> None:
    model = sub.add_parser(
        "model",
        help="compile and inspect the reclass-style model",
        description="Compile and inspect the model: classes/ and nodes/ (reclass semantics).",
    )
    msub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    msub.required = True

    p = command(msub, "nodes", "list node names", "List the model's nodes, sorted.", cmd_nodes)
    add_model_option(p)
    add_format(p, ("text", "json"), "text")

    p = command(
        msub,
        "show",
        "one node, fully compiled",
        "Compile one node and print its parameters, classes, applications, environment and "
        "exports (the shape of reclass --nodeinfo).",
        cmd_show,
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "key",
        metavar="KEY",
        nargs="?",
        help="print only this key (a:b:c, optionally parameters:...)",
    )
    add_model_option(p)
    add_format(p)

    p = command(
        msub,
        "inventory",
        "every node, fully compiled",
        "Compile every node; the shape of reclass --inventory: nodes, classes, applications.",
        cmd_inventory,
    )
    add_model_option(p)
    add_format(p)

    p = command(
        msub,
        "explain",
        "where a value came from",
        "Show a key's value, the file and line that set it, what it overrode, and each "
        "reference it resolved through, down to where that value was set.",
        cmd_explain,
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "key", metavar="KEY", help="key path a:b:c (optionally parameters:... or exports:...)"
    )
    add_model_option(p)
    add_format(p, ("text", "yaml", "json"), "text")
