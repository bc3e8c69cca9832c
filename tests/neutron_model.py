"""The example model with neutron, built at test time (a copy kept in tests/data would
drift from the example): the example as shipped, plus what running neutron takes of a
deployment's own classes, which the example's cluster will hold once it runs nova too:

* ``cluster.openstack.control``: ``system.neutron.server`` and the node's export
  ``neutron_api_address`` (haproxy's servers);
* ``cluster.openstack.network``, a new role (``system.neutron.compute`` and
  ``system.neutron.gateway``), on a new node ``cmp01`` (an all-in-one compute and network
  node);
* ``cluster.openstack.database``: the ``neutron`` database and its user;
* ``cluster.openstack.proxy``: ``system.haproxy.proxy.listen.neutron``;
* the secrets those classes name;
* without nova: ``neutron:server:compute:enabled`` false (no port events to send).

Every edit asserts that the text it changes is there (release_tools.edit): a change of
the example that breaks one fails here, naming the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from release_tools import edit
from tools import EXAMPLE

CMP01 = "cmp01.openstack.local"
#: The compute/network node's address in the example's network.
CMP01_ADDRESS = "10.10.0.50"
EXAMPLE_PREFIX = "10.10.0."

NETWORK_CLASS = """\
# A network node that is a compute node too (devstack's all-in-one): the L2 agent and
# the DHCP, L3 and metadata agents.
classes:
  - cluster.openstack
  - system.neutron.compute
  - system.neutron.gateway
"""

CMP01_NODE = f"""\
classes:
  - cluster.openstack.network
parameters:
  _param:
    hostname: cmp01
    single_address: {CMP01_ADDRESS}
"""

NEUTRON_DATABASE = """\
        neutron:
          encoding: utf8
          users:
            - name: neutron
              password: ${_secrets:neutron_db_password}
              host: '%'
              rights: all
"""

SECRETS = """\
    neutron_db_password: example-neutron-db
    neutron_keystone_password: example-neutron-service
    neutron_metadata_password: example-neutron-metadata
    nova_keystone_password: example-nova-service
"""

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
    ``nova``: whether neutron-server sends nova port events (a model without nova must
    say it does not).
    """
    model = root / "model"
    shutil.copytree(EXAMPLE, model, symlinks=False)
    classes = model / "classes" / "cluster" / "openstack"
    edit(
        classes / "control.yml",
        "  - system.placement.server\n",
        "  - system.placement.server\n  - system.neutron.server\n",
    )
    edit(
        classes / "control.yml",
        "  placement_api_address: ${_param:single_address}\n",
        "  placement_api_address: ${_param:single_address}\n"
        "  neutron_api_address: ${_param:single_address}\n",
    )
    if not nova:
        path = classes / "control.yml"
        path.write_text(path.read_text() + WITHOUT_NOVA)
    (classes / "network.yml").write_text(NETWORK_CLASS)
    (model / "nodes" / f"{CMP01}.yml").write_text(CMP01_NODE)
    edit(
        classes / "database.yml",
        "        placement:\n",
        NEUTRON_DATABASE + "        placement:\n",
    )
    edit(
        classes / "proxy.yml",
        "  - system.haproxy.proxy.openstack\n",
        "  - system.haproxy.proxy.openstack\n  - system.haproxy.proxy.listen.neutron\n",
    )
    secrets = classes / "secrets.yml"
    have = secrets.read_text()
    # Only those the example does not have yet (a secret twice would be a YAML error).
    missing = "".join(
        line + "\n" for line in SECRETS.splitlines() if line.split(":")[0] + ":" not in have
    )
    edit(
        secrets,
        "    placement_keystone_password: example-placement-service\n",
        "    placement_keystone_password: example-placement-service\n" + missing,
    )
    if controllers == 1:
        (model / "nodes" / "ctl02.openstack.local.yml").unlink()
    if prefix != EXAMPLE_PREFIX:
        for path in sorted(model.rglob("*.yml")):
            text = path.read_text()
            if EXAMPLE_PREFIX in text:
                path.write_text(text.replace(EXAMPLE_PREFIX, prefix))
    return model
