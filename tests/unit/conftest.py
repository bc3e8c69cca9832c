"""Unit tests ask no Debian archive: every command they run resolves the images'
packages with :func:`tools.fixed_packages` (the real resolver, apt on this machine, is
what the integration tests and every `saline` command they run use)."""

from __future__ import annotations

from typing import Any

import pytest

from tools import fixed_packages


@pytest.fixture(autouse=True)
def _fixed_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import saline.images

    def resolver(*_args: Any, **_kwargs: Any) -> Any:
        return fixed_packages

    monkeypatch.setattr(saline.images, "package_resolver", resolver)
