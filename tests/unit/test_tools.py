"""The tests' own helpers: a missing tool skips a test, or fails it where tools are required."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools import REQUIRE_TOOLS, require_tools


@pytest.fixture
def path_with_podman(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH holds one folder with one tool: podman."""
    tool = tmp_path / "podman"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(REQUIRE_TOOLS, raising=False)


@pytest.mark.usefixtures("path_with_podman")
def test_tools_that_are_there_let_the_test_run() -> None:
    require_tools("podman")
    require_tools()


@pytest.mark.usefixtures("path_with_podman")
def test_a_missing_tool_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pytest.skip.Exception) as e:
        require_tools("podman", "mmdebstrap", "skopeo")
    assert str(e.value.msg) == "needs mmdebstrap, skopeo: run scripts/install (it installs them)"
    monkeypatch.setenv(REQUIRE_TOOLS, "0")  # only "1" turns skips into failures
    with pytest.raises(pytest.skip.Exception):
        require_tools("mmdebstrap")


@pytest.mark.usefixtures("path_with_podman")
def test_a_missing_tool_fails_where_tools_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_TOOLS, "1")
    with pytest.raises(pytest.fail.Exception) as e:
        require_tools("podman", "mmdebstrap", "skopeo")
    msg = str(e.value.msg)
    assert msg.startswith("needs mmdebstrap, skopeo: run scripts/install")
    assert "SALINE_REQUIRE_TOOLS=1" in msg
    require_tools("podman")  # what is there still passes


def test_scripts_test_requires_every_tool() -> None:
    """The full suite (scripts/test, so CI) fails on a missing tool instead of skipping."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "test"
    lines = [line.strip() for line in script.read_text().splitlines()]
    assert f"export {REQUIRE_TOOLS}=1" in lines
    assert lines.index(f"export {REQUIRE_TOOLS}=1") < next(
        i for i, line in enumerate(lines) if line.startswith("pytest")
    )
    assert os.access(script, os.X_OK)
