"""A clustered service's members (formula.yml ``cluster``: mariadb's Galera) are checked
against the model before anything starts: each mistake is one ModelError naming the
node's file, line and key. Pure: nothing is started here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from release_tools import edit as edit_file
from saline.cli import main
from saline.errors import ModelError
from saline.formulas import FormulaSet
from saline.images import services_by_node
from saline.model import load_model
from tools import FORMULAS, REPO

GALERA = REPO / "tests" / "data" / "galera"
MEMBERS_OF_SLAVES = "classes/system/galera/slave/cluster.yml"
MEMBERS_OF_MASTER = "classes/system/galera/master/cluster.yml"


def galera_copy(tmp_path: Path) -> Path:
    target = tmp_path / "galera"
    shutil.copytree(GALERA, target)
    return target


def edit(model: Path, rel: str, old: str, new: str) -> None:
    edit_file(model / rel, old, new)


def check(model: Path) -> None:
    services_by_node(load_model(str(model)), FormulaSet([str(FORMULAS)]))


def error(model: Path) -> ModelError:
    with pytest.raises(ModelError) as caught:
        check(model)
    return caught.value


def line_of(model: Path, rel: str, text: str) -> int:
    for i, line in enumerate((model / rel).read_text().splitlines(), 1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in {rel}")


def test_the_test_model_is_a_valid_cluster_and_the_example_has_none() -> None:
    check(GALERA)
    check(REPO / "examples" / "openstack")
    cluster = FormulaSet([str(FORMULAS)]).services["mariadb"][1].cluster
    assert cluster is not None
    assert cluster.pillar == ["galera:master", "galera:slave"]
    assert (cluster.seed, cluster.quorum) == ("galera:master", True)


def drop_member(model: Path, rel: str, number: str) -> None:
    edit(
        model,
        rel,
        f"        - name: ${{_param:cluster_node{number}_name}}\n"
        f"          host: ${{_param:cluster_node{number}_address}}\n"
        "          port: 4567\n",
        "",
    )


def test_an_even_number_of_members_is_refused(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    # Four members: a fourth database node, listed by every member.
    for rel in (MEMBERS_OF_MASTER, MEMBERS_OF_SLAVES):
        edit(
            model,
            rel,
            "          host: ${_param:cluster_node03_address}\n          port: 4567\n",
            "          host: ${_param:cluster_node03_address}\n          port: 4567\n"
            "        - name: dbs04.galera.local\n"
            "          host: 10.30.0.14\n          port: 4567\n",
        )
    (model / "nodes" / "dbs04.galera.local.yml").write_text(
        (model / "nodes" / "dbs03.galera.local.yml").read_text().replace("0.13", "0.14")
    )
    e = error(model)
    assert e.location.file == MEMBERS_OF_MASTER
    assert e.location.line == line_of(model, MEMBERS_OF_MASTER, "members:")
    assert e.location.key == "parameters:galera:master:members"
    assert e.location.node == "dbs01.galera.local"
    assert "mariadb's cluster has 4 members" in e.message
    assert "an odd number, at least 3" in e.message
    assert str(e).startswith(f"{MEMBERS_OF_MASTER}:{e.location.line}, node dbs01.galera.local, ")


def test_a_one_node_cluster_is_refused(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    for rel in (MEMBERS_OF_MASTER, MEMBERS_OF_SLAVES):
        drop_member(model, rel, "02")
        drop_member(model, rel, "03")
    for n in ("02", "03"):
        (model / "nodes" / f"dbs{n}.galera.local.yml").unlink()
    e = error(model)
    assert (e.location.file, e.location.key) == (
        MEMBERS_OF_MASTER,
        "parameters:galera:master:members",
    )
    assert "has 1 member (dbs01.galera.local)" in e.message


def test_a_node_missing_from_its_own_members_is_refused(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    edit(
        model,
        "nodes/dbs02.galera.local.yml",
        "hostname: dbs02",
        "hostname: dbs02\n    cluster_node02_name: db02.galera.local",
    )
    e = error(model)
    assert e.location.node == "dbs02.galera.local"
    assert e.location.key == "parameters:galera:slave:members"
    assert e.location.file == MEMBERS_OF_SLAVES
    assert "dbs02.galera.local is not among the members of its mariadb cluster" in e.message
    assert "db02.galera.local" in e.message


def test_members_that_differ_between_members_are_refused(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    # dbs03 names the second member differently from everyone else.
    edit(
        model,
        "nodes/dbs03.galera.local.yml",
        "single_address: 10.30.0.13",
        "single_address: 10.30.0.13\n  galera:\n    slave:\n      members:\n"
        "        - name: dbs01.galera.local\n          host: 10.30.0.11\n          port: 4567\n"
        "        - name: dbs2.galera.local\n          host: 10.30.0.12\n          port: 4567\n"
        "        - name: dbs03.galera.local\n          host: 10.30.0.13\n          port: 4567\n",
    )
    # reclass merges lists: dbs03's list must replace its class's (`~` as in reclass).
    edit(model, "nodes/dbs03.galera.local.yml", "      members:", "      ~members:")
    e = error(model)
    assert e.location.node == "dbs03.galera.local"
    assert e.location.file == "nodes/dbs03.galera.local.yml"
    assert e.location.line == line_of(model, "nodes/dbs03.galera.local.yml", "~members:")
    assert e.location.key == "parameters:galera:slave:members"
    line = line_of(model, MEMBERS_OF_MASTER, "members:")
    assert (
        f"the members of mariadb's cluster differ between dbs01.galera.local "
        f"({MEMBERS_OF_MASTER}:{line}) and dbs03.galera.local: member 2 is "
        "dbs02.galera.local (10.30.0.12:4567) there and dbs2.galera.local (10.30.0.12:4567) here"
    ) in e.message


def test_a_member_that_is_not_a_galera_node_of_the_model_is_refused(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    # dbs03 runs a standalone MariaDB: no galera section, though the others list it.
    edit(model, "nodes/dbs03.galera.local.yml", "  - system.galera.slave.cluster\n", "")
    e = error(model)
    assert e.message == (
        "member dbs03.galera.local of mariadb's cluster does not enable galera:master or "
        "galera:slave"
    )
    assert (e.location.node, e.location.file) == ("dbs01.galera.local", MEMBERS_OF_MASTER)
    # ... and one that is no node at all.
    (model / "nodes" / "dbs03.galera.local.yml").unlink()
    assert "member dbs03.galera.local of mariadb's cluster is not a node of the model" in str(
        error(model)
    )


def test_exactly_one_member_is_the_master(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    edit(model, "nodes/dbs02.galera.local.yml", "system.galera.slave", "system.galera.master")
    e = error(model)
    assert "exactly one member of mariadb's cluster enables galera:master" in e.message
    assert "dbs01.galera.local and dbs02.galera.local" in e.message
    assert e.location.node == "dbs02.galera.local"
    assert e.location.key == "parameters:galera:master"
    assert e.location.file == MEMBERS_OF_MASTER
    # None: the cluster has no member to start it.
    model = galera_copy(tmp_path / "none")
    edit(model, "nodes/dbs01.galera.local.yml", "system.galera.master", "system.galera.slave")
    assert "enables galera:master (the member that starts a new cluster): none does" in str(
        error(model)
    )


def test_a_member_enables_one_role(tmp_path: Path) -> None:
    model = galera_copy(tmp_path)
    edit(
        model,
        "nodes/dbs02.galera.local.yml",
        "  - system.galera.slave.cluster\n",
        "  - system.galera.slave.cluster\n  - system.galera.master.cluster\n",
    )
    e = error(model)
    assert "mariadb on dbs02.galera.local enables both galera:master and galera:slave" in str(e)
    assert e.location.key == "parameters:galera:slave:enabled"
    assert e.location.file == MEMBERS_OF_SLAVES


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("          host: ${_param:cluster_node02_address}\n", "", "member 2 has no host"),
        (
            "port: 4567\n        - name: ${_param:cluster_node03_name}",
            "port: x\n        - name: ${_param:cluster_node03_name}",
            "member 2: port 'x' is not a number",
        ),
        (
            "${_param:cluster_node03_name}",
            "${_param:cluster_node02_name}",
            "names dbs02.galera.local more than once",
        ),
    ],
)
def test_malformed_members_are_refused(tmp_path: Path, old: str, new: str, why: str) -> None:
    model = galera_copy(tmp_path)
    edit(model, MEMBERS_OF_MASTER, old, new)
    e = error(model)
    assert e.message == f"mariadb's cluster: galera:master:members {why}"
    assert (e.location.file, e.location.node) == (MEMBERS_OF_MASTER, "dbs01.galera.local")


def test_the_command_line_says_it_in_one_line_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = galera_copy(tmp_path)
    for rel in (MEMBERS_OF_MASTER, MEMBERS_OF_SLAVES):
        drop_member(model, rel, "03")
    (model / "nodes" / "dbs03.galera.local.yml").unlink()
    code = main(["compose", "--model", str(model), "--stack", "t", "--out", str(tmp_path / "c")])
    _, err = capsys.readouterr()
    assert code == 1
    assert re.fullmatch(
        rf"error: {re.escape(MEMBERS_OF_MASTER)}:\d+, node dbs01.galera.local, key "
        r"parameters:galera:master:members: mariadb's cluster has 2 members "
        r"\(dbs01.galera.local, dbs02.galera.local\): .*\n",
        err,
    ), err
    assert "Traceback" not in err
    assert not (tmp_path / "c").exists()
