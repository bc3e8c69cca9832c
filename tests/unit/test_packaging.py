"""pyproject.toml's package list: explicit (the shipped formulas are a mapped package, see
there), so this checks it against the source tree. tests/integration/test_wheel.py builds
and installs the wheel for real."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
SHIPPED = "saline._shipped_formulas"


def setuptools_config() -> dict[str, Any]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        config: dict[str, Any] = tomllib.load(fh)["tool"]["setuptools"]
    return config


def source_packages() -> set[str]:
    """Every regular package (a folder with __init__.py) under src/saline."""
    return {
        ".".join(init.parent.relative_to(SRC).parts)
        for init in (SRC / "saline").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }


def test_every_package_of_the_source_tree_is_listed() -> None:
    listed = set(setuptools_config()["packages"])
    missing = source_packages() - listed
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    stale = listed - source_packages() - {SHIPPED}
    assert not stale, f"listed in pyproject.toml but not in src/: {sorted(stale)}"


def test_every_module_is_in_a_listed_package_or_package_data() -> None:
    config = setuptools_config()
    listed = set(config["packages"])
    as_data = {
        path
        for pattern in config["package-data"]["saline"]
        for path in (SRC / "saline").glob(pattern)
    }
    for module in (SRC / "saline").rglob("*.py"):
        package = ".".join(module.parent.relative_to(SRC).parts)
        assert package in listed or module in as_data, f"{module.relative_to(REPO)} not shipped"


def test_the_shipped_formulas_are_the_top_level_folder() -> None:
    config = setuptools_config()
    assert config["package-dir"] == {"": "src", SHIPPED: "formulas"}
    assert (REPO / config["package-dir"][SHIPPED] / "keystone" / "formula.yml").is_file()
    assert config["package-data"][SHIPPED] == ["**/*"]
