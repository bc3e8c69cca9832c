"""Salt master_tops: a node's applications in the saline model as its top.

Configuration::

    master_tops:
      saline:
        model: /srv/model
        cache_dir: /var/cache/saline   # optional: keep prepared model files here

The node's ``applications`` are the states applied by a highstate (formula names, whose
``init.sls`` installs, configures and runs the service on a host).
"""

from __future__ import annotations

from typing import Any

__opts__: dict[str, Any] = {}  # injected by the Salt loader


def __virtual__() -> str:
    return "saline"


def top(**kwargs: Any) -> dict[str, list[str]]:
    from saline.errors import ConfigError, NodeNotFoundError
    from saline.model import load_model
    from saline.model.cache import FileCache

    opts = kwargs.get("opts", {})
    minion_id = opts.get("id")
    if not minion_id:
        return {}
    config = __opts__.get("master_tops", {}).get("saline", {}) or {}
    model = config.get("model")
    if not model:
        raise ConfigError("the saline master_tops module needs 'model': the model folder")
    loaded = load_model(model, FileCache.under(config.get("cache_dir")))
    try:
        node = loaded.node(minion_id)
    except NodeNotFoundError:
        return {}
    return {node.environment: list(node.applications)}
