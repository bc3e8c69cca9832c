"""The model engine: reclass-compatible compilation of a model folder, with provenance.

Public API::

    model = load_model("examples/openstack")
    model.node_names()            # ["ctl01", ...]
    model.node("ctl01")           # CompiledNode: parameters, classes, applications, ...
    model.inventory()             # every node, in reclass --inventory's shape
    explain(model, "ctl01", "keystone:server:bind:address")
"""

from .compile import CompiledNode, Model, load_model
from .config import ModelConfig
from .provenance import explain

__all__ = ["CompiledNode", "Model", "ModelConfig", "explain", "load_model"]
