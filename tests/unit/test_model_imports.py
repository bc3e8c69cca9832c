"""The model engine's modules form layers: no module imports one that imports it back.

Every import counts, including lazy ones inside functions and those under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import saline.model

PACKAGE = Path(saline.model.__file__).parent


def model_imports() -> dict[str, set[str]]:
    """Module name -> the modules of saline.model it imports (anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for f in sorted(PACKAGE.glob("*.py")):
        if f.stem == "__init__":
            continue
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    deps.add(node.module.split(".")[0])
                elif node.level == 1:
                    deps.update(a.name for a in node.names)
                elif node.level == 0 and (node.module or "").startswith("saline.model."):
                    deps.add((node.module or "").split(".")[2])
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("saline.model."):
                        deps.add(a.name.split(".")[2])
        graph[f.stem] = deps - {f.stem}
    return graph


def test_no_import_cycles_in_the_model_engine() -> None:
    graph = model_imports()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path, name])
        if name in done:
            return
        for dep in sorted(graph.get(name, ())):
            visit(dep, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_compile_and_provenance_do_not_import_each_other() -> None:
    graph = model_imports()
    assert "provenance" not in graph["compile"]
    assert "compile" not in graph["provenance"]
    assert "contributions" in graph["compile"] and "contributions" in graph["provenance"]


def test_contributions_stays_available_from_provenance() -> None:
    from saline.model.contributions import contributions
    from saline.model.provenance import contributions as again

    assert again is contributions
