"""The model's images: which services it uses, their tags, building and pushing them.

Planning is pure (:func:`model_images`); :func:`build_images` drives podman through
:mod:`saline.build.builder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .build.builder import Builder, BuildResult
from .build.graph import ImageSpec, plan_images
from .formulas import Formula, FormulaSet, Service, ServiceInstance
from .formulas.clusters import check_clusters, model_locator
from .model import Model
from .runtime.podman import Podman
from .settings import Settings


def services_by_node(model: Model, formulas: FormulaSet) -> dict[str, list[ServiceInstance]]:
    """Each node's services (formulas among its applications, enabled in its pillar).
    The members of clustered services are checked here (a ModelError naming the file and
    key), so every command that starts or plans something refuses a broken cluster."""
    out = {}
    pillars = {}
    for node in model.node_names():
        compiled = model.node(node)
        pillars[node] = compiled.parameters
        out[node] = formulas.node_services(node, compiled.applications, compiled.parameters)
    check_clusters(out, pillars, model_locator(model))
    return out


def model_services(model: Model, formulas: FormulaSet) -> dict[str, tuple[Formula, Service]]:
    """Every service some node of the model runs, by name."""
    return {
        svc.name: (svc.formula, svc.spec)
        for services in services_by_node(model, formulas).values()
        for svc in services
    }


def model_images(model: Model, formulas: FormulaSet) -> list[ImageSpec]:
    """The build plan for the model's services, in build order. Pure."""
    return plan_images(model_services(model, formulas))


def image_list(model: Model, formulas: FormulaSet, registry: str | None) -> list[dict[str, str]]:
    """``[{service, image}]`` with full references, for scripts."""
    return [
        {"service": s.name, "image": s.ref(registry)}
        for s in model_images(model, formulas)
        if s.kind == "service"
    ]


def build_images(
    model: Model,
    formulas: FormulaSet,
    settings: Settings,
    *,
    push: bool,
    progress: Callable[[str], None],
) -> list[BuildResult]:
    """Build (or pull) what is missing, in order; push to the settings' registry with
    ``push``. The apt cache shared by builds lives in the state folder."""
    builder = Builder(
        Podman.for_state(settings.state_dir),
        settings.registry,
        progress,
        apt_cache_dir=os.path.join(settings.state_dir, "apt-cache"),
        debian=settings.debian,
    )
    return builder.ensure(model_images(model, formulas), push=push)
