"""Releases of the example model for the day-2 unit tests: the real model and formulas,
with given config files (one per instance: its pillar section as text, what a template of
that section renders). The renderer itself (Salt) is tested in test_render_cache and the
integration tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from saline.build.graph import Resolve
from saline.formulas import FormulaSet
from saline.images import model_images, services_by_node
from saline.model import load_model
from saline.release import Release, Rendered, build_release
from tools import EXAMPLE, FORMULAS, fixed_packages


def rendered_for(services: dict[str, Any], pillars: dict[str, Any]) -> dict[Any, list[Rendered]]:
    """One file per instance whose content is the service's pillar section, as text:
    what a template of that section would render."""
    out = {}
    for node, found in services.items():
        for s in found:
            section: Any = pillars[node]
            for k in s.spec.pillar.split(":"):
                section = section[k]
            text = json.dumps(section, sort_keys=True, indent=1)
            out[(node, s.name)] = [Rendered(f"/etc/{s.name}/{s.name}.conf", text, "0640", "")]
    return out


def release_of(
    model_dir: Path | str = EXAMPLE,
    resolve: Resolve = fixed_packages,
    formulas_dir: Path | str = FORMULAS,
) -> tuple[Release, dict[str, Any]]:
    model = load_model(str(model_dir))
    formulas = FormulaSet([str(formulas_dir)])
    services = {n: s for n, s in services_by_node(model, formulas).items() if s}
    pillars = {n: model.node(n).parameters for n in services}
    images = {s.name: s for s in model_images(model, formulas, resolve)}
    return build_release(services, pillars, images, rendered_for(services, pillars)), pillars


def copy_example(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(EXAMPLE, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))
