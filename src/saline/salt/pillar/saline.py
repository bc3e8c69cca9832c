"""Salt ext_pillar: a node's compiled saline model parameters as its pillar.

Master (or minion) configuration::

    ext_pillar:
      - saline:
          model: /srv/model        # the model folder (classes/, nodes/)
          cache_dir: /var/cache/saline   # optional: keep prepared model files here

The minion id is the node name. A minion the model does not know gets no pillar.

``compiled`` (a mapping of node name to compiled parameters) is how saline's renderer
gives a node's pillar in memory (``saline.salt.runner.RenderSession``): a minion named
there gets those parameters and the model is not read. Only the minion it names gets
them; a real master leaves it out.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def __virtual__() -> str:
    return "saline"


def ext_pillar(
    minion_id: str,
    pillar: dict[str, Any],
    model: str | None = None,
    cache_dir: str | None = None,
    compiled: Mapping[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    if isinstance(compiled, Mapping) and minion_id in compiled:
        return copy.deepcopy(compiled[minion_id])

    from saline.errors import ConfigError, NodeNotFoundError
    from saline.model import load_model
    from saline.model.cache import FileCache

    if not model:
        raise ConfigError("the saline ext_pillar needs 'model': the model folder")
    loaded = load_model(model, FileCache.under(cache_dir))
    try:
        params: dict[str, Any] = loaded.node(minion_id).parameters
    except NodeNotFoundError:
        log.warning("saline: node %s is not in the model %s", minion_id, loaded.root)
        return {}
    return params
