"""The desired release of a model folder (or of a git revision of it), with what the plan
needs beside it: the nodes' pillars and where each value is set.

Rendering goes through :mod:`saline.configs` (Salt); everything else is pure.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..build.graph import Resolve
from ..configs import render_cache_dir, render_nodes
from ..errors import SalineError
from ..formulas import FormulaSet
from ..images import model_images, services_by_node
from ..model import Model, load_model
from ..model.cache import FileCache
from ..model.provenance import explain
from ..release import Release, Rendered, build_release
from ..runtime import git


@dataclass(frozen=True)
class Desired:
    """A release and the model it came from. A ``recorded`` release (a rollback) was
    made from an earlier model: ``model`` is today's, which only gives the stack's
    shape (nodes and addresses); its values and images are the record's."""

    release: Release
    pillars: dict[str, dict[str, Any]]
    model: Model
    recorded: bool = False

    def locate(self, node: str, key: str) -> tuple[str | None, str | None]:
        """Where ``key`` of ``node`` is set (file:line), and for a value taken from a
        reference, where the value it points at is set."""
        if self.recorded:
            return None, None  # today's model files say nothing of an earlier release
        try:
            found = explain(self.model, node, key)
        except SalineError:
            return None, None
        where = _site(found.get("set_by"))
        origin = None
        refs = found.get("references") or []
        while refs:
            last = refs[-1]
            origin = _site(last.get("set_by")) or origin
            refs = last.get("references") or []
        return where, origin


def _site(entry: Any) -> str | None:
    if not isinstance(entry, dict) or not entry.get("file"):
        return None
    line = entry.get("line")
    return f"{entry['file']}:{line}" if line else str(entry["file"])


def desired_release(
    model: Model,
    formulas: FormulaSet,
    source: dict[str, str] | None = None,
    cache_dir: str | None = None,
    *,
    resolve: Resolve,
) -> Desired:
    """Compile, render every instance's config files, and build the release (its images'
    tags from ``resolve``: which packages each installs).
    ``cache_dir``: the model cache's folder (settings.cache_dir); rendered files are
    cached beside it, so only nodes whose pillar changed are rendered again."""
    services = services_by_node(model, formulas)
    pillars = {n: model.node(n).parameters for n, s in services.items() if s}
    rendered: dict[tuple[str, str], list[Rendered]] = {}
    found = render_nodes(model, formulas, sorted(pillars), cache_dir=render_cache_dir(cache_dir))
    for node, configs in found.items():
        for sc in configs:
            rendered[(node, sc.service.name)] = [
                Rendered(f.path, f.content, f.mode, f.source) for f in sc.files
            ]
    # Last: resolving the images' packages may ask Debian's archive; the model's and the
    # templates' mistakes are reported before that.
    images = {s.name: s for s in model_images(model, formulas, resolve)}
    src = dict(source or {"model": os.path.abspath(model.root)})
    release = build_release(services, pillars, images, rendered, src)
    return Desired(release, pillars, model)


@contextmanager
def model_at(
    root: str, rev: str | None, cache_dir: str | None
) -> Iterator[tuple[Model, dict[str, str]]]:
    """The model folder ``root`` as it is on disk (``rev`` None) or at a git revision;
    with the source record a release keeps."""
    cache = FileCache(cache_dir) if cache_dir else None
    if rev is None:
        source = {"model": os.path.abspath(root)}
        commit = git.head(root)
        if commit:
            source["head"] = commit
        yield load_model(root, cache=cache), source
        return
    with tempfile.TemporaryDirectory(prefix="saline-rev-") as tmp:
        folder, commit = git.export_model(root, rev, tmp)
        yield load_model(folder, cache=cache), {"model": os.path.abspath(root), "revision": commit}
