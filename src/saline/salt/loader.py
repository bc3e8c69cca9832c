"""The ``salt.loader`` entry point: where Salt finds saline's pillar and tops modules."""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def salt_dirs() -> dict[str, list[str]]:
    """Loader directories by Salt module type (the new-style entry point)."""
    return {"pillar": [os.path.join(_HERE, "pillar")], "tops": [os.path.join(_HERE, "tops")]}
