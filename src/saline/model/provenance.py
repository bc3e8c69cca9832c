"""Where a value came from: computed on demand, so compiling stays fast.

Which files set a key is :func:`.contributions.contributions` (re-exported here); this
module explains a key: the file that won, the ones it overrode or merged into, and,
for references in the winning value, the same explanation of what they point at, down
to where their values were set.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import ModelError
from .contributions import (
    Contribution,
    MergedSources,
    contributions,
    plain,
    show_raw,
)
from .loader import ModelFiles
from .resolve import Resolver
from .values import OVERWRITE, Expr, FDict, Flagged, Ref

__all__ = [
    "Contribution",
    "ExplainSite",
    "contributions",
    "explain",
    "key_value",
    "parse_key",
    "plain",
    "show_raw",
]

Path = tuple[str, ...]
_MAX_DEPTH = 12


class CompiledValues(Protocol):
    """A compiled node's values (``CompiledNode`` has them)."""

    @property
    def parameters(self) -> dict[str, Any]: ...

    @property
    def exports(self) -> dict[str, Any]: ...


class ExplainSite(Protocol):
    """What :func:`explain` needs from a model (``Model`` has it)."""

    @property
    def files(self) -> ModelFiles: ...

    def merged(self, name: str) -> MergedSources: ...

    def node(self, name: str) -> CompiledValues: ...

    def params_resolver(self, name: str) -> Resolver: ...


def parse_key(key: str) -> tuple[str, Path]:
    parts = tuple(p for p in key.split(":") if p != "")
    if parts and parts[0] in ("parameters", "exports"):
        return parts[0], parts[1:]
    return "parameters", parts


def explain(model: ExplainSite, node: str, key: str) -> dict[str, Any]:
    """Explain ``key`` (``a:b:c``, optionally prefixed ``parameters:`` or ``exports:``)."""
    section, path = parse_key(key)
    if not path:
        raise ModelError("explain needs a key path, e.g. keystone:server:bind:address")
    compiled = model.node(node)
    tree = compiled.parameters if section == "parameters" else compiled.exports
    key_value(tree, path, node, section)
    return _explain(model, node, section, path, tree, set(), 0)


def key_value(tree: Any, path: Path, node: str, section: str) -> Any:
    v = tree
    for i, k in enumerate(path):
        if isinstance(v, dict) and k in v:
            v = v[k]
        elif isinstance(v, list) and k.isdigit() and int(k) < len(v):
            v = v[int(k)]
        else:
            have = sorted(v) if isinstance(v, dict) else []
            hint = f" (it has: {', '.join(map(str, have[:12]))})" if have else ""
            raise ModelError(f"node {node} has no key {section}:{':'.join(path[: i + 1])}{hint}")
    return v


def _explain(
    model: ExplainSite, node: str, section: str, path: Path, tree: Any, seen: set[Path], depth: int
) -> dict[str, Any]:
    value = key_value(tree, path, node, section)
    entry: dict[str, Any] = {"key": ":".join((section, *path)), "value": value}
    found = contributions(model, node, section, path)
    if not found:
        return _explain_via_ancestor(model, node, section, path, entry, seen, depth)
    winner = found[-1]
    entry["set_by"] = winner.as_dict()
    earlier = found[:-1]
    if earlier:
        replaced = winner.flags & OVERWRITE or not isinstance(value, dict | list)
        entry["overrode" if replaced else "merged_with"] = [c.as_dict() for c in reversed(earlier)]
    refs = _follow_refs(model, node, winner.raw, seen, depth)
    if refs:
        entry["references"] = refs
    return entry


def _follow_refs(
    model: ExplainSite, node: str, raw: Any, seen: set[Path], depth: int, suffix: Path = ()
) -> list[dict[str, Any]]:
    """Explain each reference in ``raw`` (``suffix``: keys below the referenced value)."""
    if type(raw) is not Expr or depth >= _MAX_DEPTH:
        return []
    resolver = model.params_resolver(node)
    params = model.node(node).parameters
    out = []
    for part in raw.parts:
        if type(part) is Ref:
            name = resolver.ref_name(part, raw)
            target = (*tuple(name.split(":")), *suffix)
            if target in seen:
                continue
            out.append(
                {"ref": "${" + name + "}"}
                | _explain(model, node, "parameters", target, params, seen | {target}, depth + 1)
            )
    return out


def _explain_via_ancestor(
    model: ExplainSite,
    node: str,
    section: str,
    path: Path,
    entry: dict[str, Any],
    seen: set[Path],
    depth: int,
) -> dict[str, Any]:
    """The key was set as part of an ancestor: a list item, or inside a referenced dict."""
    for cut in range(len(path) - 1, 0, -1):
        anc = contributions(model, node, section, path[:cut])
        if not anc:
            continue
        winner = anc[-1]
        raw = winner.raw
        rest = path[cut:]
        for i, k in enumerate(rest):
            if type(raw) is Flagged:
                raw = raw.value
            t = type(raw)
            if (t is dict or t is FDict) and k in raw:
                raw = raw[k]
            elif t is list and k.isdigit() and int(k) < len(raw):
                raw = raw[int(k)]
            elif _single_ref(raw) is not None:
                # Inside a value copied by reference: explain the same keys at the source.
                entry["set_by"] = winner.as_dict()
                entry["via_ancestor"] = ":".join((section, *path[: cut + i]))
                entry["references"] = _follow_refs(model, node, raw, seen, depth, rest[i:])
                return entry
            else:
                break
        else:
            line = model.files.locate(winner.file, (section, *path))
            entry["set_by"] = Contribution(winner.file, line, raw, winner.flags).as_dict()
            entry["via_ancestor"] = ":".join((section, *path[:cut]))
            refs = _follow_refs(model, node, raw, seen, depth)
            if refs:
                entry["references"] = refs
            return entry
        entry["set_by"] = winner.as_dict()
        entry["via_ancestor"] = ":".join((section, *path[:cut]))
        return entry
    entry["set_by"] = None
    return entry


def _single_ref(raw: Any) -> str | None:
    if type(raw) is Expr and len(raw.parts) == 1 and type(raw.parts[0]) is Ref:
        ref = raw.parts[0]
        if ref.is_simple():
            return str(ref.parts[0])
    return None
