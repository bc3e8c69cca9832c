"""The model's images: which services it uses, the Debian suites each is built from,
their tags, building and pushing them.

Planning is pure given a :data:`~saline.build.graph.Resolve` (:func:`model_images`): the
exact package versions in the tags come from it (:func:`package_resolver` for this
machine: records, images, apt). :func:`build_images` drives podman through
:mod:`saline.build.builder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .build.builder import Builder, BuildResult
from .build.graph import ImageSpec, Resolve, plan_images
from .build.packages import Suites, parse_suites
from .build.resolve import PackageResolver
from .errors import ModelError
from .formulas import Formula, FormulaSet, Service, ServiceInstance
from .formulas.clusters import check_clusters, model_locator
from .model import Model, pillar_value
from .runtime.podman import Podman
from .settings import Settings

#: The model's choice of Debian suites: for every image, and per service.
SUITES_KEY = "saline:images:suites"
SERVICE_SUITES_KEY = "saline:images:services:{service}:suites"


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


def image_suites(model: Model, formulas: FormulaSet) -> dict[str, Suites]:
    """The Debian suites of each service's image: ``saline:images:services:NAME:suites``
    where a node running it sets that, else ``saline:images:suites``, else bookworm with
    its updates and security suites. Every node running a service must agree: a
    ModelError names the file and key otherwise (and for a value that is not suites)."""
    locate = model_locator(model)
    chosen: dict[str, tuple[Suites, str]] = {}
    for node, services in services_by_node(model, formulas).items():
        pillar = model.node(node).parameters
        for svc in services:
            key = SERVICE_SUITES_KEY.format(service=svc.name)
            raw = pillar_value(pillar, key)
            if raw is None:
                key, raw = SUITES_KEY, pillar_value(pillar, SUITES_KEY)
            try:
                suites = Suites() if raw is None else parse_suites(raw)
            except ValueError as e:
                raise ModelError(str(e), locate(node, tuple(key.split(":")))) from None
            if svc.spec.releases is not None:
                _check_release(svc, pillar, suites, key, node, locate)
            seen = chosen.setdefault(svc.name, (suites, node))
            if seen[0] != suites:
                raise ModelError(
                    f"the image of {svc.name} is built from {', '.join(suites.names)} here,"
                    f" but from {', '.join(seen[0].names)} on {seen[1]}: every node that"
                    " runs a service runs the same image",
                    locate(node, tuple(key.split(":"))),
                )
    return {name: suites for name, (suites, _node) in chosen.items()}


def _check_release(
    svc: ServiceInstance,
    pillar: Any,
    suites: Suites,
    suites_key: str,
    node: str,
    locate: Callable[[str, tuple[str, ...]], Any],
) -> None:
    """The service's release (its formula's ``releases``) is one its formula supports,
    and its image is built from that release's Debian release."""
    releases = svc.spec.releases
    assert releases is not None
    key = release_key(svc.spec)
    value = pillar_value(pillar, key)
    if value is None:
        raise ModelError(
            f"{svc.name} needs its OpenStack release at {key} (one of: "
            f"{', '.join(releases.debian)})",
            locate(node, tuple(svc.spec.pillar.split(":"))),
        )
    release = str(value)
    if release not in releases.debian:
        raise ModelError(
            f"{release!r} is not an OpenStack release the formula {svc.formula.name} supports "
            f"(it installs: {', '.join(releases.debian)})",
            locate(node, tuple(key.split(":"))),
        )
    debian = releases.debian[release]
    if suites.release != debian:
        raise ModelError(
            f"{svc.name} {release} comes from Debian {debian}, but its image is built from "
            f"{', '.join(suites.names)}: give it {debian}'s suites",
            locate(node, tuple(suites_key.split(":"))),
        )


def release_key(spec: Service) -> str:
    """The pillar path naming the service's OpenStack release (``keystone:server:version``)."""
    assert spec.releases is not None
    return f"{spec.pillar}:{spec.releases.pillar}"


def model_images(model: Model, formulas: FormulaSet, resolve: Resolve) -> list[ImageSpec]:
    """The build plan for the model's services, in build order. Pure but for what
    ``resolve`` does."""
    return plan_images(model_services(model, formulas), resolve, image_suites(model, formulas))


def package_resolver(
    settings: Settings, *, refresh: bool = False, progress: Callable[[str], None] | None = None
) -> PackageResolver:
    """This machine's answer to which packages each image installs (records in the
    state folder, images in podman's store, apt over the model's suites)."""
    return PackageResolver(
        settings.state_dir,
        Podman.for_state(settings.state_dir),
        settings.debian,
        refresh=refresh,
        progress=progress or (lambda _line: None),
    )


def image_list(
    model: Model, formulas: FormulaSet, registry: str | None, resolve: Resolve
) -> list[dict[str, Any]]:
    """Each service's image for scripts: its full reference, the Debian suites it is
    built from, the formula's shared layers it is built on, and the packages it adds to
    saline's base (name -> version; a layered service's own image may add none: nova-api's
    packages are nova-common's)."""
    specs = model_images(model, formulas, resolve)
    by_name = {s.name: s for s in specs}
    rows: list[dict[str, Any]] = []
    for s in specs:
        if s.kind != "service":
            continue
        layers: list[str] = []
        below = by_name[s.parent] if s.parent else None
        while below is not None and below.kind == "common":
            layers.insert(0, below.name)
            below = by_name[below.parent] if below.parent else None
        base = below.all_packages.versions() if below is not None else {}
        rows.append(
            {
                "service": s.name,
                "image": s.ref(registry),
                "suites": list(s.suites.names),
                "layers": layers,
                "packages": {
                    n: v for n, v in s.all_packages.versions().items() if base.get(n) != v
                },
                "package_count": len(s.all_packages),
            }
        )
    return rows


def build_images(
    model: Model,
    formulas: FormulaSet,
    settings: Settings,
    *,
    push: bool,
    progress: Callable[[str], None],
    resolve: Resolve | None = None,
) -> list[BuildResult]:
    """Build (or pull) what is missing, in order; push to the settings' registry with
    ``push``. The apt cache shared by builds lives in the state folder. ``resolve``:
    by default this machine's (:func:`package_resolver`)."""
    builder = Builder(
        Podman.for_state(settings.state_dir),
        settings.registry,
        progress,
        apt_cache_dir=os.path.join(settings.state_dir, "apt-cache"),
        debian=settings.debian,
    )
    resolve = resolve or package_resolver(settings, progress=progress)
    return builder.ensure(model_images(model, formulas, resolve), push=push)
