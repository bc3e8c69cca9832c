"""Formula metadata: strict schema, clear errors naming the file and line."""

from __future__ import annotations

import configparser
import copy
import json
import shutil
from pathlib import Path
from typing import Any

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


# -- tasks that talk to their running server: over the network, on every runtime ----------

COMPOSE_EXAMPLE = REPO / "examples" / "openstack"
KUBE_EXAMPLE = REPO / "examples" / "openstack-kubernetes"


def _render(model_dir: Path, node: str, states: list[str], edit: Any = None) -> dict[str, str]:
    """path -> text of the files ``states`` manage for ``node`` (its pillar through
    ``edit`` first)."""
    from saline.model import load_model
    from saline.salt.runner import RenderSession

    model = load_model(str(model_dir))
    parameters = copy.deepcopy(model.node(node).parameters)
    if edit is not None:
        edit(parameters)
    with RenderSession(str(model_dir), [str(SHIPPED)]) as session:
        [files] = session.render(node, parameters, [states])
    return {f.path: f.content for f in files}


def _ini(text: str) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return dict(parser["client"])


@pytest.mark.parametrize(
    ("model_dir", "node", "host"),
    [
        # compose: the task shares its node's network namespace; the server binds 0.0.0.0
        (COMPOSE_EXAMPLE, "dbs01.openstack.local", "127.0.0.1"),
        # Kubernetes: a Job's pod of its own reaches the server's Service
        (KUBE_EXAMPLE, "database", "mariadb"),
    ],
)
def test_the_databases_task_logs_in_over_tcp_as_the_admin(
    model_dir: Path, node: str, host: str
) -> None:
    files = _render(model_dir, node, ["mariadb.bootstrap"])
    client = _ini(files["/run/saline/mariadb-admin.cnf"])
    secret = "example-k8s-mysql-admin" if model_dir == KUBE_EXAMPLE else "example-mysql-admin"
    assert client == {
        "protocol": "tcp",
        "host": host,
        "port": "3306",
        "user": "root",
        "password": f'"{secret}"',
    }
    # ... whom the server itself creates at every start (its init-file).
    configure = _render(model_dir, node, ["mariadb.configure"])
    assert (
        "init-file = /etc/mysql/saline-admin.sql"
        in configure["/etc/mysql/mariadb.conf.d/99-saline.cnf"]
    )
    init = configure["/etc/mysql/saline-admin.sql"]
    assert f"CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '{secret}';" in init
    assert "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;" in init


def test_sql_and_option_files_quote_what_the_pillar_holds() -> None:
    def awkward(p: dict[str, Any]) -> None:
        p["mysql"]["server"]["admin"]["password"] = "it's a \\ pass"
        p["mysql"]["server"]["database"]["keystone"]["users"][0]["password"] = "o'k"

    node = "dbs01.openstack.local"
    files = _render(COMPOSE_EXAMPLE, node, ["mariadb.bootstrap", "mariadb.configure"], awkward)
    assert "IDENTIFIED BY 'it\\'s a \\\\ pass'" in files["/etc/mysql/saline-admin.sql"]
    assert "IDENTIFIED BY 'o\\'k'" in files["/run/saline/mariadb-bootstrap.sql"]
    assert _ini(files["/run/saline/mariadb-admin.cnf"])["password"] == '"it\'s a \\\\ pass"'


def test_an_explicit_admin_host_and_port_win() -> None:
    def elsewhere(p: dict[str, Any]) -> None:
        p["mysql"]["server"]["admin"].update(host="db.example", port=3307)
        p["mysql"]["server"]["bind"]["address"] = "10.0.0.5"

    files = _render(COMPOSE_EXAMPLE, "dbs01.openstack.local", ["mariadb.bootstrap"], elsewhere)
    client = _ini(files["/run/saline/mariadb-admin.cnf"])
    assert (client["host"], client["port"]) == ("db.example", "3307")

    def bound(p: dict[str, Any]) -> None:
        p["mysql"]["server"]["bind"]["address"] = "10.0.0.5"

    files = _render(COMPOSE_EXAMPLE, "dbs01.openstack.local", ["mariadb.bootstrap"], bound)
    assert _ini(files["/run/saline/mariadb-admin.cnf"])["host"] == "10.0.0.5"


@pytest.mark.parametrize(
    ("model_dir", "node", "secret"),
    [
        (COMPOSE_EXAMPLE, "msg01.openstack.local", "example-rabbit-admin"),
        (KUBE_EXAMPLE, "messaging", "example-k8s-rabbit-admin"),
    ],
)
def test_the_rabbitmq_node_creates_the_admin_the_vhosts_task_uses(
    model_dir: Path, node: str, secret: str
) -> None:
    files = _render(model_dir, node, ["rabbitmq.configure"])
    definitions = json.loads(files["/etc/rabbitmq/definitions.json"])
    assert definitions["users"] == [{"name": "admin", "password": secret, "tags": "administrator"}]
    assert definitions["vhosts"] == [{"name": "/"}]
    assert "[rabbitmq_management]." in files["/etc/rabbitmq/enabled_plugins"]
    conf = files["/etc/rabbitmq/rabbitmq.conf"]
    assert "management.tcp.port = 15672" in conf
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf
    # The formula's ports (the Service's, the NetworkPolicy's) carry the API's.
    spec = FormulaSet([str(SHIPPED)]).services["rabbitmq"][1]
    assert {p.name: p.port for p in spec.ports} == {"amqp": 5672, "management": 15672}


# -- libraries of shared files (formula.yml uses) ----------------------------------------


def test_glance_registers_with_the_openstack_librarys_script() -> None:
    """The register state imports the library's macro and manages its script: Salt finds
    both through the formulas' file roots, on a host as in the image (which holds the
    library, below)."""
    files = _render(COMPOSE_EXAMPLE, "ctl01.openstack.local", ["glance.bootstrap.register"])
    script = (SHIPPED / "openstack" / "files" / "register.py").read_text()
    assert files == {"/usr/local/lib/saline/openstack-register.py": script}


def test_an_image_holds_the_formulas_it_uses() -> None:
    from saline.build.graph import plan_images
    from tools import fixed_packages

    fs = FormulaSet([str(SHIPPED)])
    assert fs.formulas["glance"].uses == (fs.formulas["openstack"],)
    assert fs.formulas["openstack"].meta.services == {}
    specs = {s.name: s for s in plan_images(dict(fs.services), fixed_packages)}
    glance = specs["glance-api"]
    assert glance.files["uses/openstack/files/register.py"] == str(
        SHIPPED / "openstack" / "files" / "register.py"
    )
    assert "COPY uses /srv/saline/formulas/\n" in glance.generated["Containerfile"]
    # A formula that uses none holds only its own files.
    assert not any(rel.startswith("uses/") for rel in specs["keystone"].files)
    assert "COPY uses" not in specs["keystone"].generated["Containerfile"]


def test_a_formula_that_uses_an_unknown_one_is_named(tmp_path: Path) -> None:
    root = tmp_path / "formulas"
    shutil.copytree(SHIPPED, root)
    meta = root / "glance" / "formula.yml"
    meta.write_text(meta.read_text().replace("uses: [openstack]", "uses: [openstak]"))
    with pytest.raises(FormulaError) as caught:
        FormulaSet([str(root)])
    assert "formula 'glance' uses formula 'openstak', which no formula folder holds" in str(
        caught.value
    )
    assert caught.value.location is not None
    assert caught.value.location.key == "uses" and caught.value.location.line == 4
