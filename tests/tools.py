"""Helpers shared by the tests.

* :func:`require_tools`: skip a test when a system tool is missing, or fail it where every
  tool must be there (``SALINE_REQUIRE_TOOLS=1``, set by scripts/test and so by CI).
* :func:`example`: what the example model runs with the shipped formulas (nodes, services,
  bootstrap tasks, images), derived from the formulas and the model, so that a new formula
  or node changes no test's literal list.
* :func:`example_stack` and :func:`compose_document`: the example's stack plan and its
  compose document with the machine's paths replaced by placeholders.
* :func:`fixed_packages`: a package resolver that asks no archive (for pure tests: tags
  that never move with Debian's archive).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from saline.build.graph import Recipe
    from saline.build.packages import PackageSet
    from saline.formulas import ServiceInstance
    from saline.stack import Stack

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "openstack"
#: The formulas shipped with saline, as the repository keeps them.
FORMULAS = REPO / "formulas"
#: The example's stack name in tests (the compose project).
PROJECT = "openstack"

REQUIRE_TOOLS = "SALINE_REQUIRE_TOOLS"


def fixed_packages(recipe: Recipe) -> PackageSet:
    """What an image "installs" in pure tests: each package asked for, at version 1.0 from
    the recipe's release suite. Tags (and so goldens) stay put whatever Debian
    publishes; the real resolution (apt) is tested in tests/integration/test_packages.py."""
    from saline.build.packages import Package, PackageSet

    return PackageSet([Package(n, "1.0", "amd64", (recipe.suites.release,)) for n in recipe.names])


def write_model(root: Path, files: dict[str, str]) -> str:
    """A model folder at ``root`` (classes/ and nodes/, even if empty) holding ``files``
    (path relative to the model -> text); returns its path."""
    (root / "classes").mkdir(parents=True, exist_ok=True)
    (root / "nodes").mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(root)


def require_tools(*tools: str) -> None:
    """Skip the calling test (or fixture) when one of ``tools`` is not on PATH; with
    ``SALINE_REQUIRE_TOOLS=1`` fail it instead: there a missing tool is a broken
    install, not a reason to test less."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    what = f"needs {', '.join(missing)}: run scripts/install (it installs them)"
    if os.environ.get(REQUIRE_TOOLS) == "1":
        pytest.fail(f"{what} [{REQUIRE_TOOLS}=1: a missing tool is an error]", pytrace=False)
    pytest.skip(what)


@dataclass(frozen=True)
class Deployment:
    """What a model runs with some formulas, derived from the formulas' metadata and the
    nodes' applications and pillar (not from the stack planner the tests check)."""

    #: The nodes that run at least one service, sorted.
    nodes: tuple[str, ...]
    #: Each of those nodes' services, in the order the formulas list them for the node.
    node_services: dict[str, tuple[str, ...]]
    #: The services the model runs (one image each), sorted.
    services: tuple[str, ...]
    #: Every service instance's name in the stack: the service's name, or SERVICE-NODE
    #: (the node's short name) when several nodes run it. Sorted.
    instances: tuple[str, ...]
    #: Every bootstrap task's name in the stack: INSTANCE-TASK for a task of each
    #: instance (``scope: instance``), SERVICE-TASK for one that runs once for all the
    #: instances of a service (``scope: service``). Sorted.
    tasks: tuple[str, ...]
    #: The services that several nodes run (replicas), sorted.
    replicated: tuple[str, ...] = ()
    #: The formulas' shared layers the services start from (formula.yml common and
    #: layers: ``nova-common``...), sorted.
    layers: tuple[str, ...] = ()

    @property
    def images(self) -> tuple[str, ...]:
        """Every image: the base, the Salt layer, the formulas' shared layers, one per
        service."""
        return ("base", "salt", *self.layers, *self.services)


def deployment(model_dir: Path | str, formula_dirs: list[str]) -> Deployment:
    """What the model at ``model_dir`` runs with the formulas in ``formula_dirs``.

    Every application of every node must be a formula that gives the node a service: a
    formula gone missing (or a service its pillar no longer enables) is an error here,
    never a shorter list that every test derived from it would quietly accept.
    """
    from saline.formulas import FormulaSet
    from saline.model import load_model

    model = load_model(str(model_dir))
    formulas = FormulaSet(formula_dirs)
    per_node = {}
    for node in model.node_names():
        compiled = model.node(node)
        found = formulas.node_services(node, compiled.applications, compiled.parameters)
        idle = set(compiled.applications) - {s.formula.name for s in found}
        if idle:
            raise AssertionError(f"{node}: applications without a service: {sorted(idle)}")
        if found:
            per_node[node] = found
    runs: dict[str, int] = {}
    for found in per_node.values():
        for s in found:
            runs[s.name] = runs.get(s.name, 0) + 1
    instances: list[str] = []
    tasks: set[str] = set()
    for node, found in per_node.items():
        for s in found:
            name = s.name if runs[s.name] == 1 else f"{s.name}-{node.split('.')[0]}"
            instances.append(name)
            for t in s.spec.bootstrap:
                tasks.add(f"{s.name if t.scope == 'service' else name}-{t.name}")
    return Deployment(
        nodes=tuple(sorted(per_node)),
        node_services={n: tuple(s.name for s in found) for n, found in sorted(per_node.items())},
        services=tuple(sorted(runs)),
        instances=tuple(sorted(instances)),
        tasks=tuple(sorted(tasks)),
        replicated=tuple(sorted(s for s, count in runs.items() if count > 1)),
        layers=tuple(sorted(_layers(s for found in per_node.values() for s in found))),
    )


def _layers(instances: Iterable[ServiceInstance]) -> set[str]:
    """The shared layer images (formula.yml common and layers) these services start from."""
    out = set()
    for s in instances:
        meta = s.formula.meta
        if meta.common is not None:
            out.add(meta.common_image())
        if s.spec.layer is not None:
            out.add(meta.layer_image(s.spec.layer))
    return out


#: The example's roles that make it a cloud beyond identity and images: the classes under
#: classes/cluster/openstack/cloud/ (a controller's, the database's and the proxy's share)
#: and the nodes that only the cloud needs (their role classes).
CLOUD_CLASSES = "classes/cluster/openstack/cloud"
CLOUD_ROLES = ("cluster.openstack.compute", "cluster.openstack.storage")


def core_example(root: Path) -> Path:
    """A copy of the example at ``root``/core (made once per folder) with identity and
    images only: the cloud/ classes emptied, the compute node gone. What tests of
    identity-and-image behaviour (and Kubernetes, which runs no compute yet) use."""
    import yaml

    target = root / "core"
    if target.exists():
        return target
    shutil.copytree(EXAMPLE, target, symlinks=True)
    for cls in sorted((target / CLOUD_CLASSES).glob("*.yml")):
        cls.write_text("# emptied: the core profile (tests/tools.py)\nparameters: {}\n")
    for node in sorted((target / "nodes").glob("*.yml")):
        classes = yaml.safe_load(node.read_text()).get("classes", [])
        if classes and all(c in CLOUD_ROLES for c in classes):
            node.unlink()
    return target


@functools.cache
def core() -> Deployment:
    """What the example's core profile (:func:`core_example`) runs: what the shared
    example stack of the integration tests is (identity and images)."""
    import atexit
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="saline-core-"))
    atexit.register(shutil.rmtree, root, True)
    return deployment(core_example(root), [str(FORMULAS)])


@functools.cache
def example() -> Deployment:
    """The example model (examples/openstack) with the shipped formulas."""
    return deployment(EXAMPLE, [str(FORMULAS)])


def example_stack(
    state_dir: str,
    model_dir: Path | str = EXAMPLE,
    formula_dirs: list[str] | None = None,
    project: str = PROJECT,
) -> Stack:
    """The stack plan (pure) of the example model (or a copy of it), with the shipped
    formulas (or others), its files under ``state_dir``. The one place the tests call
    :func:`saline.stack.load_stack`."""
    from saline.formulas import FormulaSet
    from saline.model import load_model
    from saline.stack import load_stack

    formulas = FormulaSet(formula_dirs or [str(FORMULAS)])
    return load_stack(
        load_model(str(model_dir)), formulas, project, state_dir, resolve=fixed_packages
    )


#: The state folder of the golden compose document: a placeholder (nothing is written
#: there). Not a temporary folder: the pillar files' paths are part of each container's
#: inputs digest (its ``saline.inputs`` label), so the folder must be the same every run.
STATE_PLACEHOLDER = "/STATE"
#: What the repository's folder is replaced with (the document's header names the model).
REPO_MARK = "$REPO"


def compose_document() -> str:
    """The text `saline compose` prints for the example model, its state folder
    :data:`STATE_PLACEHOLDER` and the repository's folder replaced by :data:`REPO_MARK`."""
    from saline.stack import compose_text

    text = compose_text(example_stack(STATE_PLACEHOLDER), str(EXAMPLE))
    return text.replace(str(REPO), REPO_MARK)
