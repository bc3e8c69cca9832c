"""The architecture, enforced: which saline packages may import which.

Planning (model, formulas) is pure and never imports the modules with side effects
(salt, runtime, build); those never import the CLI. A new dependency between layers
is a decision: change ALLOWED here, on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "saline"
BASE = {"errors", "yamlfile", "state", "__init__"}
ALLOWED: dict[str, set[str]] = {
    "model": BASE,
    "formulas": BASE,
    "salt": BASE | {"model"},
    "runtime": BASE,
    "build": BASE | {"formulas", "runtime"},
    "configs": BASE | {"model", "formulas", "salt"},
    "images": BASE | {"model", "formulas", "build", "runtime"},
    "manifests": BASE | {"formulas"},
    "stack": BASE | {"model", "formulas", "manifests", "images", "runtime"},
    "smoke": BASE,
    "cli": {"*"},
}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _saline_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    depth = len(path.relative_to(SRC).parts) - 1  # folders below saline/
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                up = node.level - 1
                if up < depth:
                    continue  # inside its own package
                target = (node.module or "").split(".")[0]
                if target:
                    found.add(target)
                else:  # `from .. import x`: a module, or a name of saline/__init__.py
                    for a in node.names:
                        is_module = (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").exists()
                        found.add(a.name if is_module else "__init__")
            elif node.module and node.module.startswith("saline."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("saline."):
                    found.add(a.name.split(".")[1])
    return found


def test_layers() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        layer = _layer(path)
        allowed = ALLOWED.get(layer, BASE)
        if "*" in allowed:
            continue
        for target in _saline_imports(path) - allowed - {layer}:
            problems.append(f"{path.relative_to(SRC)} imports saline.{target}")
    assert not problems, "\n".join(problems)


def test_the_check_sees_imports() -> None:
    assert "model" in _saline_imports(SRC / "configs.py")
    assert "errors" in _saline_imports(SRC / "model" / "compile.py")
