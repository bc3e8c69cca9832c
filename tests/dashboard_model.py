"""The example model with the dashboard, built at test time (a copy kept in tests/data
would drift from the example): the example's core profile (identity, images, placement:
tests/tools.py core_example) plus

* ``cluster.openstack.control``: ``system.horizon.server`` and the node's export
  ``horizon_address`` (haproxy's servers), so horizon runs on both controllers;
* ``cluster.openstack.proxy``: ``system.haproxy.proxy.listen.horizon`` (port 80);
* the secret ``horizon_secret_key``;
* with ``nova`` (the default): nova's control services on ctl01 only (the nova
  databases, haproxy's compute API listener): Horizon shows a project's overview and
  instances only where the catalog has a compute service, and only nova can list the
  servers (none here: no compute node).

Every edit asserts that the text it changes is there (release_tools.edit): a change of
the example that breaks one fails here, naming the file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from release_tools import edit
from tools import CLOUD_CLASSES, CLOUD_ROLES, EXAMPLE

EXAMPLE_PREFIX = "10.10.0."
#: The example's secret for Django's SECRET_KEY (50 random characters, as Django's own
#: get_random_secret_key makes them).
SECRET_KEY = "oJ3x5mRk2vQ8tZ1bY7nW4cL9fH6dS0gA3pE2uK8iV5rT1yN7qM"
#: What the controller and proxy roles need for the dashboard (the lines the example's
#: cluster takes once it runs horizon).
HORIZON_CLASS = "  - system.horizon.server\n"
HORIZON_EXPORT = "  horizon_address: ${_param:single_address}\n"
HORIZON_LISTEN = "  - system.haproxy.proxy.listen.horizon\n"
HORIZON_SECRET = f"    horizon_secret_key: {SECRET_KEY}\n"

#: nova's control services on ctl01 (the cloud/ classes as the example's controllers
#: have them, but for one node and only nova).
NOVA_NODE_CLASSES = "  - system.nova.controller\n"
NOVA_EXPORT = """\
exports:
  nova_api_address: ${_param:single_address}
"""
NOVA_PROXY = """\
parameters:
  haproxy:
    proxy:
      listen:
        nova_api:
          binds:
            - address: ${_param:haproxy_bind_address}
              port: 8774
          servers: $[ exports:nova_api_address ]
          port: 8774
          health_check: /
"""
NOVA_DATABASES = """\
parameters:
  mysql:
    server:
      database:
"""
NOVA_DATABASE = """\
        {name}:
          encoding: utf8
          users:
            - name: nova
              password: ${{_secrets:nova_db_password}}
              host: '%'
              rights: all
"""


def dashboard_model(root: Path, *, prefix: str = EXAMPLE_PREFIX, nova: bool = True) -> Path:
    """The example with the dashboard at ``root/model``; its path.

    ``prefix``: the first three octets of every node's address (``10.73.0.``: a stack
    beside the example's); ``nova``: nova's control services on ctl01 (else identity,
    images and placement only: the core profile).
    """
    model = root / "model"
    shutil.copytree(EXAMPLE, model, symlinks=False)
    # The core profile (tests/tools.py core_example): the cloud/ classes emptied, the
    # nodes only the cloud needs gone.
    for cls in sorted((model / CLOUD_CLASSES).glob("*.yml")):
        cls.write_text("# emptied: the core profile (tests/dashboard_model.py)\nparameters: {}\n")
    for node in sorted((model / "nodes").glob("*.yml")):
        classes = yaml.safe_load(node.read_text()).get("classes", [])
        if classes and all(c in CLOUD_ROLES for c in classes):
            node.unlink()
    cluster = model / "classes" / "cluster" / "openstack"
    edit(
        cluster / "control.yml",
        "  - system.placement.server\n",
        "  - system.placement.server\n" + HORIZON_CLASS,
    )
    edit(
        cluster / "control.yml",
        "  placement_api_address: ${_param:single_address}\n",
        "  placement_api_address: ${_param:single_address}\n" + HORIZON_EXPORT,
    )
    edit(
        cluster / "proxy.yml",
        "  - system.haproxy.proxy.openstack\n",
        "  - system.haproxy.proxy.openstack\n" + HORIZON_LISTEN,
    )
    secrets = cluster / "secrets.yml"
    if "horizon_secret_key:" not in secrets.read_text():
        edit(
            secrets,
            "    keystone_admin_password: example-admin\n",
            "    keystone_admin_password: example-admin\n" + HORIZON_SECRET,
        )
    if nova:
        node = model / "nodes" / "ctl01.openstack.local.yml"
        edit(
            node,
            "  - cluster.openstack.control\n",
            "  - cluster.openstack.control\n" + NOVA_NODE_CLASSES,
        )
        node.write_text(node.read_text() + NOVA_EXPORT)
        (model / CLOUD_CLASSES / "proxy.yml").write_text(NOVA_PROXY)
        (model / CLOUD_CLASSES / "database.yml").write_text(
            NOVA_DATABASES
            + "".join(NOVA_DATABASE.format(name=n) for n in ("nova", "nova_api", "nova_cell0"))
        )
    if prefix != EXAMPLE_PREFIX:
        for path in sorted(model.rglob("*.yml")):
            text = path.read_text()
            if EXAMPLE_PREFIX in text:
                path.write_text(text.replace(EXAMPLE_PREFIX, prefix))
    return model
