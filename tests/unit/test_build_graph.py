"""The image build graph: tags are digests of inputs. Pure: nothing is built here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from saline.build.graph import plan_images
from saline.errors import FormulaError
from saline.formulas import FormulaSet
from saline.images import image_list
from saline.model import load_model
from tools import example, fixed_packages

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = str(REPO / "examples" / "openstack")


def tags(formula_dir: Path | str) -> dict[str, str]:
    fs = FormulaSet([str(formula_dir)])
    return {s.name: s.tag for s in plan_images(dict(fs.services), fixed_packages)}


def test_order_and_parents() -> None:
    fs = FormulaSet([str(REPO / "formulas")])
    specs = plan_images(dict(fs.services), fixed_packages)
    names = [s.name for s in specs]
    assert names[:2] == ["base", "salt"]
    assert specs[0].parent is None and specs[1].parent == "base"
    # Each formula's own image starts from the Salt layer, or from its shared layers
    # (nova's), which start from it.
    by_name = {s.name: s for s in specs}
    for s in specs[2:]:
        parent = by_name[s.parent or ""]
        assert parent.kind in ("salt", "common"), s.name
        assert specs.index(parent) < specs.index(s)
    layers = {s.name: s.parent for s in specs if s.kind == "common"}
    assert layers["nova-common"] == "salt" and layers["nova-hypervisor"] == "nova-common"
    assert layers["neutron-common"] == "salt"
    assert by_name["nova-compute"].parent == by_name["nova-libvirt"].parent == "nova-hypervisor"
    assert by_name["nova-api"].parent == "nova-common"
    assert layers["ceph-common"] == "salt" and by_name["ceph-osd"].parent == "ceph-common"


def test_same_inputs_same_tags(tmp_path: Path) -> None:
    copy = tmp_path / "formulas"
    shutil.copytree(REPO / "formulas", copy)
    assert tags(REPO / "formulas") == tags(copy)  # where the files live does not matter


def test_changing_one_formula_changes_only_its_images(tmp_path: Path) -> None:
    copy = tmp_path / "formulas"
    shutil.copytree(REPO / "formulas", copy)
    before = tags(copy)
    template = copy / "keystone" / "files" / "keystone.conf.j2"
    template.write_text(template.read_text() + "# one more line\n")
    after = tags(copy)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"keystone"}


def test_a_formula_with_two_services_rebuilds_both(tmp_path: Path) -> None:
    copy = tmp_path / "formulas"
    shutil.copytree(REPO / "formulas", copy)
    meta = copy / "memcached" / "formula.yml"
    text = meta.read_text()
    second = text.split("services:\n", 1)[1].replace("  memcached:", "  memcached-two:", 1)
    meta.write_text(text + second)
    before = tags(copy)
    (copy / "memcached" / "install.sls").write_text(
        (copy / "memcached" / "install.sls").read_text() + "\n# changed\n"
    )
    after = tags(copy)
    assert {n for n in before if before[n] != after[n]} == {"memcached", "memcached-two"}


def _with_common(copy: Path) -> None:
    """memcached with a second service and a common layer holding the package both
    install (as nova's services share python3-nova); each service adds its own."""
    shutil.copytree(REPO / "formulas", copy)
    root = copy / "memcached"
    (root / "common.sls").write_text("memcached_common:\n  pkg.installed:\n    - name: memcached\n")
    (root / "two.sls").write_text("two_tools:\n  pkg.installed:\n    - name: libmemcached-tools\n")
    meta = root / "formula.yml"
    text = meta.read_text()
    second = text.split("services:\n", 1)[1].replace("  memcached:", "  memcached-two:", 1)
    second = second.replace("install: [memcached.install]", "install: [memcached.two]")
    assert "memcached.two" in second, "memcached's formula.yml changed: update this test"
    text = text.replace("services:\n", "common: {install: [memcached.common]}\nservices:\n", 1)
    meta.write_text(text + second)


def test_a_formulas_services_share_its_common_layer(tmp_path: Path) -> None:
    copy = tmp_path / "formulas"
    _with_common(copy)
    fs = FormulaSet([str(copy)])
    specs = {s.name: s for s in plan_images(dict(fs.services), fixed_packages)}
    names = list(specs)
    assert names.index("salt") < names.index("memcached-common") < names.index("memcached")
    common = specs["memcached-common"]
    assert (common.kind, common.parent, common.repository()) == (
        "common",
        "salt",
        "saline/memcached-common",
    )
    assert list(common.packages.versions()) == ["memcached"]
    assert "ENTRYPOINT" not in common.generated["Containerfile"]
    assert json.loads(common.generated["service.json"])["install"] == ["memcached.common"]
    for name, own in (("memcached", "memcached"), ("memcached-two", "libmemcached-tools")):
        assert specs[name].parent == "memcached-common"
        # What it adds to the layer, and every package of the image for the record.
        assert "memcached" in specs[name].all_packages.versions()
        assert own in specs[name].all_packages.versions()
    assert list(specs["memcached-two"].packages.versions()) == ["libmemcached-tools"]
    # Other formulas' services still start from the Salt layer.
    assert specs["keystone"].parent == "salt"
    # A change to the common layer's states rebuilds the layer and every service on it.
    before = tags(copy)
    (copy / "memcached" / "common.sls").write_text(
        (copy / "memcached" / "common.sls").read_text() + "# changed\n"
    )
    after = tags(copy)
    assert {n for n in before if before[n] != after[n]} == {
        "memcached-common",
        "memcached",
        "memcached-two",
    }


def test_a_named_layer_sits_on_the_common_one_for_the_services_naming_it(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "formulas"
    _with_common(copy)
    root = copy / "memcached"
    meta = root / "formula.yml"
    (root / "tools.sls").write_text("tools:\n  pkg.installed:\n    - name: netcat-openbsd\n")
    text = meta.read_text().replace(
        "services:\n", "layers: {tools: {install: [memcached.tools]}}\nservices:\n", 1
    )
    meta.write_text(text.replace("  memcached-two:\n", "  memcached-two:\n    layer: tools\n"))
    fs = FormulaSet([str(copy)])
    specs = {s.name: s for s in plan_images(dict(fs.services), fixed_packages)}
    names = list(specs)
    assert names.index("memcached-common") < names.index("memcached-tools")
    assert specs["memcached-tools"].parent == "memcached-common"
    assert specs["memcached-two"].parent == "memcached-tools"
    assert specs["memcached"].parent == "memcached-common"  # not on the named layer
    assert list(specs["memcached-tools"].packages.versions()) == ["netcat-openbsd"]
    assert {"memcached", "netcat-openbsd"} <= set(specs["memcached-two"].all_packages.versions())
    # A layer the formula does not have is named.
    meta.write_text(meta.read_text().replace("layer: tools", "layer: tool"))
    with pytest.raises(FormulaError, match="layer 'tool' is not one of the formula's layers"):
        FormulaSet([str(copy)])


def test_a_service_named_like_a_common_layer_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "formulas"
    _with_common(copy)
    meta = copy / "memcached" / "formula.yml"
    meta.write_text(meta.read_text().replace("  memcached-two:", "  memcached-common:"))
    with pytest.raises(
        FormulaError, match="'memcached-common' has the name of one of the formula's layers"
    ):
        FormulaSet([str(copy)])
    meta.write_text(meta.read_text().replace("[memcached.common]", "[memcached.nothing]"))
    meta.write_text(meta.read_text().replace("  memcached-common:", "  memcached-two:"))
    with pytest.raises(FormulaError, match=r"state 'memcached\.nothing' has no file") as caught:
        FormulaSet([str(copy)])
    assert caught.value.location is not None and caught.value.location.key == "common.install"


def test_service_metadata_for_the_entrypoint() -> None:
    fs = FormulaSet([str(REPO / "formulas")])
    spec = next(s for s in plan_images(dict(fs.services), fixed_packages) if s.name == "keystone")
    meta = json.loads(spec.generated["service.json"])
    assert meta["command"] == ["/usr/bin/uwsgi", "--ini", "/etc/keystone/keystone-uwsgi.ini"]
    assert meta["user"] == "keystone"
    assert [t["name"] for t in meta["bootstrap"]] == ["db-sync", "identity"]
    assert "formula/configure.sls" in spec.files
    assert "FROM {parent}" in spec.generated["Containerfile"]


def test_images_of_the_example_model() -> None:
    model = load_model(EXAMPLE)
    fs = FormulaSet([str(REPO / "formulas")])
    listed = image_list(model, fs, "registry.example:5000", fixed_packages)
    assert [i["service"] for i in listed] == list(example().services)
    assert all(
        i["image"].startswith(f"registry.example:5000/saline/{i['service']}:") for i in listed
    )
    # A layered service lists its formula's layers and what they install (its own image
    # may add nothing); packages the base image holds are not listed.
    rows = {i["service"]: i for i in listed}
    assert rows["nova-compute"]["layers"] == ["nova-common", "nova-hypervisor"]
    assert {"nova-common", "nova-compute-kvm"} <= set(rows["nova-compute"]["packages"])
    assert rows["keystone"]["layers"] == [] and "keystone" in rows["keystone"]["packages"]
    assert all(i["packages"] for i in listed)
