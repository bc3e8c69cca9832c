"""Config files of the nodes' services, rendered by their formulas' configure states.

Pure planning (which services, which states) plus the calls into :mod:`saline.salt`:
each node is rendered once (every service's configure states in one Salt session, with
the node's compiled pillar given in memory), and kept in a render cache keyed by
everything that went in (:mod:`saline.salt.rendercache`), so a node whose pillar did
not change costs no Salt work.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass

from .errors import SalineError
from .formulas import FormulaSet, ServiceInstance
from .model import Model
from .salt.rendercache import RenderCache, formulas_digest, render_key
from .salt.runner import RENDER_GRAINS, RenderedFile, RenderSession

#: The folder beside the model's prepared-file cache that holds rendered config files.
SUBFOLDER = "rendered"


def render_cache_dir(model_cache_dir: str | None) -> str | None:
    """The render cache's folder that goes with the model's prepared-file cache folder
    (``Settings.cache_dir``, ``.../saline/model-files``): ``.../saline/rendered``. None
    (caching off, ``SALINE_NO_CACHE``) stays None."""
    if model_cache_dir is None:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(model_cache_dir)), SUBFOLDER)


@dataclass
class ServiceConfigs:
    service: ServiceInstance
    files: list[RenderedFile]


def node_services(model: Model, formulas: FormulaSet, node: str) -> list[ServiceInstance]:
    compiled = model.node(node)
    return formulas.node_services(node, compiled.applications, compiled.parameters)


def render_nodes(
    model: Model,
    formulas: FormulaSet,
    nodes: Iterable[str] | None = None,
    *,
    cache_dir: str | None = None,
) -> dict[str, list[ServiceConfigs]]:
    """The rendered config files of each service of each node, in service order.

    ``nodes``: the nodes to render (default: every node of the model that runs a service;
    a named node that runs none gets an empty list). Each node is rendered once, all its
    services in one Salt session, with its compiled pillar in memory; Salt's setup is
    shared by the nodes of one call. ``cache_dir``: the render cache's folder (None: no
    cache); a node whose render inputs are unchanged is read from it without Salt.
    """
    if nodes is None:
        chosen = [(n, s) for n in model.node_names() if (s := node_services(model, formulas, n))]
    else:
        chosen = [(n, node_services(model, formulas, n)) for n in nodes]
    return _render(model, formulas, chosen, cache_dir)


def render_node(
    model: Model,
    formulas: FormulaSet,
    node: str,
    service: str | None = None,
    *,
    cache_dir: str | None = None,
) -> list[ServiceConfigs]:
    """Render the config files of each service of ``node`` (or only ``service``)."""
    services = node_services(model, formulas, node)
    if service is not None:
        chosen = [s for s in services if s.name == service]
        if not chosen:
            have = ", ".join(s.name for s in services) or "none"
            raise SalineError(f"node {node} has no service {service!r} (it has: {have})")
        services = chosen
    return _render(model, formulas, [(node, services)], cache_dir)[node]


def _render(
    model: Model,
    formulas: FormulaSet,
    chosen: list[tuple[str, list[ServiceInstance]]],
    cache_dir: str | None,
) -> dict[str, list[ServiceConfigs]]:
    cache = RenderCache(cache_dir) if cache_dir is not None else None
    digest: str | None = None
    out: dict[str, list[ServiceConfigs]] = {}
    with ExitStack() as stack:
        session: RenderSession | None = None
        for node, services in chosen:
            configured = [s for s in services if s.spec.configure]
            if not configured:
                out[node] = [ServiceConfigs(s, []) for s in services]
                continue
            states = [list(s.spec.configure) for s in configured]
            parameters = model.node(node).parameters
            key = None
            found = None
            if cache is not None:
                digest = digest or formulas_digest(formulas.dirs)
                key = render_key(node, parameters, states, RENDER_GRAINS, digest)
                found = cache.get(node, key, len(states))
            if found is None:
                if session is None:
                    session = stack.enter_context(RenderSession(model.root, formulas.dirs))
                found = session.render(node, parameters, states)
                if cache is not None and key is not None:
                    cache.put(node, key, found)
            files = dict(zip((s.name for s in configured), found, strict=True))
            out[node] = [ServiceConfigs(s, files.get(s.name, [])) for s in services]
    return out


def write_tree(out_dir: str, rendered: list[ServiceConfigs]) -> list[str]:
    """Write ``OUT/<service>/<absolute path>``; returns the paths written, sorted."""
    written = []
    for sc in rendered:
        for f in sc.files:
            target = os.path.join(out_dir, sc.service.name, f.path.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as fh:
                fh.write(f.content)
            os.chmod(target, 0o600)  # may hold secrets
            written.append(os.path.relpath(target, out_dir))
    return sorted(written)
