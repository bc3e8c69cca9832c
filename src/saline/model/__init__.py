"""The model engine: reclass-compatible compilation of a model folder, with provenance.

Public API::

    model = load_model("examples/openstack")
    model.node_names()            # ["ctl01", ...]
    model.node("ctl01")           # CompiledNode: parameters, classes, applications, ...
    model.inventory()             # every node, in reclass --inventory's shape
    explain(model, "ctl01", "keystone:server:bind:address")
"""

from collections.abc import Mapping
from typing import Any

from .compile import CompiledNode, Model, load_model
from .config import ModelConfig
from .provenance import explain

__all__ = ["CompiledNode", "Model", "ModelConfig", "explain", "load_model", "pillar_value"]


def pillar_value(pillar: Mapping[str, Any], path: str) -> Any:
    """The value at ``a:b:c`` (salt's pillar path) in a node's compiled parameters, or
    None where the path does not lead."""
    value: Any = pillar
    for key in path.split(":"):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value
