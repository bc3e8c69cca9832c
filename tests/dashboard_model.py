"""The example model with the dashboard, built at test time (a copy kept in tests/data
would drift from the example): the example without its compute and storage nodes
(Horizon shows the project's pages only where the catalog has compute and network
services: nova's and neutron's control services stay on the controllers; cinder goes
with the storage node; no server can boot), plus

* ``cluster.openstack.control``: ``system.horizon.server`` and the node's export
  ``horizon_address`` (haproxy's servers), so horizon runs on both controllers;
* ``cluster.openstack.proxy``: ``system.haproxy.proxy.listen.horizon`` (port 80);
* the secret ``horizon_secret_key``.

With ``cloud=False``, the core profile instead (identity, images, placement:
tests/tools.py core_example): the login works, the project's pages do not.

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


def dashboard_model(root: Path, *, prefix: str = EXAMPLE_PREFIX, cloud: bool = True) -> Path:
    """The example with the dashboard at ``root/model``; its path.

    ``prefix``: the first three octets of every node's address (``10.73.0.``: a stack
    beside the example's); ``cloud``: the cloud/ classes kept (nova's and neutron's
    control services), else emptied (the core profile).
    """
    model = root / "model"
    shutil.copytree(EXAMPLE, model, symlinks=False)
    # The nodes only the cloud needs (the compute node) go, as in the core profile
    # (tests/tools.py core_example); without `cloud` its cloud/ classes are emptied too.
    if not cloud:
        for cls in sorted((model / CLOUD_CLASSES).glob("*.yml")):
            cls.write_text(
                "# emptied: the core profile (tests/dashboard_model.py)\nparameters: {}\n"
            )
    for node in sorted((model / "nodes").glob("*.yml")):
        classes = yaml.safe_load(node.read_text()).get("classes", [])
        if classes and all(c in CLOUD_ROLES for c in classes):
            node.unlink()
    cluster = model / "classes" / "cluster" / "openstack"
    if cloud:
        without_cinder(model / CLOUD_CLASSES)
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
    if prefix != EXAMPLE_PREFIX:
        for path in sorted(model.rglob("*.yml")):
            text = path.read_text()
            if EXAMPLE_PREFIX in text:
                path.write_text(text.replace(EXAMPLE_PREFIX, prefix))
    return model


def without_cinder(cloud: Path) -> None:
    """cinder out of the cloud/ classes: its volume service needs the storage node (Ceph),
    which left with the cloud's other nodes; Horizon's pages show no volume service then.
    haproxy's cinder listeners would have no server, and haproxy is healthy only when
    every listener has one."""
    (cloud / "volume.yml").write_text("# emptied: no storage node (tests/dashboard_model.py)\n")
    control = cloud / "control.yml"
    edit(control, "  - system.cinder.controller\n", "")
    edit(control, "  cinder_api_address: ${_param:single_address}\n", "")
    proxy = cloud / "proxy.yml"
    data = yaml.safe_load(proxy.read_text())
    listeners = data["parameters"]["haproxy"]["proxy"]["listen"]
    cinder = [name for name in listeners if name.startswith("cinder")]
    assert cinder, f"{proxy}: no cinder listener in {sorted(listeners)}"
    for name in cinder:
        del listeners[name]
    proxy.write_text(yaml.safe_dump(data, sort_keys=False))
