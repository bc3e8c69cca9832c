"""Config files of a node's services, rendered by their formulas' configure states.

Pure planning (which services, which states) plus one call into :mod:`saline.salt`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import SalineError
from .formulas import FormulaSet, ServiceInstance
from .model import Model
from .salt.runner import RenderedFile, render_files


@dataclass
class ServiceConfigs:
    service: ServiceInstance
    files: list[RenderedFile]


def node_services(model: Model, formulas: FormulaSet, node: str) -> list[ServiceInstance]:
    compiled = model.node(node)
    return formulas.node_services(node, compiled.applications, compiled.parameters)


def render_node(
    model: Model, formulas: FormulaSet, node: str, service: str | None = None
) -> list[ServiceConfigs]:
    """Render the config files of each service of ``node`` (or only ``service``)."""
    services = node_services(model, formulas, node)
    if service is not None:
        chosen = [s for s in services if s.name == service]
        if not chosen:
            have = ", ".join(s.name for s in services) or "none"
            raise SalineError(f"node {node} has no service {service!r} (it has: {have})")
        services = chosen
    out = []
    for svc in services:
        if not svc.spec.configure:
            out.append(ServiceConfigs(svc, []))
            continue
        files = render_files(node, model.root, formulas.dirs, svc.spec.configure)
        out.append(ServiceConfigs(svc, files))
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
