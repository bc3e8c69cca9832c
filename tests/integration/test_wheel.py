"""saline as a user installs it: build the wheel, install it into a fresh virtualenv (no
download: the dependencies are the test venv's, without its editable saline), and render
a node of the example model with the formulas the wheel ships.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import pytest

from tools import EXAMPLE, FORMULAS, REPO

pytestmark = pytest.mark.integration

GOLDEN = REPO / "tests" / "data" / "golden" / "openstack"
NODE = "ctl01.openstack.local"
PACKAGED = "saline/_shipped_formulas"


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(cmd)}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}


def _builds_wheels() -> bool:
    """Whether this venv's setuptools builds wheels by itself (70.1 and later, or with the
    wheel package); if not, pip builds in isolation, getting setuptools as pyproject.toml's
    [build-system] says."""
    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except PackageNotFoundError:
        return False
    return (major, minor) >= (70, 1) or (major >= 64 and find_spec("wheel") is not None)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of what a release holds (so the build leaves nothing
    in the work tree)."""
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    for name in ("src", "formulas"):
        shutil.copytree(REPO / name, tree / name, ignore=_ignore)
    dist = tmp_path_factory.mktemp("dist")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(tree)]
    if _builds_wheels():
        cmd.insert(4, "--no-build-isolation")  # offline
    run(cmd)
    (built,) = dist.glob("saline-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed; its dependencies are the test venv's
    packages (linked, so nothing is downloaded), less any saline of the test venv."""
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    python = root / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)])
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run([str(python), "-c", purelib]).strip())
    # The dependencies: a folder of links to the test venv's packages, less its saline
    # (and its .pth files: the editable install's would put the checkout on the path).
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        skip = entry.name.startswith(("saline", "__editable__", "__pycache__"))
        if not skip and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "test-deps.pth").write_text(f"{deps}\n")
    return root


def clean_env(tmp: Path) -> dict[str, str]:
    """No SALINE_* setting of the caller's (formula folders, model...), no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALINE_")}
    env.pop("PYTHONPATH", None)
    return {**env, "SALINE_CACHE_DIR": str(tmp / "cache"), "PYTHONNOUSERSITE": "1"}


def test_the_wheel_holds_every_module_and_every_shipped_formula_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    sources = {
        str(p.relative_to(REPO / "src"))
        for p in (REPO / "src" / "saline").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert sources - names == set()
    shipped = {
        f"{PACKAGED}/{p.relative_to(FORMULAS)}"
        for p in FORMULAS.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert f"{PACKAGED}/keystone/formula.yml" in shipped
    assert {n for n in names if n.startswith(f"{PACKAGED}/")} == shipped


def test_an_installed_saline_renders_with_its_shipped_formulas(venv: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    where = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sys, saline, saline.formulas as f; print(saline.__file__); print(f.SHIPPED);"
            "print(*sys.path, sep='\\n')",
        ],
        env=env,
        cwd=tmp_path,
    ).splitlines()
    package = Path(where[0]).parent
    assert package.is_relative_to(venv)  # the wheel's saline, not the checkout's
    assert Path(where[1]) == package / "_shipped_formulas"
    assert not any(Path(p).resolve().is_relative_to(REPO) for p in where[2:] if p)

    out = tmp_path / "out"
    run(
        [str(venv / "bin" / "saline"), "render", NODE, "--model", str(EXAMPLE), "--out", str(out)],
        env=env,
        cwd=tmp_path,  # away from the repository's saline.toml
    )
    assert files(out) == files(GOLDEN / NODE)
