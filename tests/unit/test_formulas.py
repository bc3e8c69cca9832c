"""Formula metadata: strict schema, clear errors naming the file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from saline import formulas
from saline.errors import FormulaError
from saline.formulas import FormulaSet, default_formula_dirs

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "formulas"


def copy_formulas(tmp_path: Path) -> Path:
    dest = tmp_path / "formulas"
    shutil.copytree(SHIPPED, dest)
    return dest


def test_shipped_formulas_are_valid() -> None:
    fs = FormulaSet([str(SHIPPED)])
    # Every folder with metadata is a formula (listed from the files, not by FormulaSet).
    assert sorted(fs.formulas) == sorted(p.parent.name for p in SHIPPED.glob("*/formula.yml"))
    keystone = fs.services["keystone"][1]
    assert keystone.depends == ["mariadb", "memcached"]
    assert keystone.config_files["/etc/keystone/keystone.conf"] == "reload"
    assert keystone.health.http is not None and keystone.health.http.port == 5000
    assert [t.name for t in keystone.bootstrap] == ["db-sync", "identity"]


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    meta = root / "memcached" / "formula.yml"
    meta.write_text(
        meta.read_text().replace("    user: memcache\n", "    user: memcache\n    usr: x\n")
    )
    with pytest.raises(FormulaError) as e:
        FormulaSet([str(root)])
    msg = str(e.value)
    assert "memcached/formula.yml:" in msg
    assert "services.memcached.usr" in msg and "Extra inputs are not permitted" in msg
    line = int(msg.split("formula.yml:")[1].split(",")[0])
    assert meta.read_text().splitlines()[line - 1].strip() == "usr: x"


def test_health_needs_exactly_one_check(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    meta = root / "memcached" / "formula.yml"
    meta.write_text(
        meta.read_text().replace("tcp: {port: 11211}", "tcp: {port: 11211}\n      http: {port: 1}")
    )
    with pytest.raises(FormulaError, match="give exactly one of http, tcp or exec"):
        FormulaSet([str(root)])


def test_a_state_without_a_file(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    (root / "memcached" / "configure.sls").unlink()
    with pytest.raises(FormulaError, match=r"state 'memcached.configure' has no file"):
        FormulaSet([str(root)])


def test_unknown_dependency(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    meta = root / "glance" / "formula.yml"
    meta.write_text(meta.read_text().replace("depends: [mariadb, memcached]", "depends: [mysql]"))
    with pytest.raises(
        FormulaError, match="service 'glance-api' depends on unknown service 'mysql'"
    ):
        FormulaSet([str(root)])


def test_unknown_dependency_of_a_bootstrap_task(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    meta = root / "glance" / "formula.yml"
    meta.write_text(meta.read_text().replace("depends: [mariadb]\n", "depends: [mysql]\n"))
    with pytest.raises(FormulaError) as e:
        FormulaSet([str(root)])
    assert "services.glance-api.bootstrap.0.depends" in str(e.value)
    assert "depends on unknown service 'mysql'" in str(e.value)


def test_volume_paths_are_absolute(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    meta = root / "glance" / "formula.yml"
    meta.write_text(meta.read_text().replace("images: /var/lib/glance/images", "images: var/x"))
    with pytest.raises(FormulaError, match="volume images: 'var/x' is not an absolute path"):
        FormulaSet([str(root)])


def test_invalid_yaml(tmp_path: Path) -> None:
    root = copy_formulas(tmp_path)
    (root / "haproxy" / "formula.yml").write_text("name: haproxy\nservices: [\n")
    with pytest.raises(FormulaError, match=r"haproxy/formula.yml:3: invalid YAML"):
        FormulaSet([str(root)])


def test_node_services_follow_applications_and_enabled_pillar() -> None:
    fs = FormulaSet([str(SHIPPED)])
    pillar = {
        "keystone": {"server": {"enabled": True}},
        "memcached": {"server": {"enabled": False}},
    }
    names = [s.name for s in fs.node_services("n", ["keystone", "memcached", "linux"], pillar)]
    assert names == ["keystone"]


def test_default_formula_dirs_are_the_models_else_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SALINE_FORMULAS", str(tmp_path / "ignored"))  # no env var is read
    model = tmp_path / "model"
    model.mkdir()
    assert default_formula_dirs(str(model)) == [str(formulas.SHIPPED)]
    assert default_formula_dirs(None) == [str(formulas.SHIPPED)]
    (model / "formulas").mkdir()
    assert default_formula_dirs(str(model)) == [str(model / "formulas")]


def test_a_checkout_finds_the_shipped_formulas_in_the_repository() -> None:
    # An installed saline finds them in its package (tests/integration/test_wheel.py).
    assert formulas.SHIPPED == SHIPPED
