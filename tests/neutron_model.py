"""The example model for neutron's own test, built at test time from the example (which
runs neutron: cluster.openstack.cloud.* and the compute node cmp01): optionally without
nova (its classes and haproxy's listeners for it; ``neutron:server:compute:enabled``
false: no port events to send), with one
controller, and on other addresses (a stack beside the example's).

Every edit asserts that the text it changes is there (release_tools.edit): a change of
the example that breaks one fails here, naming the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from release_tools import edit
from tools import EXAMPLE

CMP01 = "cmp01.openstack.local"
#: The compute/network node's address in the example's network.
CMP01_ADDRESS = "10.10.0.50"
EXAMPLE_PREFIX = "10.10.0."

WITHOUT_NOVA = """\
parameters:
  neutron:
    server:
      # No nova in this model: no port events to send it.
      compute:
        enabled: false
"""


def neutron_model(
    root: Path,
    *,
    prefix: str = EXAMPLE_PREFIX,
    controllers: int = 2,
    nova: bool = False,
) -> Path:
    """The example with neutron at ``root/model``; its path.

    ``prefix``: the first three octets of every node's address (``10.61.0.``: a stack
    beside the example's); ``controllers``: 1 keeps ctl01 only (a smaller stack);
    ``nova``: False leaves nova out (and neutron-server says it has none to tell).
    """
    model = root / "model"
    shutil.copytree(EXAMPLE, model, symlinks=False)
    classes = model / "classes" / "cluster" / "openstack"
    if not nova:
        control = classes / "cloud" / "control.yml"
        edit(control, "  - system.nova.controller\n", "")
        edit(control, "  nova_api_address: ${_param:single_address}\n", "")
        control.write_text(control.read_text() + WITHOUT_NOVA)
        edit(classes / "compute.yml", "  - system.nova.compute\n", "")
        # nova's listeners would have no servers, and haproxy is healthy only when every
        # listener has one: the proxy keeps neutron's.
        proxy = classes / "cloud" / "proxy.yml"
        data = yaml.safe_load(proxy.read_text())
        listeners = data["parameters"]["haproxy"]["proxy"]["listen"]
        nova_listeners = [name for name in listeners if name.startswith("nova_")]
        assert nova_listeners, f"{proxy}: no nova listener in {sorted(listeners)}"
        for name in nova_listeners:
            del listeners[name]
        proxy.write_text(yaml.safe_dump(data, sort_keys=False))
    if controllers == 1:
        (model / "nodes" / "ctl02.openstack.local.yml").unlink()
    if prefix != EXAMPLE_PREFIX:
        for path in sorted(model.rglob("*.yml")):
            text = path.read_text()
            if EXAMPLE_PREFIX in text:
                path.write_text(text.replace(EXAMPLE_PREFIX, prefix))
    return model
