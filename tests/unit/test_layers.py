"""The architecture, enforced with import-linter (contracts in pyproject.toml).

- layers: cli > stack, smoke > images, configs > build, manifests > salt > runtime >
  formulas > model > settings, output, yamlfile > errors;
- planning (model, formulas, manifests, the build graph, settings, output) never reaches a
  module with side effects, not even through another module;
- subprocess only in the process chokepoint (runtime.process) and the in-image entrypoint;
  Salt only in saline.salt; openstacksdk only in saline.smoke; podman-compose never imported.

import-linter follows every import, including those inside functions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_contracts_hold(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_the_check_sees_a_broken_contract(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A contract the code breaks on purpose (the commands do import the model, through
    a function-level import too) is reported broken: the check can fail."""
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "saline"\ninclude_external_packages = true\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "deliberately wrong"\ntype = "forbidden"\n'
        'source_modules = ["saline.configs", "saline.salt.runner"]\n'
        'forbidden_modules = ["saline.model", "salt"]\n'
    )
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(config), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 1
    assert "saline.configs is not allowed to import saline.model" in out
    assert "saline.salt.runner is not allowed to import salt" in out
