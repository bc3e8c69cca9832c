"""Salt master_tops: a node's applications in the saline model as its top.

Configuration::

    master_tops:
      saline:
        model: /srv/model

The node's ``applications`` are the states applied by a highstate (formula names, whose
``init.sls`` installs, configures and runs the service on a host).
"""

from __future__ import annotations

from typing import Any

__opts__: dict[str, Any] = {}  # injected by the Salt loader


def __virtual__() -> str:
    return "saline"


def top(**kwargs: Any) -> dict[str, list[str]]:
    from saline.errors import NodeNotFoundError
    from saline.model import load_model

    opts = kwargs.get("opts", {})
    minion_id = opts.get("id")
    if not minion_id:
        return {}
    config = __opts__.get("master_tops", {}).get("saline", {}) or {}
    loaded = load_model(config.get("model"))
    try:
        node = loaded.node(minion_id)
    except NodeNotFoundError:
        return {}
    return {node.environment: list(node.applications)}
