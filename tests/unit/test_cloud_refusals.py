"""What the cloud's formulas do not configure is refused at render time, naming the key,
before anything starts: KVM (libvirt gets no /dev/kvm), a cinder backend other than Ceph
RBD (LVM, NFS), and an haproxy listener no node serves (tests/unit/test_haproxy_formula.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from release_tools import edit
from saline.configs import render_nodes
from saline.errors import FormulaError
from saline.formulas import FormulaSet
from saline.model import load_model
from tools import EXAMPLE, FORMULAS

SHIPPED = FormulaSet([str(FORMULAS)])
CTL01 = "ctl01.openstack.local"
CMP01 = "cmp01.openstack.local"
SYSTEM = Path("classes") / "system"


@pytest.mark.parametrize(
    ("cls", "old", "new", "node", "message"),
    [
        (
            "nova/compute.yml",
            "virt_type: qemu",
            "virt_type: kvm",
            CMP01,
            "nova:compute:virt_type is kvm: the nova formula runs QEMU without acceleration",
        ),
        (
            "cinder/volume.yml",
            "engine: rbd",
            "engine: lvm",
            CTL01,
            r"cinder:volume:backend:engine is lvm: the cinder formula configures Ceph RBD "
            r"volumes \(rbd\) only",
        ),
        (
            "cinder/volume.yml",
            "engine: rbd",
            "engine: nfs",
            CTL01,
            "cinder:volume:backend:engine is nfs",
        ),
    ],
)
def test_what_the_formula_cannot_run_is_refused_naming_the_key(
    tmp_path: Path, cls: str, old: str, new: str, node: str, message: str
) -> None:
    model = tmp_path / "model"
    shutil.copytree(EXAMPLE, model, symlinks=False)
    edit(model / SYSTEM / cls, old, new)
    with pytest.raises(FormulaError, match=message) as refused:
        render_nodes(load_model(str(model)), SHIPPED, [node])
    # The message names the template and the node too (the CLI prints it as one line).
    assert ".j2:" in str(refused.value) and node in str(refused.value)


def test_the_example_renders_as_it_is() -> None:
    """The same nodes, unchanged: the refusals are the edits', not the example's."""
    rendered = render_nodes(load_model(str(EXAMPLE)), SHIPPED, [CTL01, CMP01])
    files = {f.path: f.content for sc in rendered[CMP01] for f in sc.files}
    assert "virt_type = qemu" in files["/etc/nova/nova.conf"]
