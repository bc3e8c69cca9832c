"""Formulas: discovery, metadata, and which services a node runs. Pure (reads files only).

A formula folder holds ``formula.yml`` (see :mod:`.schema`) and Salt states
(``install.sls``, ``configure.sls``, ...) with their templates. Formula folders are
found in the directories given (by default the ``formulas/`` folder of the model, else
the ones shipped with saline: :data:`SHIPPED`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import FormulaError, Location
from ..yamlfile import LineFinder
from .schema import BootstrapTask, FormulaMeta, Health, Service

__all__ = [
    "BootstrapTask",
    "Formula",
    "FormulaMeta",
    "FormulaSet",
    "Health",
    "Service",
    "ServiceInstance",
    "default_formula_dirs",
    "endpoint_types",
]

META = "formula.yml"


def _shipped() -> Path:
    """The folder of the formulas shipped with saline.

    The repository keeps them in its top-level ``formulas/`` folder; a wheel carries that
    folder as package data, ``saline/_shipped_formulas/`` (pyproject.toml maps the package
    onto the folder). An installed saline finds them there; a checkout (an editable
    install, or ``src`` on the path) has no such folder and finds ``formulas/`` beside
    ``src/``.
    """
    package = Path(__file__).resolve().parents[1]  # .../saline
    installed = package / "_shipped_formulas"
    if installed.is_dir():
        return installed
    return package.parents[1] / "formulas"  # src/saline -> the repository


#: The formulas shipped with saline.
SHIPPED = _shipped()


def default_formula_dirs(model_root: str | None) -> list[str]:
    """MODEL/formulas when the model has that folder, else saline's shipped formulas.

    Reads no environment variable: formula folders named elsewhere (a flag, a setting)
    are the caller's to pass instead of these."""
    if model_root and os.path.isdir(os.path.join(model_root, "formulas")):
        return [os.path.join(model_root, "formulas")]
    return [str(SHIPPED)]


@dataclass(frozen=True)
class Formula:
    name: str
    root: str  # the formula's folder
    base: str  # the folder of formulas it is in (a Salt file root)
    meta: FormulaMeta
    #: The formulas it uses (formula.yml ``uses``), whose files its images hold too.
    uses: tuple[Formula, ...] = ()

    def files(self) -> list[str]:
        """Every file of the formula, relative to its folder, sorted (for digests)."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and d != "__pycache__"
            )
            for f in sorted(filenames):
                out.append(os.path.relpath(os.path.join(dirpath, f), self.root))
        return out


@dataclass(frozen=True)
class ServiceInstance:
    """A service of a formula that a node runs."""

    node: str
    name: str
    formula: Formula
    spec: Service


def _sls_exists(base: str, sls: str) -> bool:
    rel = sls.replace(".", "/")
    return os.path.isfile(os.path.join(base, rel + ".sls")) or os.path.isfile(
        os.path.join(base, rel, "init.sls")
    )


def _load_formula(base: str, folder: str, lines: LineFinder) -> Formula:
    path = os.path.join(base, folder, META)
    shown = os.path.relpath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise FormulaError(
            f"invalid YAML: {e.problem}", Location(shown, mark.line + 1 if mark else None)
        ) from e
    try:
        meta = FormulaMeta.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        keys = [str(k) for k in first["loc"]]
        line = lines.line(path, keys)
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise FormulaError(
            f"{first['msg']}{more}", Location(shown, line, key=".".join(keys) or None)
        ) from None
    if meta.name != folder:
        raise FormulaError(
            f"name {meta.name!r} must be the folder's name {folder!r}",
            Location(shown, lines.line(path, ["name"]), key="name"),
        )
    # Every state named must have its file: (states, where in formula.yml, key).
    named: list[tuple[list[str], list[str], str]] = []
    if meta.common is not None:
        named.append((meta.common.install, ["common"], "common.install"))
    for lname, layer in meta.layers.items():
        named.append((layer.install, ["layers", lname], f"layers.{lname}.install"))
    for sname, svc in meta.services.items():
        phases: list[tuple[str, list[str]]] = [
            ("install", svc.install),
            ("configure", svc.configure),
        ]
        phases += [(f"bootstrap.{t.name}", t.states) for t in svc.bootstrap]
        if svc.releases is not None:
            phases += [(f"releases.{p}", st) for p, st in svc.releases.phases().items()]
        named += [(st, ["services", sname], f"services.{sname}.{p}") for p, st in phases]
    for states, keys, key in named:
        for sls in states:
            if not _sls_exists(base, sls):
                raise FormulaError(
                    f"state {sls!r} has no file ({sls.replace('.', '/')}.sls or "
                    f"{sls.replace('.', '/')}/init.sls under {os.path.relpath(base)})",
                    Location(shown, lines.line(path, keys), key=key),
                )
    return Formula(meta.name, os.path.join(base, folder), base, meta)


class FormulaSet:
    """All formulas in some folders, validated together (service names, depends)."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = [os.path.abspath(d) for d in dirs]
        self.formulas: dict[str, Formula] = {}
        self.services: dict[str, tuple[Formula, Service]] = {}
        lines = LineFinder()
        for base in self.dirs:
            if not os.path.isdir(base):
                raise FormulaError(f"formula folder {base!r} does not exist")
            for folder in sorted(os.listdir(base)):
                if not os.path.isfile(os.path.join(base, folder, META)):
                    continue
                if folder in self.formulas:
                    continue  # an earlier folder overrides a later one
                self.formulas[folder] = _load_formula(base, folder, lines)
        for name, f in list(self.formulas.items()):
            for used in f.meta.uses:
                if used not in self.formulas or used == name:
                    meta = os.path.join(f.root, META)
                    raise FormulaError(
                        f"formula {name!r} uses formula {used!r}, which "
                        + ("is itself" if used == name else "no formula folder holds"),
                        Location(os.path.relpath(meta), lines.line(meta, ["uses"]), key="uses"),
                    )
            if f.meta.uses:
                self.formulas[name] = replace(f, uses=tuple(self.formulas[u] for u in f.meta.uses))
        for f in self.formulas.values():
            for sname, svc in f.meta.services.items():
                if sname in self.services:
                    other = self.services[sname][0].name
                    raise FormulaError(
                        f"service {sname!r} is provided by formulas {other!r} and {f.name!r}"
                    )
                self.services[sname] = (f, svc)
        for f in self.formulas.values():
            for layer in f.meta.layer_images():
                if layer in self.services:
                    raise FormulaError(
                        f"service {layer!r} of formula {self.services[layer][0].name!r} has "
                        f"the name of one of formula {f.name!r}'s layers: rename it"
                    )
        for sname, (f, svc) in self.services.items():
            lists = [(f"services.{sname}.depends", svc.depends)]
            lists += [
                (f"services.{sname}.bootstrap.{i}.depends", t.depends)
                for i, t in enumerate(svc.bootstrap)
                if t.depends is not None
            ]
            for key, deps in lists:
                for dep in deps:
                    if dep not in self.services:
                        raise FormulaError(
                            f"service {sname!r} depends on unknown service {dep!r}",
                            Location(os.path.relpath(os.path.join(f.root, META)), key=key),
                        )

    def node_services(
        self, node: str, applications: list[str], pillar: dict[str, Any]
    ) -> list[ServiceInstance]:
        """The services a node runs: formulas among its applications whose service pillar
        says ``enabled: true``. Ordered by formula, then service name."""
        out = []
        for app in applications:
            f = self.formulas.get(app)
            if f is None:
                continue
            for sname, svc in sorted(f.meta.services.items()):
                section: Any = pillar
                for key in svc.pillar.split(":"):
                    section = section.get(key) if isinstance(section, dict) else None
                if isinstance(section, dict) and section.get("enabled") is True:
                    out.append(ServiceInstance(node, sname, f, svc))
        return out


def endpoint_types(instances: Iterable[ServiceInstance]) -> list[str]:
    """The service types (``identity``, ``image``...) whose public endpoints these
    service instances register in keystone's catalog (formula.yml ``endpoints``). Pure."""
    return sorted({kind for inst in instances for kind in inst.spec.endpoints})
