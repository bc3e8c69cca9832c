"""Secrets in the model: every value under the top-level ``_secrets`` key. Pure.

The pillar refers to them (``${_secrets:keystone_db_password}``), so each secret has one
place in the model and everything derived from it can be found: saline redacts them
from what it prints (Salt's diffs of config files that embed passwords), and later
stages keep them out of images and build logs (install states see no pillar at all).
"""

from __future__ import annotations

from typing import Any

SECRETS_KEY = "_secrets"
MASK = "********"
#: Shorter values are not redacted: masking "a" or "1" everywhere would hide everything.
MIN_LENGTH = 4


def secret_values(parameters: dict[str, Any]) -> set[str]:
    """Every scalar under ``_secrets``, as text."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif v is not None and not isinstance(v, bool):
            text = str(v)
            if len(text) >= MIN_LENGTH:
                found.add(text)

    walk(parameters.get(SECRETS_KEY, {}))
    return found


def redact(value: Any, secrets: set[str]) -> Any:
    """``value`` (text, or dicts and lists of it) with every secret replaced by a mask."""
    if not secrets:
        return value
    if isinstance(value, str):
        for s in sorted(secrets, key=len, reverse=True):
            value = value.replace(s, MASK)
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value
