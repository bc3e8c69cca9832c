"""Patching: which packages of the images that run (or would run) have later versions.

`saline outdated` compares, for each service of the model, the packages installed in its
image with what the Debian suites the model now names for it offer:

* the image is the one the stack runs (its current release, recorded by `saline up` and
  `saline apply`) when the stack has one, else the one the model resolves to now;
* the suites are the model's (``saline:images:suites``): switching a model from bookworm
  alone to bookworm with its updates and security suites makes `outdated` name every
  package the new suites carry later versions of, before anything is built.

Reads the suites' package lists anew; builds, pulls and starts nothing (it reads an
image's installed packages with a throwaway container when the image is here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..build.packages import Package, PackageSet, Suites, Update, updates
from ..build.resolve import PackageResolver
from ..formulas import FormulaSet
from ..images import image_suites, model_images
from ..model import Model
from ..runtime.podman import Podman
from ..stack import default_project
from .records import Records


@dataclass(frozen=True)
class Outdated:
    """One service's image, and its packages that have later versions now."""

    service: str
    ref: str
    #: Where the image comes from: "running" (the stack's release) or "model".
    source: str
    suites: Suites
    packages: int
    updates: list[Update]


def _running_images(state_dir: str, project: str) -> dict[str, str]:
    """service -> image reference of the stack's current release (none: no release)."""
    records = Records(os.path.join(state_dir, "stacks", project))
    current = records.current_id()
    if current is None:
        return {}
    release, _pillars = records.load(current)
    return {i.service: f"localhost/{i.image}:{i.image_tag}" for i in release.instances}


def outdated(
    model: Model,
    formulas: FormulaSet,
    resolver: PackageResolver,
    podman: Podman,
    state_dir: str,
    project: str | None,
) -> list[Outdated]:
    """For each service of the model, the packages of its image (the running one, else
    the model's) with later versions in the suites the model names for it."""
    suites = image_suites(model, formulas)
    running = _running_images(state_dir, project or default_project(model))
    have = podman.local_images()
    # The model's own images only where none runs: resolving them may ask the archive
    # (a model whose suites just changed is a new recipe), which a running stack spares.
    specs = {}
    if any(running.get(service) not in have for service in suites):
        specs = {s.name: s for s in model_images(model, formulas, resolver) if s.kind == "service"}
    out = []
    for service in sorted(suites):
        if running.get(service) not in have:
            spec = specs[service]
            ref, source, packages = spec.ref(None), "model", spec.all_packages
        else:
            ref, source = running[service], "running"
            installed = podman.installed_packages(ref)
            rows = []
            for name, version_arch in sorted(installed.items()):
                version, arch = version_arch.rsplit(":", 1)
                rows.append(Package(name, version, arch))
            packages = PackageSet(rows)
        published = resolver.archive(suites[service]).published(packages)
        out.append(
            Outdated(
                service,
                ref,
                source,
                suites[service],
                len(packages),
                updates(packages, published),
            )
        )
    return out
