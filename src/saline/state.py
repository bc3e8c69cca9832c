"""Where saline keeps its state on this machine (registry data, containers.conf, ...)."""

from __future__ import annotations

import os


def state_dir() -> str:
    """$SALINE_STATE_DIR, else $XDG_STATE_HOME/saline, else ~/.local/state/saline."""
    explicit = os.environ.get("SALINE_STATE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "saline")
